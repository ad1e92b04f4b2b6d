"""One SILC client connection as a state machine over bytes (silc-spec 4.1).

    KEY_EXCHANGE -> AUTH -> REGISTERING -> CONNECTED -> QUITTING -> CLOSED

The owner feeds received bytes to `data_received`, sends what `transmit` is
given, runs `dispatch()` as a task and watches `done` (a future that fails
with SessionError when the connection must go). Commands are coroutines that
wait for their reply by Command Identifier. Events reach `on_event` in the
order their packets came, once the users in them are resolved (WHOIS gives
nick and public-key fingerprint).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import structlog

from bridge.silc import events as ev
from bridge.silc.auth import CONN_CLIENT, AuthMethod, AuthRequestPayload, ConnectionAuthPayload, auth_data
from bridge.silc.buffer import DecodeError, text
from bridge.silc.channel import DEFAULT_HMAC, Channel
from bridge.silc.crypto import CryptoError, Hmac, KeyMaterial, ctr_prefix, packet_cipher
from bridge.silc.ids import IdType, SilcId, decode_id_payload, encode_id_payload, read_id_payload
from bridge.silc.message import (
    ChannelKey,
    MessageFlag,
    MessagePayload,
    check_signature,
    decode_plain,
    decrypt_channel_message,
    encode_plain,
    encrypt_channel_message,
)
from bridge.silc.packet import (
    FramingError,
    Packet,
    PacketError,
    PacketFlag,
    PacketReader,
    PacketType,
    PacketWriter,
)
from bridge.silc.payloads import (
    Arguments,
    ChannelKeyPayload,
    Command,
    CommandPayload,
    DisconnectPayload,
    NewClientPayload,
    Notify,
    NotifyPayload,
    PublicKeyPayload,
    Status,
    decode_id_list,
    decode_protocol_status,
    decode_u32,
    encode_protocol_status,
    read_list,
    status_name,
)
from bridge.silc.pubkey import PK_TYPE_SILC, KeyPair, PublicKey, decode_public_key
from bridge.silc.ske import Initiator, PfsRekey, Proposal, SkeError, SkeResult, SkeStatus, rekey_material

log = structlog.get_logger(__name__)

MAX_MAC_FAILURES = 3  # in a row: the stream is not to be trusted any more
MAX_PENDING_COMMANDS = 256
MAX_USERS = 10_000
MAX_HELD = 1000


class SessionError(Exception):
    """The connection must be closed."""


class KeyRefused(SessionError):
    """The server's public key is not the pinned or configured one."""


class NotConnected(Exception):
    """The session is not registered (or already closed)."""


class CommandError(Exception):
    def __init__(self, command: int, status: int) -> None:
        super().__init__(f"{Command(command).name} failed: {status_name(status)}")
        self.command, self.status = command, status


class Phase(enum.Enum):
    KEY_EXCHANGE = "key exchange"
    AUTH = "authentication"
    REGISTERING = "registering"
    CONNECTED = "connected"
    QUITTING = "quitting"  # QUIT sent or about to be: reading until the server closes
    CLOSED = "closed"


@dataclass(frozen=True)
class SessionConfig:
    username: str
    realname: str
    password: str | None = None
    proposal: Proposal = Proposal()
    auth_request_timeout: float = 3.0  # then authenticate by the configuration
    command_timeout: float = 20.0
    resolve_timeout: float = 10.0
    event_queue: int = 10_000  # beyond it events are dropped (logged): room for a burst behind a WHOIS


@dataclass
class _Pending:
    command: int
    future: asyncio.Future[list[CommandPayload]]
    replies: list[CommandPayload] = field(default_factory=list)


@dataclass
class _Rekey:
    pfs: PfsRekey | None
    receive: KeyMaterial | None = None  # installed when the peer's REKEY_DONE comes
    sent_done: bool = False


