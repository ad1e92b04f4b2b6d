"""TestUser: a scripted SILC client playing "a real SILC user" in tests.

Written from the drafts like the server it shares packet and SKE code with,
and independently of bridge/silc.  Everything the server sends becomes an
event (dataclasses below) that tests wait for with `wait_for`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import structlog

from . import ske
from .crypto import KeyPair, SilcPublicKey, cached_key_pair, digest
from .message import (
    ChannelKey,
    decode_channel_message,
    decode_private_message,
    encode_channel_message,
    encode_private_message,
    private_channel_key,
)
from .numbers import (
    CONN_CLIENT,
    MSG_ACTION,
    MSG_NOTICE,
    MSG_UTF8,
    SKE_PFS,
    AuthMethod,
    Cmd,
    NotifyType,
    PacketType,
    Status,
)
from .packet import MalformedPacket, Packet, PacketError, PacketStream
from .wire import (
    ID_CHANNEL,
    ID_CLIENT,
    ID_SERVER,
    ArgMap,
    ChannelKeyPayload,
    Command,
    ConnectionAuth,
    DecodeError,
    NewClient,
    Notify,
    SilcId,
    decode_id_list,
    decode_public_key_payload,
    u16,
)

log = structlog.get_logger(__name__)

MAX_EVENTS = 1000
OLD_KEYS_KEPT = 4  # silc-spec 4.4: keep a few old channel keys for messages in flight


# --- events ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelMessage:
    channel: str
    nick: str
    text: str
    flags: int
    sender_id: bytes

    @property
    def action(self) -> bool:
        return bool(self.flags & MSG_ACTION)

    @property
    def notice(self) -> bool:
        return bool(self.flags & MSG_NOTICE)


@dataclass(frozen=True)
class PrivateMessage:
    nick: str
    text: str
    flags: int
    sender_id: bytes


@dataclass(frozen=True)
class Joined:
    channel: str
    nick: str
    client_id: bytes


@dataclass(frozen=True)
class Left:
    channel: str
    nick: str
    client_id: bytes


@dataclass(frozen=True)
class SignedOff:
    """Once per channel shared with the user (silcd sends it so)."""

    channel: str | None
    nick: str
    message: str
    client_id: bytes


@dataclass(frozen=True)
class NickChanged:
    old: str
    new: str
    old_id: bytes
    new_id: bytes


@dataclass(frozen=True)
class TopicSet:
    channel: str
    nick: str
    topic: str


@dataclass(frozen=True)
class ModeChanged:
    """CMODE_CHANGE: the channel's new mode mask."""

    channel: str
    nick: str
    mode: int


@dataclass(frozen=True)
class Kicked:
    channel: str
    nick: str
    by: str
    comment: str


@dataclass(frozen=True)
class Killed:
    nick: str
    by: str
    comment: str


@dataclass(frozen=True)
class ServerNotice:
    """NOTIFY NONE lines and the MOTD."""

    text: str


@dataclass(frozen=True)
class NotifyError:
    status: int


@dataclass(frozen=True)
class Disconnected:
    message: str


class CommandFailed(Exception):
    def __init__(self, command: Cmd, status: int) -> None:
        try:
            name = Status(status).name
        except ValueError:
            name = str(status)
        super().__init__(f"{command.name} failed: {name}")
        self.command = command
        self.status = status


class Refused(ConnectionError):
    """The server answered the handshake with FAILURE or DISCONNECT."""


class ServerKeyMismatch(Exception):
    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"server key fingerprint {got} is not the expected {expected}")
        self.expected, self.got = expected, got


@dataclass
class ChannelState:
    name: str
    id: bytes
    hmac: str
    keys: deque[ChannelKey] = field(default_factory=lambda: deque(maxlen=OLD_KEYS_KEPT))
    members: set[bytes] = field(default_factory=set)
    private_key: ChannelKey | None = None

    def sending_key(self) -> ChannelKey:
        return self.private_key or self.keys[0]

    def receiving_keys(self) -> list[ChannelKey]:
        return ([self.private_key] if self.private_key else []) + list(self.keys)

    def id_payload(self) -> bytes:
        return SilcId(ID_CHANNEL, self.id).payload()


