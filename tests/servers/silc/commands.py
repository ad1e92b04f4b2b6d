"""The test server's commands (silc-commands 2.3): arguments in, replies and
notifies out.  Statuses follow silc-commands 3; where a status says "the next
argument MUST be ...", that argument is number 2 of the reply.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from .cell import CHANNEL_CIPHER, CHANNEL_HMAC, Cell, Channel, Client
from .crypto import CIPHERS, HMACS, PK_TYPE_SILC, SilcPublicKey
from .identifiers import client_id, prepare_channel, prepare_nickname
from .numbers import CMODE_PRIVKEY, CMODE_TOPIC, CUMODE_FOUNDER, CUMODE_OPERATOR, Cmd, NotifyType, Status
from .wire import (
    ID_CLIENT,
    ID_SERVER,
    ChannelKeyPayload,
    Command,
    DecodeError,
    Reader,
    SilcId,
    channel_payload,
    public_key_payload,
    u16_bytes,
    u32,
)

log = structlog.get_logger(__name__)

SERVER_VERSION = "muc-bridge SILC test server 1.0"
ATTR_USER_PUBLIC_KEY, ATTR_SERVER_PUBLIC_KEY = 12, 13  # silc-presence-attrs 2.5
ATTR_FLAG_INVALID, ATTR_FLAG_VALID = 0x01, 0x02

Args = list[tuple[int, bytes]]
Entry = tuple[Status, Args]


class CommandError(Exception):
    """Answer the command with this status and these extra reply arguments."""

    def __init__(self, status: Status, *args: tuple[int, bytes]) -> None:
        super().__init__(status.name)
        self.status = status
        self.args = list(args)


def run(cell: Cell, client: Client, cmd: Command) -> None:
    """Execute one command; every command but QUIT gets a reply."""
    handler = HANDLERS.get(cmd.command)
    try:
        if handler is None:
            raise CommandError(Status.ERR_UNKNOWN_COMMAND)
        handler(cell, client, cmd)
    except CommandError as exc:
        client.reply(cmd, exc.status, exc.args)
    except (DecodeError, UnicodeDecodeError) as exc:
        log.warning("silc_command_malformed", nick=client.nick, command=cmd.command, error=str(exc))
        client.reply(cmd, Status.ERR_NOT_ENOUGH_PARAMS, [])


# --- argument helpers ---


def _required(cmd: Command, kind: int) -> bytes:
    value = cmd.args.get(kind)
    if value is None:
        raise CommandError(Status.ERR_NOT_ENOUGH_PARAMS)
    return value


def _channel(cell: Cell, raw: bytes | None) -> Channel:
    if raw is None:
        raise CommandError(Status.ERR_NO_CHANNEL_ID)
    channel = cell.channel_by_id(SilcId.from_payload(raw))
    if channel is None:
        raise CommandError(Status.ERR_NO_SUCH_CHANNEL_ID, (2, raw))
    return channel


def _member_channel(cell: Cell, client: Client, raw: bytes | None) -> Channel:
    channel = _channel(cell, raw)
    if client not in channel.members:
        raise CommandError(Status.ERR_NOT_ON_CHANNEL, (2, channel.id_payload))
    return channel


def _nick_query(cell: Cell, raw: bytes) -> list[Client]:
    nick = raw.decode("utf-8")
    if "*" in nick or "?" in nick:
        raise CommandError(Status.ERR_WILDCARDS)
    return cell.clients_by_nick(nick)


def _no_such_nick(raw: bytes) -> Entry:
    return Status.ERR_NO_SUCH_NICK, [(2, raw), (3, raw)]  # silcd repeats the nick as arg 3


def _send_list(client: Client, cmd: Command, entries: list[Entry]) -> None:
    """One reply per entry; several make a list (silc-commands 2.4): LIST_START,
    ITEM, END in Status and the entry's own status in Error, errors last."""
    if len(entries) == 1:
        status, args = entries[0]
        client.reply(cmd, status, args)
        return
    entries = sorted(entries, key=lambda e: e[0] != Status.OK)
    last = len(entries) - 1
    for i, (status, args) in enumerate(entries):
        position = Status.LIST_START if i == 0 else Status.LIST_END if i == last else Status.LIST_ITEM
        client.reply(cmd, position, args, error=status)


