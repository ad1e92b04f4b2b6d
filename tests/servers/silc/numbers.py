"""Numbers the drafts assign: packet types, flags, commands, notifies, statuses."""

from __future__ import annotations

from enum import IntEnum, IntFlag


class PacketType(IntEnum):
    """silc-pp 2.3."""

    DISCONNECT = 1
    SUCCESS = 2
    FAILURE = 3
    REJECT = 4
    NOTIFY = 5
    ERROR = 6
    CHANNEL_MESSAGE = 7
    CHANNEL_KEY = 8
    PRIVATE_MESSAGE = 9
    PRIVATE_MESSAGE_KEY = 10
    COMMAND = 11
    COMMAND_REPLY = 12
    KEY_EXCHANGE = 13
    KEY_EXCHANGE_1 = 14
    KEY_EXCHANGE_2 = 15
    CONNECTION_AUTH_REQUEST = 16
    CONNECTION_AUTH = 17
    NEW_ID = 18
    NEW_CLIENT = 19
    NEW_SERVER = 20
    NEW_CHANNEL = 21
    REKEY = 22
    REKEY_DONE = 23
    HEARTBEAT = 24
    KEY_AGREEMENT = 25
    RESUME_ROUTER = 26
    FTP = 27
    RESUME_CLIENT = 28
    ACK = 29


class PacketFlag(IntFlag):
    """silc-pp 2.2."""

    NONE = 0
    PRIVMSG_KEY = 0x01
    LIST = 0x02
    BROADCAST = 0x04
    COMPRESSED = 0x08
    ACK = 0x10


class Cmd(IntEnum):
    """silc-commands 2.3."""

    WHOIS = 1
    WHOWAS = 2
    IDENTIFY = 3
    NICK = 4
    LIST = 5
    TOPIC = 6
    INVITE = 7
    QUIT = 8
    KILL = 9
    INFO = 10
    STATS = 11
    PING = 12
    OPER = 13
    JOIN = 14
    MOTD = 15
    UMODE = 16
    CMODE = 17
    CUMODE = 18
    KICK = 19
    BAN = 20
    DETACH = 21
    WATCH = 22
    SILCOPER = 23
    LEAVE = 24
    USERS = 25
    GETKEY = 26
    SERVICE = 27


class NotifyType(IntEnum):
    """silc-pp 2.3.7."""

    NONE = 0
    INVITE = 1
    JOIN = 2
    LEAVE = 3
    SIGNOFF = 4
    TOPIC_SET = 5
    NICK_CHANGE = 6
    CMODE_CHANGE = 7
    CUMODE_CHANGE = 8
    MOTD = 9
    CHANNEL_CHANGE = 10
    SERVER_SIGNOFF = 11
    KICKED = 12
    KILLED = 13
    UMODE_CHANGE = 14
    BAN = 15
    ERROR = 16
    WATCH = 17


class Status(IntEnum):
    """silc-commands 3 (command reply and NOTIFY ERROR statuses)."""

    OK = 0
    LIST_START = 1
    LIST_ITEM = 2
    LIST_END = 3
    ERR_NO_SUCH_NICK = 10
    ERR_NO_SUCH_CHANNEL = 11
    ERR_NO_SUCH_SERVER = 12
    ERR_INCOMPLETE_INFORMATION = 13
    ERR_NO_RECIPIENT = 14
    ERR_UNKNOWN_COMMAND = 15
    ERR_WILDCARDS = 16
    ERR_NO_CLIENT_ID = 17
    ERR_NO_CHANNEL_ID = 18
    ERR_NO_SERVER_ID = 19
    ERR_BAD_CLIENT_ID = 20
    ERR_BAD_CHANNEL_ID = 21
    ERR_NO_SUCH_CLIENT_ID = 22
    ERR_NO_SUCH_CHANNEL_ID = 23
    ERR_NICKNAME_IN_USE = 24
    ERR_NOT_ON_CHANNEL = 25
    ERR_USER_NOT_ON_CHANNEL = 26
    ERR_USER_ON_CHANNEL = 27
    ERR_NOT_REGISTERED = 28
    ERR_NOT_ENOUGH_PARAMS = 29
    ERR_TOO_MANY_PARAMS = 30
    ERR_PERM_DENIED = 31
    ERR_BANNED_FROM_SERVER = 32
    ERR_BAD_PASSWORD = 33
    ERR_CHANNEL_IS_FULL = 34
    ERR_NOT_INVITED = 35
    ERR_BANNED_FROM_CHANNEL = 36
    ERR_UNKNOWN_MODE = 37
    ERR_NOT_YOU = 38
    ERR_NO_CHANNEL_PRIV = 39
    ERR_NO_CHANNEL_FOPRIV = 40
    ERR_NO_SERVER_PRIV = 41
    ERR_NO_ROUTER_PRIV = 42
    ERR_BAD_NICKNAME = 43
    ERR_BAD_CHANNEL = 44
    ERR_AUTH_FAILED = 45
    ERR_UNKNOWN_ALGORITHM = 46
    ERR_NO_SUCH_SERVER_ID = 47
    ERR_RESOURCE_LIMIT = 48
    ERR_NO_SUCH_SERVICE = 49
    ERR_NOT_AUTHENTICATED = 50
    ERR_BAD_SERVER_ID = 51
    ERR_KEY_EXCHANGE_FAILED = 52
    ERR_BAD_VERSION = 53
    ERR_TIMEDOUT = 54
    ERR_UNSUPPORTED_PUBLIC_KEY = 55
    ERR_OPERATION_ALLOWED = 56


class SkeStatus(IntEnum):
    """silc-ke-auth 2.5 (32-bit, in SUCCESS/FAILURE during SKE)."""

    OK = 0
    ERROR = 1
    BAD_PAYLOAD = 2
    UNSUPPORTED_GROUP = 3
    UNSUPPORTED_CIPHER = 4
    UNSUPPORTED_PKCS = 5
    UNSUPPORTED_HASH_FUNCTION = 6
    UNSUPPORTED_HMAC = 7
    UNSUPPORTED_PUBLIC_KEY = 8
    INCORRECT_SIGNATURE = 9
    BAD_VERSION = 10
    INVALID_COOKIE = 11


class AuthMethod(IntEnum):
    """silc-pp 2.3.15."""

    NONE = 0
    PASSPHRASE = 1
    PUBLIC_KEY = 2


CONN_CLIENT = 1  # Connection type, silc-pp 2.3.15

# Message flags, silc-pp 2.3.2.6.
MSG_ACTION = 0x0004
MSG_NOTICE = 0x0008
MSG_SIGNED = 0x0020
MSG_UTF8 = 0x0100

# Channel modes, silc-commands 2.3 CMODE (those the test server implements).
CMODE_PRIVKEY = 0x4
CMODE_TOPIC = 0x10

# Channel user modes, silc-commands 2.3 CUMODE.
CUMODE_FOUNDER = 0x1
CUMODE_OPERATOR = 0x2

# Key Exchange Start Payload flags, silc-ke-auth 2.1.1.
SKE_IV_INCLUDED = 0x01
SKE_PFS = 0x02
SKE_MUTUAL = 0x04
