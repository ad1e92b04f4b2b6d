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
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from bridge.silc import events as ev
from bridge.silc.auth import CONN_CLIENT, AuthMethod, AuthRequestPayload, ConnectionAuthPayload, auth_data
from bridge.silc.buffer import DecodeError, text
from bridge.silc.channel import Channel
from bridge.silc.ids import IdType, SilcId, read_id_payload
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
    ChannelKeyPayload,
    DisconnectPayload,
    NewClientPayload,
    decode_protocol_status,
    encode_protocol_status,
    read_list,
)
from bridge.silc.pubkey import KeyPair, PublicKey
from bridge.silc.session.commands import Commands, PendingCommand
from bridge.silc.session.errors import KeyRefused, NotConnected, SessionError
from bridge.silc.session.messages import Messages
from bridge.silc.session.notifies import Notifies
from bridge.silc.session.phase import Phase
from bridge.silc.session.rekey import Rekeying, RekeyState
from bridge.silc.session.users import Users
from bridge.silc.ske import Initiator, Proposal, SkeError, SkeResult, SkeStatus

log = structlog.get_logger(__name__)

MAX_MAC_FAILURES = 3  # in a row: the stream is not to be trusted any more
MAX_HELD = 1000


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
    #: False for a client that only speaks (an XMPP user's own): what others say and do in
    #: its channels is no event, and nobody there is looked up; private messages still are.
    hears_channels: bool = True


class Session(Commands, Users, Messages, Notifies, Rekeying):
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
        self._rekey: RekeyState | None = None
        self._held: list[tuple[Packet, bool]] | None = None
        self._mac_failures = 0
        self._pending: dict[int, PendingCommand] = {}
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

    def heartbeat(self) -> None:
        self._send(PacketType.HEARTBEAT)

    def _ignore(self, p: Packet) -> None:
        self.log.debug("silc_packet_ignored", type=p.type)

    def _on_error(self, p: Packet) -> None:
        self.log.warning("silc_server_error", text=text(p.payload))

    _handlers: dict[int, Callable[[Session, Packet], None]] = {
        PacketType.NEW_ID: _on_new_id,
        PacketType.NOTIFY: Notifies._on_notify,
        PacketType.COMMAND_REPLY: Commands._on_command_reply,
        PacketType.CHANNEL_MESSAGE: Messages._on_channel_message,
        PacketType.CHANNEL_KEY: Messages._on_channel_key,
        PacketType.PRIVATE_MESSAGE: Messages._on_private_message,
        PacketType.REKEY: Rekeying._on_rekey,
        PacketType.REKEY_DONE: Rekeying._on_rekey_done,
        PacketType.KEY_EXCHANGE_1: Rekeying._on_rekey_ke,
        PacketType.KEY_EXCHANGE_2: Rekeying._on_rekey_ke,
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


def _ske_status(status: int | None) -> str:
    try:
        return SkeStatus(status).name if status is not None else "no status"
    except ValueError:
        return f"status {status}"