# --- WHOIS and IDENTIFY ---


def whois(cell: Cell, client: Client, cmd: Command) -> None:
    ids = [raw for kind, raw in cmd.args.items if kind >= 4]
    nick = cmd.args.get(1)
    attrs = cmd.args.get(3)
    if ids:
        entries = []
        for raw in ids:
            target = cell.client_by_id(SilcId.from_payload(raw))
            entries.append(_whois_entry(cell, target, attrs) if target
                           else (Status.ERR_NO_SUCH_CLIENT_ID, [(2, raw)]))
    elif nick:
        found = _nick_query(cell, nick)
        count = cmd.args.get(2)
        if count and len(count) == 4 and int.from_bytes(count, "big"):
            found = found[: int.from_bytes(count, "big")]
        entries = [_whois_entry(cell, t, attrs) for t in found] or [_no_such_nick(nick)]
    else:
        raise CommandError(Status.ERR_NOT_ENOUGH_PARAMS)
    _send_list(client, cmd, entries)


def _whois_entry(cell: Cell, target: Client, attrs: bytes | None) -> Entry:
    args = [
        (2, target.id_payload),
        (3, target.nick_at_server()),
        (4, target.username.encode()),
        (5, target.realname.encode()),
    ]
    if target.channels:
        args.append((6, b"".join(channel_payload(c.name, c.id, 0) for c in target.channels)))
    args += [(7, u32(0)), (8, u32(int(time.monotonic() - target.last_receive)))]
    if target.public_key:  # possession was proven in SKE (mutual authentication)
        args.append((9, bytes.fromhex(target.fingerprint)))
    if target.channels:
        args.append((10, b"".join(u32(c.members[target]) for c in target.channels)))
    if attrs is not None:
        args.append((11, _attributes(cell, target, attrs)))
    return Status.OK, args


def _attributes(cell: Cell, target: Client, requested: bytes) -> bytes:
    """Answer Requested Attributes (silc-presence-attrs 2.4) for the user, as
    silcd does: the user's public key when asked, the server's key always."""

    def attribute(kind: int, flags: int, data: bytes) -> bytes:
        return bytes([kind, flags]) + u16_bytes(data)

    def key(kind: int, public: SilcPublicKey) -> bytes:
        return attribute(kind, ATTR_FLAG_VALID, u16_bytes(b"silc-rsa") + public.encode())

    r = Reader(requested)
    out = b""
    while r.remaining:
        kind = r.u8()
        r.u8()  # flags
        r.u16_bytes()  # data, empty in a request
        if kind == ATTR_USER_PUBLIC_KEY and target.public_key:
            out += key(kind, target.public_key)
        elif kind != ATTR_SERVER_PUBLIC_KEY:
            out += attribute(kind, ATTR_FLAG_INVALID, b"")
    return out + key(ATTR_SERVER_PUBLIC_KEY, cell.key_pair.public)


def identify(cell: Cell, client: Client, cmd: Command) -> None:
    ids = [raw for kind, raw in cmd.args.items if kind >= 5]
    if ids:
        entries = [_identify_id(cell, raw) for raw in ids]
    elif (nick := cmd.args.get(1)) is not None:
        entries = [_identify_client(c) for c in _nick_query(cell, nick)] or [_no_such_nick(nick)]
    elif (name := cmd.args.get(3)) is not None:
        channel = cell.channel_by_name(name.decode("utf-8"))
        entries = [(Status.OK, [(2, channel.id_payload), (3, channel.name.encode())]) if channel
                   else (Status.ERR_NO_SUCH_CHANNEL, [(2, name)])]
    elif (server := cmd.args.get(2)) is not None:
        entries = [_identify_server(cell) if server.decode("utf-8") == cell.server_name
                   else (Status.ERR_NO_SUCH_SERVER, [(2, server)])]
    else:
        raise CommandError(Status.ERR_NOT_ENOUGH_PARAMS)
    _send_list(client, cmd, entries)