class Session:
    def __init__(
        self,
        config: SessionConfig,
        keypair: KeyPair,
        transmit: Callable[[bytes], None],
        check_server_key: Callable[[PublicKey], None],
        on_event: Callable[[ev.SessionEvent], None],
        network: str = "silc",
    ) -> None:
        self.config = config
        self.keypair = keypair
        self.log = log.bind(network=network)
        self._transmit = transmit
        self._check_server_key = check_server_key
        self._on_event = on_event
        loop = asyncio.get_running_loop()
        self.registered: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.phase = Phase.KEY_EXCHANGE
        self.ske: SkeResult | None = None
        self.client_id: SilcId | None = None
        self.server_id: SilcId | None = None
        self.nick = config.username  # the server's initial nick (silc-spec 4.1)
        self.channels: dict[bytes, Channel] = {}
        self.keys_since = time.monotonic()
        self._writer = PacketWriter()
        self._reader = PacketReader()
        self._ske = Initiator(keypair, config.proposal)
        self._ske_step = 0
        self._auth_sent = False
        self._auth_timer: asyncio.TimerHandle | None = None
        self._send_key = b""
        self._receive_key = b""
        self._rekey: _Rekey | None = None
        self._held: list[tuple[Packet, bool]] | None = None
        self._mac_failures = 0
        self._pending: dict[int, _Pending] = {}
        self._ident = 0
        self._users: OrderedDict[bytes, ev.User] = OrderedDict()
        self._resolving: dict[bytes, asyncio.Future[ev.User | None]] = {}
        self._queue: asyncio.Queue[tuple[tuple[bytes, ...], Callable[..., ev.SessionEvent | None], bool]] = (
            asyncio.Queue(config.event_queue)
        )
        self._orphan_keys: OrderedDict[bytes, ChannelKeyPayload] = OrderedDict()

    # --- driving the session ---

    def start(self) -> None:
        """The client speaks first: KEY_EXCHANGE with the start payload."""
        self._send(PacketType.KEY_EXCHANGE, self._ske.start())

    def data_received(self, data: bytes) -> None:
        if self.phase is Phase.CLOSED:
            return
        try:
            self._reader.feed(data)
            while self.phase is not Phase.CLOSED:
                try:
                    packet = self._reader.next()
                except FramingError:
                    raise
                except PacketError as exc:
                    self._mac_failures += 1
                    self.log.warning("silc_packet_dropped", reason=str(exc))
                    if self._mac_failures >= MAX_MAC_FAILURES or not self._registered:
                        raise SessionError(f"unreadable packets from the server ({exc})") from None
                    continue
                if packet is None:
                    return
                self._mac_failures = 0
                self._handle_safely(packet)
        except FramingError as exc:
            self.fail(SessionError(f"packet stream broken: {exc}"))
        except SessionError as exc:
            self.fail(exc)

    def _handle_safely(self, packet: Packet) -> None:
        """A packet that trips a bug is dropped, not the connection (once registered)."""
        try:
            self._handle(packet)
        except SessionError:
            raise
        except NotConnected as exc:
            raise SessionError(str(exc)) from None
        except Exception:
            self.log.exception("silc_packet_handler_failed", type=packet.type)
            if not self._registered:
                raise SessionError(f"could not handle packet type {packet.type}") from None

    @property
    def _registered(self) -> bool:
        return self.phase in (Phase.CONNECTED, Phase.QUITTING)

    def fail(self, exc: Exception) -> None:
        """End the session with `exc` (the owner closes the socket)."""
        if self.phase is Phase.CLOSED:
            return
        self.phase = Phase.CLOSED
        if self._auth_timer:
            self._auth_timer.cancel()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(NotConnected(str(exc)))
        for fut in (self.registered, self.done):
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved: whoever awaits sees it anyway
        self._pending.clear()

    def close(self) -> None:
        """A clean end, e.g. after QUIT."""
        if self.phase is not Phase.CLOSED:
            self.fail(SessionError("closed"))

    async def dispatch(self) -> None:
        """Resolve and deliver queued events in order; run as a task."""
        while True:
            ids, build, with_key = await self._queue.get()
            users = [await self.resolve(i, with_key) for i in ids]
            try:
                event = build(*users)
                if event is not None:
                    self._on_event(event)
            except Exception:
                self.log.exception("silc_event_handler_failed")

    # --- sending ---

    def _send(
        self, ptype: int, payload: bytes = b"", dst: SilcId | None = None, max_padding: bool = False
    ) -> None:
        if self.phase is Phase.CLOSED:
            raise NotConnected("session closed")
        registered = self._registered
        packet = Packet(
            ptype,
            payload,
            src=self.client_id if registered else None,
            dst=(dst or self.server_id) if registered else None,
        )
        if self._held is not None and ptype not in _REKEY_PACKETS:
            if len(self._held) >= MAX_HELD:
                raise NotConnected("too many packets waiting for a rekey")
            self._held.append((packet, max_padding))
            return
        self._transmit(self._writer.seal(packet, max_padding))

    # --- packet handling ---

    def _handle(self, p: Packet) -> None:
        if p.flags & (PacketFlag.BROADCAST | PacketFlag.COMPRESSED):
            self.log.info("silc_packet_ignored", type=p.type, flags=p.flags)
            return
        if p.type == PacketType.DISCONNECT:
            d = DisconnectPayload.decode(p.payload) if p.payload else DisconnectPayload(0)
            raise SessionError(f"server disconnected us (status {d.status}): {d.message}")
        try:
            if self.phase is Phase.KEY_EXCHANGE:
                self._on_key_exchange(p)
            elif self.phase is Phase.AUTH:
                self._on_auth(p)
            else:
                self._on_connected(p)
        except DecodeError as exc:
            if not self._registered:
                raise SessionError(
                    f"malformed packet type {p.type} while {self.phase.value}: {exc}"
                ) from None
            self.log.warning("silc_payload_malformed", type=p.type, reason=str(exc))

    def _on_key_exchange(self, p: Packet) -> None:
        try:
            if p.type == PacketType.KEY_EXCHANGE and self._ske_step == 0:
                self._send(PacketType.KEY_EXCHANGE_1, self._ske.ke1(p.payload))
                self._ske_step = 1
            elif p.type == PacketType.KEY_EXCHANGE_2 and self._ske_step == 1:
                result = self._ske.finish(p.payload)
                self._check_server_key(result.server_key)
                self.ske = result
                self._send(PacketType.SUCCESS, encode_protocol_status(SkeStatus.OK))
                self._install_send(result.material)
                self._ske_step = 2
            elif p.type == PacketType.SUCCESS and self._ske_step == 2:
                assert self.ske is not None
                self._install_receive(self.ske.material)
                self.phase = Phase.AUTH
                self._begin_auth()
            elif p.type == PacketType.FAILURE:
                status = decode_protocol_status(p.payload)
                raise SessionError(f"server failed the key exchange: {_ske_status(status)}")
            else:
                raise SessionError(f"unexpected packet type {p.type} during key exchange")
        except SkeError as exc:
            self._send(PacketType.FAILURE, encode_protocol_status(exc.status))
            raise SessionError(f"key exchange failed: {exc}") from None
        except KeyRefused:
            self._send(PacketType.FAILURE, encode_protocol_status(SkeStatus.UNSUPPORTED_PUBLIC_KEY))
            raise

    def _begin_auth(self) -> None:
        """Ask which method the server wants (silc-pp 2.3.15); if it does not
        answer in time, authenticate as configured."""
        self._send(PacketType.CONNECTION_AUTH_REQUEST, AuthRequestPayload(CONN_CLIENT, 0).encode())
        loop = asyncio.get_running_loop()
        self._auth_timer = loop.call_later(self.config.auth_request_timeout, self._auth_timeout)

    def _auth_timeout(self) -> None:
        try:
            self._send_auth(None)
        except (SessionError, NotConnected) as exc:
            self.fail(SessionError(str(exc)))

    def _send_auth(self, method: AuthMethod | None) -> None:
        if self._auth_sent or self.phase is not Phase.AUTH:
            return
        if self._auth_timer:
            self._auth_timer.cancel()
        if method is None or (method is AuthMethod.NONE and self.config.password):
            method = AuthMethod.PASSPHRASE if self.config.password else AuthMethod.NONE
        assert self.ske is not None
        try:
            data = auth_data(method, self.ske, self.keypair, self.config.password)
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        self._auth_sent = True
        self._send(
            PacketType.CONNECTION_AUTH,
            ConnectionAuthPayload(CONN_CLIENT, data).encode(),
            max_padding=method is AuthMethod.PASSPHRASE,
        )
        self.log.info("silc_authenticating", method=method.name.lower())

    def _on_auth(self, p: Packet) -> None:
        if p.type == PacketType.CONNECTION_AUTH_REQUEST:
            self._send_auth(AuthMethod(AuthRequestPayload.decode(p.payload).method))
        elif p.type == PacketType.SUCCESS and self._auth_sent:
            self.phase = Phase.REGISTERING
            payload = NewClientPayload(self.config.username, self.config.realname)
            self._send(PacketType.NEW_CLIENT, payload.encode())
        elif p.type == PacketType.FAILURE:
            raise SessionError("the server refused our authentication")
        else:
            raise SessionError(f"unexpected packet type {p.type} during authentication")

    def _on_connected(self, p: Packet) -> None:
        handler = self._handlers.get(p.type)
        if handler is None:
            self.log.debug("silc_packet_unhandled", type=p.type)
            return
        if self.phase is Phase.REGISTERING and p.type not in (PacketType.NEW_ID, PacketType.NOTIFY):
            self.log.info("silc_packet_before_registration", type=p.type)
            return
        handler(self, p)

    def _on_new_id(self, p: Packet) -> None:
        ids = read_list(read_id_payload, p.payload, bool(p.flags & PacketFlag.LIST))
        client = next((i for i in ids if i.type is IdType.CLIENT), None)
        if client is None or self.phase is not Phase.REGISTERING:
            self.log.info("silc_new_id_ignored", phase=self.phase.value)
            return
        self.client_id = client
        if p.src is not None and p.src.type is IdType.SERVER:
            self.server_id = p.src
        self.phase = Phase.CONNECTED
        self.log.info("silc_registered", client_id=str(client), server_id=str(self.server_id))
        if not self.registered.done():
            self.registered.set_result(None)

    # --- commands (silc-commands 2.3) ---

    async def command(
        self, command: int, *args: tuple[int, bytes | None], timeout: float | None = None
    ) -> list[CommandPayload]:
        """Send a command; return its replies (several for a list reply)."""
        if self.phase is not Phase.CONNECTED:
            raise NotConnected(f"not connected ({self.phase.value})")
        if len(self._pending) >= MAX_PENDING_COMMANDS:
            raise NotConnected("too many commands waiting for replies")
        ident = self._new_ident()
        future: asyncio.Future[list[CommandPayload]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = _Pending(command, future)
        self._send(PacketType.COMMAND, CommandPayload(command, ident, Arguments.of(*args)).encode())
        try:
            return await asyncio.wait_for(future, timeout or self.config.command_timeout)
        finally:
            self._pending.pop(ident, None)

    def _new_ident(self) -> int:
        """A wrapping 16-bit counter (silc-pp 2.3.13), skipping ones in use."""
        while True:
            self._ident = self._ident % 0xFFFF + 1
            if self._ident not in self._pending:
                return self._ident

    def _on_command_reply(self, p: Packet) -> None:
        if p.src is not None and p.src.type is not IdType.SERVER:
            self.log.warning("silc_reply_not_from_server", src=str(p.src))
            return
        for reply in read_list(CommandPayload.read, p.payload, bool(p.flags & PacketFlag.LIST)):
            pending = self._pending.get(reply.ident)
            if pending is None or pending.command != reply.command or pending.future.done():
                self.log.debug("silc_reply_unexpected", command=reply.command, ident=reply.ident)
                continue
            status = reply.status  # DecodeError here drops the reply
            pending.replies.append(reply)
            if status not in (Status.LIST_START, Status.LIST_ITEM):
                pending.future.set_result(pending.replies)

    async def _ok(
        self, command: int, *args: tuple[int, bytes | None], timeout: float | None = None
    ) -> CommandPayload:
        """A command whose single reply must say OK."""
        reply = (await self.command(command, *args, timeout=timeout))[-1]
        if reply.error != Status.OK:
            raise CommandError(command, reply.error)
        return reply

    def _own_id(self) -> bytes:
        if self.client_id is None:
            raise NotConnected("no Client ID yet")
        return encode_id_payload(self.client_id)

    async def set_nick(self, nick: str) -> None:
        reply = await self._ok(Command.NICK, (1, nick.encode("utf-8")))
        new_id = decode_id_payload(reply.args.get(2) or b"")
        self._renamed(self.client_id.data if self.client_id else b"", new_id)
        self.client_id = new_id
        self.nick = text(reply.args.get(3) or nick.encode("utf-8"))

    async def join(self, name: str, private_key: ChannelKey | None = None) -> Channel:
        reply = await self._ok(Command.JOIN, (1, name.encode("utf-8")), (2, self._own_id()))
        args = reply.args
        channel_id = decode_id_payload(args.get(3) or b"")
        count = decode_u32(args.get(12))
        channel = Channel(
            name=text(args.get(2) or name.encode()),
            id=channel_id,
            hmac=text(args.get(11)) if args.get(11) else DEFAULT_HMAC,
            mode=decode_u32(args.get(5)),
            topic=text(args.get(10) or b""),
            members={i.data for i in decode_id_list(args.get(13) or b"", count)},
            private_key=private_key,
        )
        key_payload = (
            ChannelKeyPayload.decode(args.get(7))
            if args.get(7)
            else self._orphan_keys.pop(channel_id.data, None)
        )
        if key_payload is not None:
            self._set_channel_key(channel, key_payload)
        self.channels[channel_id.data] = channel
        self.log.info(
            "silc_joined", channel=channel.name, members=len(channel.members), cipher=channel.cipher
        )
        return channel

    async def leave(self, channel: Channel) -> None:
        self.channels.pop(channel.id.data, None)
        await self._ok(Command.LEAVE, (1, encode_id_payload(channel.id)))

    async def set_topic(self, channel: Channel, topic: str) -> None:
        await self._ok(Command.TOPIC, (1, encode_id_payload(channel.id)), (2, topic.encode("utf-8")))

    async def users(self, channel: Channel) -> set[bytes]:
        """Refresh the member list of `channel` (silc-commands USERS)."""
        reply = await self._ok(Command.USERS, (1, encode_id_payload(channel.id)))
        count = decode_u32(reply.args.get(3))
        channel.members = {i.data for i in decode_id_list(reply.args.get(4) or b"", count)}
        return channel.members

    async def identify(self, nick: str) -> list[tuple[SilcId, str]]:
        """Client IDs and nicks for a nickname (silc-commands IDENTIFY)."""
        found = []
        for reply in await self.command(Command.IDENTIFY, (1, nick.encode("utf-8"))):
            if reply.error == Status.OK and reply.args.get(2):
                name = text(reply.args.get(3) or b"").split("@", 1)[0]  # nickname[@server]
                found.append((decode_id_payload(reply.args.get(2)), name))
        return found

    async def whois(self, client_id: bytes) -> ev.User | None:
        """Nick, username and key fingerprint of a client (silc-commands WHOIS).
        Without a fingerprint in the reply, GETKEY fetches the key itself."""
        cid = SilcId(IdType.CLIENT, client_id)
        replies = await self.command(
            Command.WHOIS, (4, encode_id_payload(cid)), timeout=self.config.resolve_timeout
        )
        reply = next((r for r in replies if r.error == Status.OK), None)
        if reply is None:
            return None
        nick = text(reply.args.get(3) or b"").split("@", 1)[0]
        username = text(reply.args.get(4) or b"")
        fp_raw = reply.args.get(9)
        if fp_raw and len(fp_raw) == 20:
            return ev.User(client_id, nick, fp_raw.hex().upper(), username)
        key = await self.public_key(client_id)
        return ev.User(client_id, nick, key.fingerprint if key else None, username, key)

    async def public_key(self, client_id: bytes) -> PublicKey | None:
        """A client's public key as the server has it (silc-commands GETKEY)."""
        reply = await self._ok(Command.GETKEY, (1, encode_id_payload(SilcId(IdType.CLIENT, client_id))))
        data = reply.args.get(3)
        pk = PublicKeyPayload.decode(data) if data else None
        return decode_public_key(pk.key) if pk and pk.pk_type == PK_TYPE_SILC and pk.key else None

    async def ping(self, timeout: float | None = None) -> None:
        if self.server_id is None:
            raise NotConnected("no Server ID known")
        await self._ok(Command.PING, (1, encode_id_payload(self.server_id)), timeout=timeout)

    async def quit(self, message: str = "", timeout: float = 4.0) -> None:
        """QUIT and end the session, within `timeout` seconds.

        QUIT has no reply; the server closes the connection. silcd runs a
        client's commands late when they come fast (QUIT up to 2 s, NICK and
        JOIN 0.2 s) and a late command on a connection already closed closes
        whichever newer connection reuses its socket. So: no new commands,
        wait for the replies still due (a handshake still running is let
        finish), send QUIT and keep reading until the server closes; the
        owner closes the socket when `done` ends. After `timeout` it ends anyway.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self.phase in (Phase.KEY_EXCHANGE, Phase.AUTH, Phase.REGISTERING):
            await asyncio.wait(
                [self.registered, self.done], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        if self.phase is Phase.CONNECTED:
            self.phase = Phase.QUITTING
            unanswered = [p.future for p in self._pending.values()]
            if unanswered:
                await asyncio.wait(unanswered, timeout=max(0.0, deadline - loop.time()))
        if self.phase is Phase.QUITTING:
            args = Arguments.of((1, message.encode("utf-8") if message else None))
            self._send(PacketType.COMMAND, CommandPayload(Command.QUIT, self._new_ident(), args).encode())
            await asyncio.wait([self.done], timeout=max(0.0, deadline - loop.time()))
        self.close()

    # --- users ---

    def _remember(self, user: ev.User) -> None:
        self._users[user.client_id] = user
        self._users.move_to_end(user.client_id)
        while len(self._users) > MAX_USERS:
            self._users.popitem(last=False)

    async def resolve(self, client_id: bytes, with_key: bool = False) -> ev.User | None:
        """The user behind a Client ID, from the cache or by WHOIS; `with_key`
        also fetches the public key itself if it is not known yet."""
        user = self._users.get(client_id)
        if user is not None:  # a key does not change within a session
            self._users.move_to_end(client_id)
        else:
            if client_id not in self._resolving:
                self._resolving[client_id] = asyncio.ensure_future(self._lookup(client_id))
            user = await asyncio.shield(self._resolving[client_id])
        if with_key and user is not None and user.public_key is None:
            user = await self._with_key(user)
        return user

    async def _with_key(self, user: ev.User) -> ev.User:
        try:
            key = await self.public_key(user.client_id)
        except (CommandError, NotConnected, asyncio.TimeoutError, DecodeError) as exc:
            self.log.info("silc_user_key_unavailable", nick=user.nick, reason=str(exc) or type(exc).__name__)
            return user
        if key is None or (user.fingerprint is not None and key.fingerprint != user.fingerprint):
            self.log.warning("silc_user_key_mismatch", nick=user.nick, fingerprint=user.fingerprint)
            return user
        user = replace(user, public_key=key)
        if user.client_id in self._users:
            self._remember(user)
        return user

    async def _lookup(self, client_id: bytes) -> ev.User | None:
        try:
            user = await self.whois(client_id)
        except (CommandError, NotConnected, asyncio.TimeoutError, DecodeError) as exc:
            self.log.info(
                "silc_user_unresolved", client_id=client_id.hex(), reason=str(exc) or type(exc).__name__
            )
            user = None
        finally:
            self._resolving.pop(client_id, None)
        if user is not None:
            self._remember(user)
        return user

    @property
    def backlog(self) -> int:
        """Events waiting for `dispatch`."""
        return self._queue.qsize()

    def _queue_event(
        self, ids: tuple[bytes, ...], build: Callable[..., ev.SessionEvent | None], with_key: bool = False
    ) -> None:
        try:
            self._queue.put_nowait((ids, build, with_key))
        except asyncio.QueueFull:
            self.log.warning("silc_event_queue_full")

    def _is_own(self, client_id: bytes) -> bool:
        return self.client_id is not None and client_id == self.client_id.data

    # --- messages ---

    def send_channel_message(self, channel: Channel, data: bytes, flags: int = MessageFlag.UTF8) -> None:
        key = channel.sending_key()
        if key is None or self.client_id is None:
            raise NotConnected(f"no key for channel {channel.name} yet")
        payload = encrypt_channel_message(key, flags, data, self.client_id.data, channel.id.data)
        self._send(PacketType.CHANNEL_MESSAGE, payload, dst=channel.id)

    def send_private_message(self, client_id: bytes, data: bytes, flags: int = MessageFlag.UTF8) -> None:
        self._send(
            PacketType.PRIVATE_MESSAGE, encode_plain(flags, data), dst=SilcId(IdType.CLIENT, client_id)
        )

    def _on_channel_message(self, p: Packet) -> None:
        channel = self.channels.get(p.dst.data) if p.dst and p.dst.type is IdType.CHANNEL else None
        if channel is None or p.src is None or p.src.type is not IdType.CLIENT:
            self.log.debug("silc_channel_message_ignored", dst=str(p.dst))
            return
        sender = p.src.data
        if self._is_own(sender):
            return
        try:
            msg, _ = decrypt_channel_message(channel.receiving_keys(), p.payload, sender, channel.id.data)
        except DecodeError as exc:
            # Not ours to read (another private key) or damaged (silc-commands CMODE PRIVKEY).
            self.log.debug("silc_channel_message_undecryptable", channel=channel.name, reason=str(exc))
            return

        def build(user: ev.User | None) -> ev.SessionEvent | None:
            if user is None:
                return None
            signature = check_signature(msg.signed, user.fingerprint, user.public_key)
            return ev.ChannelMessage(channel.name, user, msg.flags, msg.data, signature)

        self._queue_event((sender,), build, _needs_sender_key(msg))

    def _on_private_message(self, p: Packet) -> None:
        if p.src is None or p.src.type is not IdType.CLIENT or p.flags & PacketFlag.PRIVMSG_KEY:
            self.log.info("silc_private_message_ignored", reason="private message key not supported")
            return
        msg = decode_plain(p.payload)
        if msg.flags & MessageFlag.PACKET:
            self.log.info("silc_private_key_negotiation_refused", sender=p.src.data.hex())
            return

        def build(user: ev.User | None) -> ev.SessionEvent | None:
            if user is None:
                return None
            signature = check_signature(msg.signed, user.fingerprint, user.public_key)
            return ev.PrivateMessage(user, msg.flags, msg.data, signature)

        self._queue_event((p.src.data,), build, _needs_sender_key(msg))

    def _on_channel_key(self, p: Packet) -> None:
        payload = ChannelKeyPayload.decode(p.payload)
        channel = self.channels.get(payload.channel_id)
        if channel is None:  # the JOIN reply is still on its way
            self._orphan_keys[payload.channel_id] = payload
            while len(self._orphan_keys) > 16:
                self._orphan_keys.popitem(last=False)
            return
        self._set_channel_key(channel, payload)

    def _set_channel_key(self, channel: Channel, payload: ChannelKeyPayload) -> None:
        try:
            channel.set_server_key(payload.cipher, payload.key)
        except CryptoError as exc:
            self.log.warning("silc_channel_key_unusable", channel=channel.name, reason=str(exc))

    # --- notifies (silc-pp 2.3.7) ---

    def _on_notify(self, p: Packet) -> None:
        for notify in read_list(NotifyPayload.read, p.payload, bool(p.flags & PacketFlag.LIST)):
            handler = _NOTIFY_HANDLERS.get(notify.type)
            if handler is None:
                self.log.debug("silc_notify_ignored", type=notify.type)
                continue
            try:
                handler(self, p, notify.args)
            except DecodeError as exc:
                self.log.warning("silc_notify_malformed", type=notify.type, reason=str(exc))

    def _channel_of(self, p: Packet, client: bytes) -> list[Channel]:
        """Notifies to a channel name it as the destination; otherwise the
        channels the client is on."""
        if p.dst is not None and p.dst.type is IdType.CHANNEL:
            channel = self.channels.get(p.dst.data)
            return [channel] if channel else []
        return [c for c in self.channels.values() if client in c.members]

    def _n_text(self, p: Packet, args) -> None:
        self.log.info("silc_server_notice", text=text(args.get(1) or b""))

    def _n_join(self, p: Packet, args) -> None:
        client = _client_arg(args, 1)
        channel = self.channels.get(decode_id_payload(args.get(2) or b"").data)
        if channel is None or client in channel.members:
            return
        channel.members.add(client)
        if not self._is_own(client):
            self._queue_event((client,), lambda user: user and ev.Joined(channel.name, user))

    def _n_leave(self, p: Packet, args) -> None:
        client = _client_arg(args, 1)
        for channel in self._channel_of(p, client):
            self._departed(channel, client, "", quit=False)

    def _n_signoff(self, p: Packet, args) -> None:
        client = _client_arg(args, 1)
        reason = text(args.get(2) or b"")
        for channel in self._channel_of(p, client):
            self._departed(channel, client, reason, quit=True)

    def _n_killed(self, p: Packet, args) -> None:
        client = _client_arg(args, 1)
        reason = "killed: " + text(args.get(2) or b"")
        for channel in [c for c in self.channels.values() if client in c.members]:
            self._departed(channel, client, reason, quit=True)

    def _n_server_signoff(self, p: Packet, args) -> None:
        for data in args.items:
            if data[0] == 1:
                continue
            client = decode_id_payload(data[1]).data
            for channel in [c for c in self.channels.values() if client in c.members]:
                self._departed(channel, client, "server signoff", quit=True)

    def _departed(self, channel: Channel, client: bytes, reason: str, quit: bool) -> None:
        if client not in channel.members:
            return
        channel.members.discard(client)
        if self._is_own(client):
            return
        # Someone never resolved cannot be named once gone: skipped by build.
        self._queue_event((client,), lambda user: user and ev.Left(channel.name, user, reason, quit))

    def _n_kicked(self, p: Packet, args) -> None:
        target = _client_arg(args, 1)
        reason = text(args.get(2) or b"")
        by = decode_id_payload(args.get(3)) if args.get(3) else None
        kicker = by.data if by is not None and by.type is IdType.CLIENT else b""  # or a server
        for channel in self._channel_of(p, target):
            channel.members.discard(target)
            if self._is_own(target):
                self.channels.pop(channel.id.data, None)
                self._queue_event((), lambda ch=channel: ev.SelfRemoved(ch.name, reason))
                continue
            ids = (target, kicker) if kicker else (target,)

            def build(user, by=None, ch=channel):
                return user and ev.Kicked(ch.name, user, by, reason)

            self._queue_event(ids, build)

    def _n_nick_change(self, p: Packet, args) -> None:
        old = _client_arg(args, 1)
        new = decode_id_payload(args.get(2) or b"")
        nick = text(args.get(3) or b"")
        channels = tuple(c.name for c in self.channels.values() if old in c.members)
        before = self._users.get(old)
        self._renamed(old, new, nick)
        if self._is_own(old):
            self.client_id, self.nick = new, nick
            return
        if before is None or before.nick == nick or not channels:
            return
        self._queue_event((), lambda: ev.NickChanged(channels, before, nick))

    def _renamed(self, old: bytes, new: SilcId, nick: str | None = None) -> None:
        """A nick change gives a new Client ID (silc-commands NICK)."""
        for channel in self.channels.values():
            if old in channel.members:
                channel.members.discard(old)
                channel.members.add(new.data)
        user = self._users.get(old)
        if user is not None:
            self._remember(replace(user, client_id=new.data, nick=nick or user.nick))

    def _n_topic(self, p: Packet, args) -> None:
        setter = decode_id_payload(args.get(1) or b"")
        topic = text(args.get(2) or b"")
        channels = self._channel_of(p, setter.data)
        if len(channels) != 1:
            self.log.info("silc_topic_channel_unknown", dst=str(p.dst))
            return
        channel = channels[0]
        channel.topic = topic
        if self._is_own(setter.data):
            return
        if setter.type is IdType.CLIENT:
            self._queue_event((setter.data,), lambda user: ev.TopicSet(channel.name, user, topic))
        else:
            self._queue_event((), lambda: ev.TopicSet(channel.name, None, topic))

    def _n_cmode(self, p: Packet, args) -> None:
        channel = self.channels.get(p.dst.data) if p.dst and p.dst.type is IdType.CHANNEL else None
        if channel is None:
            return
        channel.mode = decode_u32(args.get(2))
        hmac = args.get(4)
        if hmac:
            try:
                channel.set_hmac(text(hmac))
            except CryptoError as exc:
                self.log.warning("silc_channel_hmac_unusable", channel=channel.name, reason=str(exc))
        self.log.info("silc_channel_mode", channel=channel.name, mode=hex(channel.mode))

    def _n_channel_change(self, p: Packet, args) -> None:
        old = decode_id_payload(args.get(1) or b"")
        new = decode_id_payload(args.get(2) or b"")
        channel = self.channels.pop(old.data, None)
        if channel is not None:
            channel.id = new
            self.channels[new.data] = channel

    def _n_error(self, p: Packet, args) -> None:
        status = (args.get(1) or b"\x00")[0]
        self.log.warning("silc_server_error", status=status_name(status))

    # --- keys and rekey (silc-spec 4.8) ---

    def _ctr_prefix(self, iv: bytes) -> bytes:
        assert self.ske is not None
        first = self._rekey is None  # no HASH after a rekey
        return ctr_prefix(self.ske.negotiated.hash, self.ske.ske_hash if first else None, iv)

    def _install_send(self, material: KeyMaterial) -> None:
        """`material` in our view: send_* is ours."""
        assert self.ske is not None
        neg = self.ske.negotiated
        cipher = packet_cipher(
            neg.cipher, material.send_key, material.send_iv, self._ctr_prefix(material.send_iv), True
        )
        self._writer.set_keys(cipher, Hmac(neg.hmac, material.send_hmac_key))
        self._send_key = material.send_key
        self.keys_since = time.monotonic()

    def _install_receive(self, material: KeyMaterial) -> None:
        assert self.ske is not None
        neg = self.ske.negotiated
        cipher = packet_cipher(
            neg.cipher,
            material.receive_key,
            material.receive_iv,
            self._ctr_prefix(material.receive_iv),
            False,
        )
        self._reader.set_keys(cipher, Hmac(neg.hmac, material.receive_hmac_key))
        self._receive_key = material.receive_key

    @property
    def bytes_since_rekey(self) -> int:
        return self._writer.bytes_sealed + self._reader.bytes_opened

    def start_rekey(self) -> None:
        """Begin a rekey as its initiator (the connection's initiator SHOULD)."""
        if self._rekey is not None or self.phase is not Phase.CONNECTED or self.ske is None:
            return
        self.log.info("silc_rekey", initiator="client", pfs=self.ske.negotiated.pfs)
        self._send(PacketType.REKEY)
        if self.ske.negotiated.pfs:
            self._rekey = _Rekey(PfsRekey(self.ske.negotiated))
            self._held = []
            self._send(PacketType.KEY_EXCHANGE_1, self._rekey.pfs.payload())
        else:
            self._rekey = _Rekey(None)
            self._rekey_done(rekey_material(self.ske.negotiated, self._send_key))

    def _on_rekey(self, p: Packet) -> None:
        """The server asks for a rekey: it is the initiator this time."""
        if self._rekey is not None or self.ske is None:
            self.log.warning("silc_rekey_collision")
            return
        self.log.info("silc_rekey", initiator="server", pfs=self.ske.negotiated.pfs)
        if self.ske.negotiated.pfs:
            self._rekey = _Rekey(PfsRekey(self.ske.negotiated))
            self._held = []
        else:
            self._rekey = _Rekey(None)
            self._rekey_done(rekey_material(self.ske.negotiated, self._receive_key).swapped())

    def _on_rekey_ke(self, p: Packet) -> None:
        rekey = self._rekey
        if rekey is None or rekey.pfs is None or rekey.sent_done:
            self.log.warning("silc_key_exchange_unexpected", type=p.type)
            return
        try:
            material = rekey.pfs.material(p.payload)
        except SkeError as exc:
            raise SessionError(f"rekey failed: {exc}") from None
        if p.type == PacketType.KEY_EXCHANGE_1:  # we answer the server's exchange
            self._send(PacketType.KEY_EXCHANGE_2, rekey.pfs.payload())
            material = material.swapped()
        self._rekey_done(material)

    def _rekey_done(self, material: KeyMaterial) -> None:
        """Send REKEY_DONE under the old keys, then switch sending keys."""
        assert self._rekey is not None
        self._send(PacketType.REKEY_DONE)
        self._install_send(material)
        self._rekey.receive, self._rekey.sent_done = material, True
        held, self._held = self._held, None
        for packet, max_padding in held or ():
            self._transmit(self._writer.seal(packet, max_padding))

    def _on_rekey_done(self, p: Packet) -> None:
        rekey = self._rekey
        if rekey is None or rekey.receive is None:
            raise SessionError("REKEY_DONE without a rekey")
        self._install_receive(rekey.receive)
        self._rekey = None

    def heartbeat(self) -> None:
        self._send(PacketType.HEARTBEAT)

    def _ignore(self, p: Packet) -> None:
        self.log.debug("silc_packet_ignored", type=p.type)

    def _on_error(self, p: Packet) -> None:
        self.log.warning("silc_server_error", text=text(p.payload))

    _handlers: dict[int, Callable[[Session, Packet], None]] = {
        PacketType.NEW_ID: _on_new_id,
        PacketType.NOTIFY: _on_notify,
        PacketType.COMMAND_REPLY: _on_command_reply,
        PacketType.CHANNEL_MESSAGE: _on_channel_message,
        PacketType.CHANNEL_KEY: _on_channel_key,
        PacketType.PRIVATE_MESSAGE: _on_private_message,
        PacketType.REKEY: _on_rekey,
        PacketType.REKEY_DONE: _on_rekey_done,
        PacketType.KEY_EXCHANGE_1: _on_rekey_ke,
        PacketType.KEY_EXCHANGE_2: _on_rekey_ke,
        PacketType.ERROR: _on_error,
        PacketType.HEARTBEAT: _ignore,
        PacketType.SUCCESS: _ignore,
        PacketType.FAILURE: _ignore,
    }


_REKEY_PACKETS = {
    PacketType.REKEY,
    PacketType.REKEY_DONE,
    PacketType.KEY_EXCHANGE_1,
    PacketType.KEY_EXCHANGE_2,
}

_NOTIFY_HANDLERS: dict[int, Callable] = {
    Notify.NONE: Session._n_text,
    Notify.MOTD: Session._n_text,
    Notify.JOIN: Session._n_join,
    Notify.LEAVE: Session._n_leave,
    Notify.SIGNOFF: Session._n_signoff,
    Notify.TOPIC_SET: Session._n_topic,
    Notify.NICK_CHANGE: Session._n_nick_change,
    Notify.CMODE_CHANGE: Session._n_cmode,
    Notify.CHANNEL_CHANGE: Session._n_channel_change,
    Notify.SERVER_SIGNOFF: Session._n_server_signoff,
    Notify.KICKED: Session._n_kicked,
    Notify.KILLED: Session._n_killed,
    Notify.ERROR: Session._n_error,
}


def _needs_sender_key(msg: MessagePayload) -> bool:
    """A signed message that names only its key type (silc-flags-payloads 3.3)."""
    return msg.signed is not None and not msg.signed.public_key.key


def _client_arg(args, number: int) -> bytes:
    sid = decode_id_payload(args.get(number) or b"")
    if sid.type is not IdType.CLIENT:
        raise DecodeError(f"argument {number} is a {sid.type.name} ID, not a client")
    return sid.data


def _ske_status(status: int | None) -> str:
    try:
        return SkeStatus(status).name if status is not None else "no status"
    except ValueError:
        return f"status {status}"