@dataclass
class _Pending:
    """An event waiting for Client IDs to become nicks, in arrival order."""

    kind: type
    values: dict
    ids: dict[str, SilcId]


class TestUser:
    """A SILC user on the test server (or any SILC server).

    `async with TestUser("alice", port) as alice:` connects and registers;
    see the package docstring for the methods.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        nick: str,
        port: int,
        *,
        host: str = "127.0.0.1",
        username: str | None = None,
        realname: str | None = None,
        key_pair: KeyPair | None = None,
        passphrase: str | None = None,
        algorithms: ske.Algorithms | None = None,
        server_fingerprint: str | None = None,
        pfs: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.nick = nick
        self.port = port
        self.host = host
        self.username = username or nick
        self.realname = realname or f"Test user {nick}"
        self.key_pair = key_pair or cached_key_pair(f"user-{nick}")
        self.passphrase = passphrase
        self.algorithms = algorithms or ske.Algorithms()
        self.server_fingerprint = server_fingerprint
        self.ske_flags = SKE_PFS if pfs else 0
        self.timeout = timeout
        self.stream: PacketStream | None = None
        self.session: ske.Session | None = None
        self.server_key: SilcPublicKey | None = None
        self.client_id = b""
        self.server_id = b""
        self.channels: dict[str, ChannelState] = {}
        self.events: deque = deque(maxlen=MAX_EVENTS)  # everything, for assertions
        self._unseen: deque = deque(maxlen=MAX_EVENTS)  # not yet returned by wait_for
        self._event_added = asyncio.Condition()
        self._nicks: dict[bytes, str] = {}
        self._lookups: dict[bytes, asyncio.Future] = {}
        self._replies: dict[int, tuple[asyncio.Future, list[Command]]] = {}
        self._idents = itertools.count(1)
        self._pending: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=MAX_EVENTS)
        self._tasks: list[asyncio.Task] = []
        self._rekey: dict | None = None
        self.closed = asyncio.Event()
        #: If set, channel texts go to on_text(channel, text) as they are read,
        #: not into `events` (a load test reads more than MAX_EVENTS of them).
        self.on_text: Callable[[str, str], None] | None = None

    @property
    def fingerprint(self) -> str:
        return self.key_pair.public.fingerprint

    # --- connection ---

    async def connect(self) -> None:
        """Key exchange, connection authentication, NEW_CLIENT (silc-spec 4.1)."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
        self.stream = PacketStream(reader, writer)
        try:
            self.session = await ske.initiate(
                self.stream, self.key_pair, self.algorithms, self.timeout, self.ske_flags
            )
            self.server_key = self.session.peer_key
            if self.server_fingerprint and self.server_key.fingerprint != self.server_fingerprint:
                raise ServerKeyMismatch(self.server_fingerprint, self.server_key.fingerprint)
            await self._authenticate()
            self.stream.send(Packet(PacketType.NEW_CLIENT,
                                    NewClient(self.username, self.realname, self.nick).encode()))
            new_id = await self._next(PacketType.NEW_ID)
            self.client_id = SilcId.from_payload(new_id.data).data
            self._nicks[self.client_id] = self.nick
        except BaseException:
            writer.close()
            raise
        self._tasks = [asyncio.create_task(self._read_loop()), asyncio.create_task(self._publish_loop())]
        log.info("silc_test_user_connected", nick=self.nick, cipher=self.session.cipher)

    async def _next(self, wanted: PacketType) -> Packet:
        while True:
            packet = await asyncio.wait_for(self.stream.receive(), self.timeout)
            if packet.src_type == ID_SERVER:
                self.server_id = packet.src_id
            if packet.type == wanted:
                return packet
            if packet.type in (PacketType.FAILURE, PacketType.DISCONNECT):
                raise Refused(f"server refused: {packet!r} {packet.data!r}")

    async def _authenticate(self) -> None:
        """Ask for the method first, as the real client does (README)."""
        self.stream.send(Packet(PacketType.CONNECTION_AUTH_REQUEST, u16(CONN_CLIENT) + u16(0)))
        reply = await self._next(PacketType.CONNECTION_AUTH_REQUEST)
        method = int.from_bytes(reply.data[2:4], "big")
        data, long_pad = b"", False
        if method == AuthMethod.PASSPHRASE:
            data, long_pad = (self.passphrase or "").encode(), True  # silc-ke-auth 3.2.1
        elif method == AuthMethod.PUBLIC_KEY:
            s = self.session
            data = self.key_pair.sign(digest(s.hash, s.ske_hash + s.initiator_start))
        self.stream.send(Packet(PacketType.CONNECTION_AUTH, ConnectionAuth(CONN_CLIENT, data).encode()),
                         long_pad=long_pad)
        await self._next(PacketType.SUCCESS)

    async def close(self) -> None:
        """Drop the connection without QUIT."""
        if self.stream is not None:
            self.stream.writer.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.closed.set()

    async def quit(self, message: str = "") -> None:
        """QUIT (no reply), then wait for the server to close the connection."""
        self._send_command(Cmd.QUIT, [(1, message.encode())] if message else [])
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.closed.wait(), self.timeout)
        await self.close()

    async def __aenter__(self) -> TestUser:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # --- commands ---

    def _send(self, ptype: int, data: bytes, dst: tuple[int, bytes] | None = None, flags: int = 0) -> None:
        dst_type, dst_id = dst or (ID_SERVER, self.server_id)
        self.stream.send(Packet(ptype, data, flags, ID_CLIENT, self.client_id, dst_type, dst_id))

    def send_packet(self, ptype: int, data: bytes = b"", *, dst: tuple[int, bytes] | None = None,
                    flags: int = 0) -> None:
        """Test hook: any packet, properly framed, from this client (to the server
        unless `dst` says otherwise)."""
        self._send(ptype, data, dst, flags)

    def send_bytes(self, data: bytes) -> None:
        """Test hook: raw bytes on the connection, bypassing framing and keys."""
        self.stream.writer.write(data)

    def _send_command(self, cmd: Cmd, args: list[tuple[int, bytes]]) -> int:
        ident = next(self._idents) % 0xFFFF + 1
        self._send(PacketType.COMMAND, Command(cmd, ident, ArgMap(args)).encode())
        return ident

    async def command(self, cmd: Cmd, *args: tuple[int, bytes], check: bool = True) -> list[Command]:
        """Send a command and return its replies (several for a list reply).
        With `check`, a single error reply raises CommandFailed."""
        future = asyncio.get_running_loop().create_future()
        ident = self._send_command(cmd, list(args))
        self._replies[ident] = (future, [])
        try:
            replies = await asyncio.wait_for(future, self.timeout)
        finally:
            self._replies.pop(ident, None)
        status = replies[0].status()[0]
        if check and len(replies) == 1 and status != Status.OK:
            raise CommandFailed(cmd, status)
        return replies

    def id_payload(self) -> bytes:
        return SilcId(ID_CLIENT, self.client_id).payload()

    def _channel(self, name: str) -> ChannelState:
        for state in self.channels.values():
            if state.name.lower() == name.lower():
                return state
        raise KeyError(f"{self.nick} is not on {name}")

    async def join(self, channel: str, *, cipher: str | None = None, hmac: str | None = None) -> list[str]:
        """JOIN (creating the channel if needed); returns the members' nicks."""
        args = [(1, channel.encode()), (2, self.id_payload())]
        if cipher:
            args.append((4, cipher.encode()))
        if hmac:
            args.append((5, hmac.encode()))
        (reply,) = await self.command(Cmd.JOIN, *args)
        state = self.channels[reply.args.get(2).decode()]  # filled by the reader
        return sorted([await self.nick_of(member) for member in state.members])

    async def leave(self, channel: str) -> None:
        state = self._channel(channel)
        await self.command(Cmd.LEAVE, (1, state.id_payload()))
        self.channels.pop(state.name, None)

    async def say(self, channel: str, text: str, *, action: bool = False, notice: bool = False) -> None:
        """A channel message under the current channel key."""
        state = self._channel(channel)
        flags = MSG_UTF8 | (MSG_ACTION if action else 0) | (MSG_NOTICE if notice else 0)
        payload = encode_channel_message(state.sending_key(), flags, text.encode(), self.client_id, state.id)
        self._send(PacketType.CHANNEL_MESSAGE, payload, dst=(ID_CHANNEL, state.id))

    def set_private_key(self, channel: str, passphrase: str | None) -> None:
        """Talk on `channel` under a key from `passphrase` instead of the
        server's channel key (None: back to the channel key)."""
        self._channel(channel).private_key = private_channel_key(passphrase) if passphrase else None

    async def msg(self, nick: str, text: str, *, action: bool = False) -> None:
        """A private message under the session keys (silc-spec 4.5)."""
        target = await self.client_id_of(nick)
        flags = MSG_UTF8 | (MSG_ACTION if action else 0)
        self._send(PacketType.PRIVATE_MESSAGE, encode_private_message(flags, text.encode()),
                   dst=(ID_CLIENT, target))

    async def set_nick(self, nick: str) -> None:
        (reply,) = await self.command(Cmd.NICK, (1, nick.encode()))
        self.client_id = SilcId.from_payload(reply.args.get(2)).data
        self.nick = nick
        self._nicks[self.client_id] = nick

    async def set_mode(self, channel: str, mode: int) -> int:
        """CMODE with a whole new mode mask; returns the mask the server keeps."""
        state = self._channel(channel)
        (reply,) = await self.command(Cmd.CMODE, (1, state.id_payload()), (2, mode.to_bytes(4, "big")))
        return int.from_bytes(reply.args.get(3), "big")

    async def set_topic(self, channel: str, topic: str) -> None:
        state = self._channel(channel)
        await self.command(Cmd.TOPIC, (1, state.id_payload()), (2, topic.encode()))

    async def kick(self, channel: str, nick: str, comment: str = "") -> None:
        state = self._channel(channel)
        target = await self.client_id_of(nick)
        args = [(1, state.id_payload()), (2, SilcId(ID_CLIENT, target).payload())]
        if comment:
            args.append((3, comment.encode()))
        await self.command(Cmd.KICK, *args)

    async def users(self, channel: str) -> list[str]:
        (reply,) = await self.command(Cmd.USERS, (2, channel.encode()))
        count = int.from_bytes(reply.args.get(3), "big")
        ids = decode_id_list(reply.args.get(4), count)
        return sorted([await self.nick_of(i.data) for i in ids])

    async def whois(self, nick: str, *, attributes: bytes | None = None) -> ArgMap:
        args = [(1, nick.encode())]
        if attributes is not None:
            args.append((3, attributes))
        return (await self.command(Cmd.WHOIS, *args))[0].args

    async def getkey(self, nick: str) -> SilcPublicKey:
        target = await self.client_id_of(nick)
        (reply,) = await self.command(Cmd.GETKEY, (1, SilcId(ID_CLIENT, target).payload()))
        _, key = decode_public_key_payload(reply.args.get(3))
        return SilcPublicKey.decode(key)

    async def ping(self) -> None:
        await self.command(Cmd.PING, (1, SilcId(ID_SERVER, self.server_id).payload()))

    async def client_id_of(self, nick: str) -> bytes:
        (reply, *_) = await self.command(Cmd.IDENTIFY, (1, nick.encode()))
        ident = SilcId.from_payload(reply.args.get(2)).data
        self._nicks[ident] = nick
        return ident

    async def nick_of(self, client_id: bytes) -> str:
        """The nickname behind a Client ID, asking the server (IDENTIFY) once."""
        return await self._name_of(SilcId(ID_CLIENT, client_id))

    async def _name_of(self, ident: SilcId) -> str:
        """A client's nickname or a server's name; the hex ID if unknown."""
        if ident.data in self._nicks:
            return self._nicks[ident.data]
        try:
            return await asyncio.wait_for(asyncio.shield(self._lookup(ident)), self.timeout)
        except (asyncio.TimeoutError, ConnectionError, CommandFailed, DecodeError):
            return ident.data.hex()

    def _lookup(self, ident: SilcId) -> asyncio.Future:
        """Start resolving an ID now, while its owner still has it."""
        future = self._lookups.get(ident.data)
        if future is None and ident.data not in self._nicks:
            future = self._lookups[ident.data] = asyncio.ensure_future(self._identify(ident))
        return future

    async def _identify(self, ident: SilcId) -> str:
        (reply, *_) = await self.command(Cmd.IDENTIFY, (5, ident.payload()))
        name = reply.args.get(3).decode("utf-8")
        if ident.type == ID_CLIENT:
            name = name.partition("@")[0]
        self._nicks.setdefault(ident.data, name)
        return name

    async def rekey(self) -> None:
        """Initiator side of silc-spec 4.8, with PFS when the key exchange chose it."""
        done = asyncio.get_running_loop().create_future()
        session = self.session
        if session.pfs:
            ours, secret = ske.pfs_start(session)
            self._rekey = {"done": done, "secret": secret}
            self._send(PacketType.REKEY, b"")
            self._send(PacketType.KEY_EXCHANGE_1, ours.encode())
        else:
            self._rekey = {"done": done}
            self._send(PacketType.REKEY, b"")
            self._rekey_send_side(ske.rekeyed(session, session.keys.send_key))
        await asyncio.wait_for(done, self.timeout)

    def _rekey_send_side(self, new: ske.Session) -> None:
        self._send(PacketType.REKEY_DONE, b"")  # under the old keys
        ske.install_keys(self.stream, new, responder=False, receive=False)
        self._rekey["session"] = new

    # --- events ---

    def events_of(self, kind: type, **match) -> list:
        """Every event so far of `kind` whose fields equal `match`."""
        return [e for e in self.events if _matches(e, kind, match)]

    async def wait_for(self, kind: type, timeout: float = 5.0, **match):
        """The oldest event of `kind` matching `match` not returned before.
        A match value may be a callable predicate.  Raises TimeoutError with
        the events that did arrive."""

        def find():
            for event in self._unseen:
                if _matches(event, kind, match):
                    return event
            return None

        async with self._event_added:
            try:
                await asyncio.wait_for(self._event_added.wait_for(lambda: find() is not None), timeout)
            except asyncio.TimeoutError:
                raise asyncio.TimeoutError(
                    f"{self.nick}: no {kind.__name__} matching {match}; unseen: {list(self._unseen)}"
                ) from None
            event = find()
            self._unseen.remove(event)
            return event

    async def _emit(self, event) -> None:
        async with self._event_added:
            self.events.append(event)
            self._unseen.append(event)
            self._event_added.notify_all()

    def _queue(self, kind: type, ids: dict[str, SilcId] | None = None, **values) -> None:
        ids = ids or {}
        for ident in ids.values():
            self._lookup(ident)
        try:
            self._pending.put_nowait(_Pending(kind, values, ids))
        except asyncio.QueueFull:
            log.warning("silc_test_user_events_dropped", nick=self.nick)

    async def _publish_loop(self) -> None:
        while True:
            item = await self._pending.get()
            try:
                names = {name: await self._name_of(ident) for name, ident in item.ids.items()}
                if item.kind is NickChanged:
                    self._nicks[item.values["new_id"]] = item.values["new"]
                await self._emit(item.kind(**item.values, **names))
            except Exception:
                log.exception("silc_test_user_event_failed", nick=self.nick, kind=item.kind.__name__)

    # --- receiving ---

    async def _read_loop(self) -> None:
        message = "connection closed"
        try:
            while True:
                try:
                    packet = await self.stream.receive()
                except MalformedPacket as exc:
                    log.warning("silc_test_user_packet_dropped", nick=self.nick, error=str(exc))
                    continue
                if packet.type == PacketType.DISCONNECT:
                    message = packet.data[1:].decode("utf-8", "replace")
                    break
                try:
                    self._dispatch(packet)
                except (DecodeError, UnicodeDecodeError, ValueError, KeyError) as exc:
                    log.warning("silc_test_user_payload_malformed", nick=self.nick,
                                packet=repr(packet), error=repr(exc))
                except Exception:  # a bug must show, and not silence the user
                    log.exception("silc_test_user_packet_failed", nick=self.nick, packet=repr(packet))
        except (asyncio.IncompleteReadError, ConnectionError, PacketError) as exc:
            if isinstance(exc, PacketError):
                message = f"protocol error: {exc}"
        finally:
            for future, _ in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError(message))
            self._queue(Disconnected, message=message)
            self.closed.set()

    def _dispatch(self, packet: Packet) -> None:
        handler = {
            PacketType.COMMAND_REPLY: self._on_reply,
            PacketType.NOTIFY: self._on_notify,
            PacketType.CHANNEL_KEY: self._on_channel_key,
            PacketType.CHANNEL_MESSAGE: self._on_channel_message,
            PacketType.PRIVATE_MESSAGE: self._on_private_message,
            PacketType.KEY_EXCHANGE_2: self._on_rekey_ke2,
            PacketType.REKEY_DONE: self._on_rekey_done,
        }.get(packet.type)
        if handler is not None:
            handler(packet)
        elif packet.type != PacketType.HEARTBEAT:
            log.info("silc_test_user_packet_ignored", nick=self.nick, packet=repr(packet))

    def _on_reply(self, packet: Packet) -> None:
        reply = Command.decode(packet.data)
        status, _ = reply.status()
        entry = self._replies.get(reply.ident)
        if reply.command == Cmd.JOIN and status == Status.OK:
            try:
                self._on_join_reply(reply.args)
            except (DecodeError, TypeError, ValueError) as exc:
                if entry is not None:
                    entry[0].set_exception(DecodeError(f"bad JOIN reply: {exc!r}"))
                raise
        if entry is None:
            return
        future, replies = entry
        replies.append(reply)
        if status not in (Status.LIST_START, Status.LIST_ITEM) and not future.done():
            future.set_result(replies)

    def _on_join_reply(self, args: ArgMap) -> None:
        """Keep the channel's ID, key and members before any message can arrive."""
        name = args.get(2).decode("utf-8")
        channel_id = SilcId.from_payload(args.get(3)).data
        hmac = args.get(11).decode("ascii")
        count = int.from_bytes(args.get(12), "big")
        state = ChannelState(name, channel_id, hmac)
        if args.get(7) is not None:  # absent when the channel uses private keys
            key = ChannelKeyPayload.decode(args.get(7))
            state.keys.appendleft(ChannelKey(key.cipher, key.key, hmac))
        state.members = {i.data for i in decode_id_list(args.get(13), count)}
        self.channels[name] = state
        for member in state.members:
            self._lookup(SilcId(ID_CLIENT, member))

    def _channel_by_id(self, channel_id: bytes) -> ChannelState | None:
        return next((c for c in self.channels.values() if c.id == channel_id), None)

    def _on_channel_key(self, packet: Packet) -> None:
        payload = ChannelKeyPayload.decode(packet.data)
        state = self._channel_by_id(payload.channel_id)
        if state is not None:
            state.keys.appendleft(ChannelKey(payload.cipher, payload.key, state.hmac))

    def _on_channel_message(self, packet: Packet) -> None:
        state = self._channel_by_id(packet.dst_id)
        if state is None:
            log.warning("silc_test_user_unknown_channel", nick=self.nick)
            return
        message = decode_channel_message(state.receiving_keys(), packet.data, packet.src_id, state.id)
        if self.on_text is not None:
            self.on_text(state.name, message.data.decode("utf-8", "replace"))
            return
        self._queue(ChannelMessage, {"nick": SilcId(ID_CLIENT, packet.src_id)}, channel=state.name,
                    text=message.data.decode("utf-8", "replace"), flags=message.flags,
                    sender_id=packet.src_id)

    def _on_private_message(self, packet: Packet) -> None:
        message = decode_private_message(packet.data)
        self._queue(PrivateMessage, {"nick": SilcId(ID_CLIENT, packet.src_id)},
                    text=message.data.decode("utf-8", "replace"), flags=message.flags,
                    sender_id=packet.src_id)

    def _on_notify(self, packet: Packet) -> None:
        notify = Notify.decode(packet.data)
        args = notify.args

        def ident(n: int) -> SilcId:
            return SilcId.from_payload(args.get(n))

        def cid(n: int) -> bytes:
            return ident(n).data

        def text(n: int) -> str:
            return (args.get(n) or b"").decode("utf-8", "replace")

        kind = notify.type
        if kind in (NotifyType.NONE, NotifyType.MOTD):
            self._queue(ServerNotice, text=text(1))
        elif kind == NotifyType.JOIN:
            state = self._channel_by_id(cid(2))
            if state is not None:
                state.members.add(cid(1))
                self._queue(Joined, {"nick": ident(1)}, channel=state.name, client_id=cid(1))
        elif kind == NotifyType.LEAVE:
            state = self._channel_by_id(packet.dst_id)
            if state is not None:
                state.members.discard(cid(1))
                self._queue(Left, {"nick": ident(1)}, channel=state.name, client_id=cid(1))
        elif kind == NotifyType.SIGNOFF:
            state = self._channel_by_id(packet.dst_id) if packet.dst_type == ID_CHANNEL else None
            for joined in self.channels.values():
                joined.members.discard(cid(1))
            self._queue(SignedOff, {"nick": ident(1)}, channel=state.name if state else None,
                        message=text(2), client_id=cid(1))
        elif kind == NotifyType.NICK_CHANGE:
            old, new = cid(1), cid(2)
            for state in self.channels.values():
                if old in state.members:
                    state.members.discard(old)
                    state.members.add(new)
            self._queue(NickChanged, {"old": ident(1)}, new=text(3), old_id=old, new_id=new)
        elif kind == NotifyType.TOPIC_SET:
            state = self._channel_by_id(packet.dst_id)
            if state is not None:
                self._queue(TopicSet, {"nick": ident(1)}, channel=state.name, topic=text(2))
        elif kind == NotifyType.CMODE_CHANGE:
            state = self._channel_by_id(packet.dst_id)
            if state is not None:
                self._queue(ModeChanged, {"nick": ident(1)}, channel=state.name,
                            mode=int.from_bytes(args.get(2), "big"))
        elif kind == NotifyType.KICKED:
            state = self._channel_by_id(packet.dst_id)
            if state is not None:
                self._queue(Kicked, {"nick": ident(1), "by": ident(3)}, channel=state.name,
                            comment=text(2))
                state.members.discard(cid(1))
                if cid(1) == self.client_id:
                    self.channels.pop(state.name, None)
        elif kind == NotifyType.KILLED:
            self._queue(Killed, {"nick": ident(1), "by": ident(3)}, comment=text(2))
        elif kind == NotifyType.ERROR:
            self._queue(NotifyError, status=args.get(1)[0])
        else:
            log.info("silc_test_user_notify_ignored", nick=self.nick, type=kind)

    def _on_rekey_ke2(self, packet: Packet) -> None:
        if not self._rekey or "secret" not in self._rekey:
            raise ValueError("KEY_EXCHANGE_2 outside a PFS rekey")
        shared = ske.pfs_finish(self.session, self._rekey["secret"], ske.KePayload.decode(packet.data))
        self._rekey_send_side(ske.rekeyed(self.session, shared))

    def _on_rekey_done(self, packet: Packet) -> None:
        if not self._rekey or "session" not in self._rekey:
            raise ValueError("REKEY_DONE without a rekey")
        new = self._rekey["session"]
        ske.install_keys(self.stream, new, responder=False, send=False)
        self.session = new
        self._rekey["done"].set_result(None)
        self._rekey = None


def _matches(event, kind: type, match: dict) -> bool:
    if not isinstance(event, kind):
        return False
    names = {f.name for f in fields(event)}
    for key, wanted in match.items():
        if key not in names:
            raise TypeError(f"{kind.__name__} has no field {key!r}")
        value = getattr(event, key)
        if not (wanted(value) if callable(wanted) else value == wanted):
            return False
    return True