def _identify_id(cell: Cell, raw: bytes) -> Entry:
    ident = SilcId.from_payload(raw)
    if ident.type == ID_CLIENT:
        target = cell.client_by_id(ident)
        return _identify_client(target) if target else (Status.ERR_NO_SUCH_CLIENT_ID, [(2, raw)])
    if ident.type == ID_SERVER:
        return _identify_server(cell) if ident.data == cell.server_id else (
            Status.ERR_NO_SUCH_SERVER_ID, [(2, raw)])
    channel = cell.channel_by_id(ident)
    return (Status.OK, [(2, raw), (3, channel.name.encode())]) if channel else (
        Status.ERR_NO_SUCH_CHANNEL_ID, [(2, raw)])


def _identify_client(target: Client) -> Entry:
    return Status.OK, [(2, target.id_payload), (3, target.nick_at_server()),
                       (4, target.username.encode())]


def _identify_server(cell: Cell) -> Entry:
    return Status.OK, [(2, cell.server_id_payload), (3, cell.server_name.encode())]


# --- the client itself ---


def nick(cell: Cell, client: Client, cmd: Command) -> None:
    """A new Client ID with every new nickname; NICK_CHANGE to everyone on the
    same channels, once each, the client included (silc-pp 2.3.7)."""
    raw = _required(cmd, 1)
    name = raw.decode("utf-8")
    if "*" in name or "?" in name:
        raise CommandError(Status.ERR_WILDCARDS)
    try:
        prepared = prepare_nickname(name)
    except ValueError as exc:
        raise CommandError(Status.ERR_BAD_NICKNAME) from exc
    if name != client.nick:  # like silcd, the same nickname keeps its ID
        old = client.id_payload
        try:
            new_id = client_id(cell.server_id[:4], prepared, cell.client_ids())
        except ValueError as exc:
            raise CommandError(Status.ERR_NICKNAME_IN_USE) from exc
        client.old_id, client.id = client.id, new_id
        client.nick, client.prepared_nick = name, prepared
        # Like silcd, to the client itself only when it is on a channel.
        for peer in ([client] if client.channels else []) + cell.peers_of(client):
            peer.notify(NotifyType.NICK_CHANGE, (1, old), (2, client.id_payload), (3, raw))
    client.reply(cmd, Status.OK, [(2, client.id_payload), (3, raw)])


def quit_(cell: Cell, client: Client, cmd: Command) -> None:
    """No reply: the channels hear why and the connection closes."""
    message = cmd.args.get(1)
    cell.forget(client, message=message.decode("utf-8", "replace") if message else None)
    client.stream.writer.close()


def info(cell: Cell, client: Client, cmd: Command) -> None:
    raw = cmd.args.get(2)
    if raw is not None and SilcId.from_payload(raw) != SilcId(ID_SERVER, cell.server_id):
        raise CommandError(Status.ERR_NO_SUCH_SERVER_ID, (2, raw))
    client.reply(cmd, Status.OK, [(2, cell.server_id_payload), (3, cell.server_name.encode()),
                                  (4, SERVER_VERSION.encode())])


def ping(cell: Cell, client: Client, cmd: Command) -> None:
    raw = _required(cmd, 1)
    if SilcId.from_payload(raw) != SilcId(ID_SERVER, cell.server_id):
        raise CommandError(Status.ERR_NO_SUCH_SERVER_ID, (2, raw))
    client.reply(cmd, Status.OK, [])


def getkey(cell: Cell, client: Client, cmd: Command) -> None:
    raw = _required(cmd, 1)
    ident = SilcId.from_payload(raw)
    if ident.type == ID_SERVER:
        if ident.data != cell.server_id:
            raise CommandError(Status.ERR_NO_SUCH_SERVER_ID, (2, raw))
        key = cell.key_pair.public
    else:
        target = cell.client_by_id(ident)
        if target is None:
            raise CommandError(Status.ERR_NO_SUCH_CLIENT_ID, (2, raw))
        key = target.public_key
    client.reply(cmd, Status.OK, [(2, raw), (3, public_key_payload(PK_TYPE_SILC, key.encode()))])


