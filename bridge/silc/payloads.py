"""SILC packet payloads a client sends and receives (silc-pp 2.3, silc-commands).

Each payload is a small dataclass with `encode()` and a `decode(data)`
classmethod that raises only DecodeError. The message payload, with its
channel-key encryption, lives in message.py; SKE and connection auth payloads
live in ske.py and auth.py.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from bridge.silc.buffer import DecodeError, Reader, lp16, u8, u16, u32
from bridge.silc.ids import SilcId, encode_id_payload, read_id_payload


class Command(enum.IntEnum):
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


class Status(enum.IntEnum):
    """silc-commands 3 (the ones a client acts on; others stay plain ints)."""

    OK = 0
    LIST_START = 1
    LIST_ITEM = 2
    LIST_END = 3
    ERR_NO_SUCH_NICK = 10
    ERR_NO_SUCH_CHANNEL = 11
    ERR_NO_SUCH_CLIENT_ID = 22
    ERR_NO_SUCH_CHANNEL_ID = 23
    ERR_NICKNAME_IN_USE = 24
    ERR_NOT_ON_CHANNEL = 25
    ERR_USER_ON_CHANNEL = 27
    ERR_NOT_REGISTERED = 28
    ERR_NOT_ENOUGH_PARAMS = 29
    ERR_PERM_DENIED = 31
    ERR_BAD_PASSWORD = 33
    ERR_CHANNEL_IS_FULL = 34
    ERR_NOT_INVITED = 35
    ERR_BANNED_FROM_CHANNEL = 36
    ERR_NO_CHANNEL_PRIV = 39
    ERR_NO_CHANNEL_FOPRIV = 40
    ERR_BAD_NICKNAME = 43
    ERR_BAD_CHANNEL = 44
    ERR_AUTH_FAILED = 45
    ERR_UNKNOWN_ALGORITHM = 46


def status_name(code: int) -> str:
    try:
        return Status(code).name
    except ValueError:
        return f"STATUS_{code}"


class Notify(enum.IntEnum):
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


# --- arguments (silc-pp 2.3.2.2) ---


@dataclass(frozen=True, slots=True)
class Arguments:
    """Argument Payloads in order; an argument type may repeat (WHOIS takes
    several Client IDs)."""

    items: tuple[tuple[int, bytes], ...] = ()

    @classmethod
    def of(cls, *pairs: tuple[int, bytes | None]) -> Arguments:
        """Arguments from (type, data) pairs, skipping None data."""
        return cls(tuple((t, d) for t, d in pairs if d is not None))

    def get(self, arg_type: int) -> bytes | None:
        for t, data in self.items:
            if t == arg_type:
                return data
        return None

    def __len__(self) -> int:
        return len(self.items)

    def encode(self) -> bytes:
        return b"".join(u16(len(data)) + u8(t) + data for t, data in self.items)

    @classmethod
    def read(cls, reader: Reader, count: int) -> Arguments:
        items = []
        for _ in range(count):
            length = reader.u16()
            arg_type = reader.u8()
            items.append((arg_type, reader.take(length)))
        return cls(tuple(items))


# --- commands and replies (silc-pp 2.3.13, 2.3.14) ---


@dataclass(frozen=True, slots=True)
class CommandPayload:
    command: int
    ident: int
    args: Arguments = field(default_factory=Arguments)

    def encode(self) -> bytes:
        if not 0 < self.command < 256 or len(self.args) > 255:
            raise ValueError("bad command or too many arguments")
        body = self.args.encode()
        return u16(6 + len(body)) + u8(self.command) + u8(len(self.args)) + u16(self.ident) + body

    @classmethod
    def read(cls, reader: Reader) -> CommandPayload:
        length = reader.u16()
        if length < 6:
            raise DecodeError(f"command payload length {length}")
        inner = Reader(reader.take(length - 2))
        command, count, ident = inner.u8(), inner.u8(), inner.u16()
        if command == 0:
            raise DecodeError("command 0")
        args = Arguments.read(inner, count)
        inner.end()
        return cls(command, ident, args)

    @classmethod
    def decode(cls, data: bytes) -> CommandPayload:
        return _single(cls.read, data)

    @property
    def status(self) -> int:
        """For replies: the Status field of the Status Payload (argument 1)."""
        return decode_status(self.args.get(1))[0]

    @property
    def error(self) -> int:
        """For replies: the error, whether single or inside a list (2.4)."""
        status, error = decode_status(self.args.get(1))
        return error if status in (Status.LIST_START, Status.LIST_ITEM, Status.LIST_END) else status


def decode_status(data: bytes | None) -> tuple[int, int]:
    """Command Status Payload (silc-commands 2.4): status, error."""
    if data is None or len(data) != 2:
        raise DecodeError("missing or malformed status payload")
    return data[0], data[1]


def encode_status(status: int, error: int = 0) -> bytes:
    return u8(status) + u8(error)


# --- notify (silc-pp 2.3.7) ---


@dataclass(frozen=True, slots=True)
class NotifyPayload:
    type: int
    args: Arguments = field(default_factory=Arguments)

    def encode(self) -> bytes:
        body = self.args.encode()
        return u16(self.type) + u16(5 + len(body)) + u8(len(self.args)) + body

    @classmethod
    def read(cls, reader: Reader) -> NotifyPayload:
        ntype, length = reader.u16(), reader.u16()
        if length < 5:
            raise DecodeError(f"notify payload length {length}")
        inner = Reader(reader.take(length - 4))
        args = Arguments.read(inner, inner.u8())
        inner.end()
        return cls(ntype, args)

    @classmethod
    def decode(cls, data: bytes) -> NotifyPayload:
        return _single(cls.read, data)


def read_list(read, data: bytes, is_list: bool) -> list:
    """One payload, or with the List packet flag several one after the other."""
    reader = Reader(data)
    items = [read(reader)]
    while is_list and reader.remaining:
        items.append(read(reader))
    reader.end()
    return items


def _single(read, data: bytes):
    reader = Reader(data)
    item = read(reader)
    reader.end()
    return item


# --- channel key (silc-pp 2.3.10) ---


@dataclass(frozen=True, slots=True)
class ChannelKeyPayload:
    channel_id: bytes
    cipher: str
    key: bytes

    def encode(self) -> bytes:
        return lp16(self.channel_id) + lp16(self.cipher.encode("ascii")) + lp16(self.key)

    @classmethod
    def decode(cls, data: bytes) -> ChannelKeyPayload:
        r = Reader(data)
        channel_id, cipher, key = r.lp16(), r.lp16(), r.lp16()
        r.end()
        return cls(channel_id, cipher.decode("ascii", errors="replace"), key)


# --- registration and connection control ---


@dataclass(frozen=True, slots=True)
class NewClientPayload:
    """silc-pp 2.3.17: username and real name."""

    username: str
    realname: str

    def encode(self) -> bytes:
        return lp16(self.username.encode("utf-8")) + lp16(self.realname.encode("utf-8"))

    @classmethod
    def decode(cls, data: bytes) -> NewClientPayload:
        r = Reader(data)
        username, realname = r.lp16(), r.lp16()
        r.rest()  # silcd accepts an optional nickname after these
        return cls(username.decode("utf-8", "replace"), realname.decode("utf-8", "replace"))


@dataclass(frozen=True, slots=True)
class DisconnectPayload:
    """silc-pp 2.3.3: status (1), then an optional UTF-8 message."""

    status: int
    message: str = ""

    def encode(self) -> bytes:
        return u8(self.status) + self.message.encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> DisconnectPayload:
        r = Reader(data)
        return cls(r.u8(), r.rest().decode("utf-8", "replace"))


def encode_protocol_status(status: int) -> bytes:
    """SUCCESS/FAILURE payload of SKE and connection auth: a 32-bit status
    (silc-ke-auth 2.5, 3.3)."""
    return u32(status)


def decode_protocol_status(data: bytes) -> int | None:
    return int.from_bytes(data[:4], "big") if len(data) >= 4 else None


# --- public keys and ID lists in arguments ---


@dataclass(frozen=True, slots=True)
class PublicKeyPayload:
    """silc-pp 2.3.2.5: length (2), type (2), key data."""

    pk_type: int
    key: bytes

    def encode(self) -> bytes:
        return u16(len(self.key)) + u16(self.pk_type) + self.key

    @classmethod
    def read(cls, reader: Reader) -> PublicKeyPayload:
        length, pk_type = reader.u16(), reader.u16()
        return cls(pk_type, reader.take(length))

    @classmethod
    def decode(cls, data: bytes) -> PublicKeyPayload:
        return _single(cls.read, data)


def decode_id_list(data: bytes, count: int) -> list[SilcId]:
    """<Client ID list>: `count` ID Payloads one after the other."""
    reader = Reader(data)
    ids = [read_id_payload(reader) for _ in range(count)]
    reader.end()
    return ids


def encode_id_list(ids: Iterable[SilcId]) -> bytes:
    return b"".join(encode_id_payload(i) for i in ids)


def decode_u32(data: bytes | None) -> int:
    if data is None or len(data) != 4:
        raise DecodeError("expected a 32-bit value")
    return int.from_bytes(data, "big")