# --- channels ---


def join(cell: Cell, client: Client, cmd: Command) -> None:
    raw_name, raw_id = _required(cmd, 1), _required(cmd, 2)
    name = raw_name.decode("utf-8")
    if "*" in name or "?" in name:
        raise CommandError(Status.ERR_WILDCARDS)
    try:
        prepared = prepare_channel(name)
    except ValueError as exc:
        raise CommandError(Status.ERR_BAD_CHANNEL) from exc
    if SilcId.from_payload(raw_id) != SilcId(ID_CLIENT, client.id):
        raise CommandError(Status.ERR_BAD_CLIENT_ID, (2, raw_id))
    channel = cell.channels.get(prepared)
    created = channel is None
    if created:
        cipher = (cmd.args.get(4) or CHANNEL_CIPHER.encode()).decode("ascii", "replace")
        hmac = (cmd.args.get(5) or CHANNEL_HMAC.encode()).decode("ascii", "replace")
        for algorithm, known in ((cipher, CIPHERS), (hmac, HMACS)):
            if algorithm not in known:
                raise CommandError(Status.ERR_UNKNOWN_ALGORITHM, (2, algorithm.encode()))
        channel = cell.create_channel(name, prepared, cipher, hmac)
    elif client in channel.members:
        raise CommandError(Status.ERR_USER_ON_CHANNEL, (2, client.id_payload), (3, channel.id_payload))
    # silc-spec 4.3: a new key on every join; the joiner gets it in the reply.
    cell.new_channel_key(channel)
    channel.members[client] = CUMODE_FOUNDER | CUMODE_OPERATOR if created else 0
    client.channels.append(channel)
    members = list(channel.members)
    args = [
        (2, channel.name.encode()),
        (3, channel.id_payload),
        (4, client.id_payload),
        (5, u32(channel.mode)),
        (6, u32(1 if created else 0)),
    ]
    if not channel.private_keys:
        args.append((7, ChannelKeyPayload(channel.id, channel.key.cipher, channel.key.key).encode()))
    if channel.topic:
        args.append((10, channel.topic.encode()))
    args += [
        (11, channel.key.hmac.encode()),
        (12, u32(len(members))),
        (13, b"".join(m.id_payload for m in members)),
        (14, b"".join(u32(channel.members[m]) for m in members)),
    ]
    client.reply(cmd, Status.OK, args)
    # silc-pp 2.3.7: JOIN goes to the channel, the joiner included.
    cell.tell_channel(channel, NotifyType.JOIN, (1, client.id_payload), (2, channel.id_payload))
    log.info("silc_join", nick=client.nick, channel=channel.name, created=created)


def leave(cell: Cell, client: Client, cmd: Command) -> None:
    channel = _member_channel(cell, client, cmd.args.get(1))
    client.reply(cmd, Status.OK, [(2, channel.id_payload)])
    # silc-pp 2.3.7: LEAVE is not sent to the leaving client.
    cell.tell_channel(channel, NotifyType.LEAVE, (1, client.id_payload), skip=client)
    cell.remove_from_channel(channel, client)


def topic(cell: Cell, client: Client, cmd: Command) -> None:
    channel = _member_channel(cell, client, cmd.args.get(1))
    new = cmd.args.get(2)
    if new is not None and channel.mode & CMODE_TOPIC and not _is_operator(channel, client):
        raise CommandError(Status.ERR_NO_CHANNEL_PRIV, (2, channel.id_payload))
    if new is not None:
        channel.topic = new.decode("utf-8")
        cell.tell_channel(channel, NotifyType.TOPIC_SET, (1, client.id_payload), (2, new))
    args = [(2, channel.id_payload)]
    if channel.topic:
        args.append((3, channel.topic.encode()))
    client.reply(cmd, Status.OK, args)


def cmode(cell: Cell, client: Client, cmd: Command) -> None:
    """Only PRIVKEY (founder) and TOPIC (operators) are implemented."""
    channel = _member_channel(cell, client, cmd.args.get(1))
    raw = cmd.args.get(2)
    if raw is not None:
        if len(raw) != 4:
            raise DecodeError("mode mask is not 32 bits")
        mode = int.from_bytes(raw, "big")
        changed = mode ^ channel.mode
        if changed & ~(CMODE_PRIVKEY | CMODE_TOPIC):
            raise CommandError(Status.ERR_UNKNOWN_MODE)
        if changed & CMODE_PRIVKEY and not channel.members[client] & CUMODE_FOUNDER:
            raise CommandError(Status.ERR_NO_CHANNEL_FOPRIV, (2, channel.id_payload))
        if changed and not _is_operator(channel, client):
            raise CommandError(Status.ERR_NO_CHANNEL_PRIV, (2, channel.id_payload))
        channel.mode = mode
        if changed:
            cell.tell_channel(channel, NotifyType.CMODE_CHANGE, (1, client.id_payload), (2, raw))
        if changed & CMODE_PRIVKEY and not channel.private_keys:
            cell.new_channel_key(channel)  # back to server keys
    client.reply(cmd, Status.OK, [(2, channel.id_payload), (3, u32(channel.mode))])


def _is_operator(channel: Channel, client: Client) -> bool:
    return bool(channel.members[client] & (CUMODE_OPERATOR | CUMODE_FOUNDER))


def users(cell: Cell, client: Client, cmd: Command) -> None:
    if cmd.args.get(1) is not None:
        channel = _channel(cell, cmd.args.get(1))
    elif (name := cmd.args.get(2)) is not None:
        channel = cell.channel_by_name(name.decode("utf-8"))
        if channel is None:
            raise CommandError(Status.ERR_NO_SUCH_CHANNEL, (2, name))
    else:
        raise CommandError(Status.ERR_NOT_ENOUGH_PARAMS)
    members = list(channel.members)
    client.reply(cmd, Status.OK, [
        (2, channel.id_payload),
        (3, u32(len(members))),
        (4, b"".join(m.id_payload for m in members)),
        (5, b"".join(u32(channel.members[m]) for m in members)),
    ])


def kick(cell: Cell, client: Client, cmd: Command) -> None:
    channel = _member_channel(cell, client, cmd.args.get(1))
    raw_target = cmd.args.get(2)
    if raw_target is None:
        raise CommandError(Status.ERR_NO_CLIENT_ID)
    if not _is_operator(channel, client):
        raise CommandError(Status.ERR_NO_CHANNEL_PRIV, (2, channel.id_payload))
    target = cell.client_by_id(SilcId.from_payload(raw_target))
    if target is None:
        raise CommandError(Status.ERR_NO_SUCH_CLIENT_ID, (2, raw_target))
    if target not in channel.members:
        raise CommandError(Status.ERR_USER_NOT_ON_CHANNEL, (2, raw_target), (3, channel.id_payload))
    if channel.members[target] & CUMODE_FOUNDER and target is not client:
        # silc-spec 3.4: the founder cannot be removed by force.
        raise CommandError(Status.ERR_NO_CHANNEL_FOPRIV, (2, channel.id_payload))
    client.reply(cmd, Status.OK, [(2, channel.id_payload), (3, target.id_payload)])
    cell.kick(channel, target, (cmd.args.get(3) or b"").decode("utf-8", "replace"), client.id_payload)


HANDLERS: dict[int, Callable[[Cell, Client, Command], None]] = {
    Cmd.WHOIS: whois,
    Cmd.IDENTIFY: identify,
    Cmd.NICK: nick,
    Cmd.TOPIC: topic,
    Cmd.QUIT: quit_,
    Cmd.INFO: info,
    Cmd.PING: ping,
    Cmd.JOIN: join,
    Cmd.KICK: kick,
    Cmd.LEAVE: leave,
    Cmd.USERS: users,
    Cmd.CMODE: cmode,
    Cmd.GETKEY: getkey,
}
