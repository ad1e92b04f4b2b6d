"""Keeps one SILC connection up: connect, run a Session over the socket,
keep it alive (HEARTBEAT, rekey), rejoin channels, and reconnect with
exponential backoff and jitter when it drops.

A dead link is noticed within `ping_timeout`: any byte from the server proves
it alive; after half of that in silence a PING (silc-commands 2.3) asks for
some, and after all of it the session ends. TCP keepalive and
TCP_USER_TIMEOUT back this up for writes into a dead route. Channel messages
stay in the outbox until a PING after their batch confirms them; the ones a
lost connection took unconfirmed are sent again once after the rejoin."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from bridge.core.backoff import Backoff
from bridge.core.coalesce import Coalescer
from bridge.core.tcp import bound_silence
from bridge.silc import events as ev
from bridge.silc.buffer import DecodeError
from bridge.silc.channel import CMODE_PRIVKEY, Channel
from bridge.silc.message import ChannelKey
from bridge.silc.outbox import Outbox
from bridge.silc.pubkey import KeyPair, PublicKey
from bridge.silc.session import CommandError, NotConnected, Phase, Session, SessionConfig, SessionError

log = structlog.get_logger(__name__)

READ_SIZE = 65536
MAX_WRITE_BUFFER = 1 << 20  # a server that stops reading is a dead server


@dataclass
class ChannelSpec:
    name: str
    private_key: ChannelKey | None = None
    retry_at: float = 0.0
    failures: int = 0
    out_since: float | None = None  # out of the channel since (Unix time), after being in
    #: With a private key: why relaying is paused, as last told (None: it runs).
    paused: str | None = None
    mode_sets: int = 0  # tries to set the private-key mode since the last join
    mode_retry_at: float = 0.0
    refused: str | None = None  # why the server refused the last try


@dataclass(frozen=True)
class ClientConfig:
    host: str
    port: int
    nick: str
    session: SessionConfig
    alt_nicks: tuple[str, ...] = ()  # tried in turn when the server refuses `nick`
    heartbeat: float = 300.0  # seconds between HEARTBEATs
    tick: float = 15.0  # how often to check rekey and missing channels
    ping_timeout: float = 25.0  # silence that means a dead link; a PING goes out after half of it
    rekey_interval: float = 3600.0  # silc-spec 4.8: "say, once in an hour"
    rekey_bytes: int = 1 << 30
    connect_timeout: float = 15.0
    register_timeout: float = 60.0
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    stable_after: float = 60.0  # a session this old resets the backoff
    rejoin_delay: float = 5.0  # after being kicked
    quit_timeout: float = 4.0  # to wait for the server to close after QUIT
    window: int = 1000  # sent channel messages kept until the server confirms them
    barrier_gap: float = 0.5  # at least this long between two confirming PINGs


class SilcClient:
    def __init__(
        self,
        network: str,
        config: ClientConfig,
        keypair: KeyPair,
        check_server_key: Callable[[PublicKey], None],
        on_event: Callable[[ev.SessionEvent], None],
    ) -> None:
        self.network = network
        self.config = config
        self.keypair = keypair
        self.log = log.bind(network=network)
        self._check_server_key = check_server_key
        self._on_event = on_event
        self.specs: dict[str, ChannelSpec] = {}
        self.joined: dict[str, Channel] = {}
        self.session: Session | None = None
        self.last_error: str | None = None  # why the last connection ended
        self._got_in = False  # the current connection registered
        self._closing = False
        self._wake = asyncio.Event()  # cuts the maintenance sleep short
        self._joins = asyncio.Condition()  # notified when a channel is joined
        self._heard = 0.0  # loop time of the last bytes from the server
        self.outbox = Outbox(config.window, network)

    def add_channel(self, name: str, private_key: ChannelKey | None = None) -> None:
        """Serve `name`: joined now if connected (the maintenance round is woken), else
        once connected."""
        self.specs[name.casefold()] = ChannelSpec(name, private_key)
        self._wake.set()

    def remove_channel(self, name: str) -> None:
        """Stop serving `name`: it is left at once (the maintenance round is woken)."""
        self.specs.pop(name.casefold(), None)
        self._wake.set()

    async def change_nick(self, nick: str, alt_nicks: tuple[str, ...] = ()) -> None:
        """Take `nick` (or an alternative) now if connected, and after each reconnect."""
        self.config = replace(self.config, nick=nick, alt_nicks=alt_nicks)
        if self.connected:
            with contextlib.suppress(NotConnected):
                await self._take_nick(self.session)

    def channel(self, name: str) -> Channel | None:
        return self.joined.get(name.casefold())

    async def wait_channel(self, name: str, timeout: float) -> Channel | None:
        """The joined channel `name`, waiting up to `timeout` for the join."""
        key = name.casefold()
        if key in self.joined:
            return self.joined[key]
        async with self._joins:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._joins.wait_for(lambda: key in self.joined)
        return self.joined.get(key)

    @property
    def last_heard(self) -> float:
        """When the server last sent anything, as Unix time."""
        return time.time() - (asyncio.get_running_loop().time() - self._heard)

    @property
    def connected(self) -> bool:
        return self.session is not None and self.session.phase is Phase.CONNECTED

    async def run(self) -> None:
        backoff = Backoff(self.config.backoff_base, self.config.backoff_max)
        failing = False  # the last attempt never got in: a server that keeps refusing is one warning
        while not self._closing:
            started = time.monotonic()
            self._got_in = False
            try:
                await self._connect_once()
            except (OSError, SessionError, asyncio.TimeoutError) as exc:
                if self._closing:
                    return
                self.last_error = str(exc) or type(exc).__name__
                again = failing and not self._got_in
                (self.log.info if again else self.log.warning)(
                    "silc_connection_lost", host=self.config.host, reason=self.last_error, again=again)
            failing = not self._got_in
            if time.monotonic() - started >= self.config.stable_after:
                backoff.reset()
            delay = backoff.next_delay()
            self.log.info("silc_reconnecting", delay=round(delay, 1))
            await asyncio.sleep(delay)

    async def close(self, message: str = "") -> None:
        """Stop reconnecting; QUIT and return once the server has closed the
        connection, or after `quit_timeout` (see Session.quit)."""
        self._closing = True
        self._wake.set()
        if self.session is not None:
            with contextlib.suppress(NotConnected):
                await self.session.quit(message, self.config.quit_timeout)
        if len(self.outbox):
            self.log.warning("silc_unconfirmed_at_exit", count=len(self.outbox))

    async def _connect_once(self) -> None:
        cfg = self.config
        self.log.info("silc_connecting", host=cfg.host, port=cfg.port)
        async with asyncio.timeout(cfg.connect_timeout):
            reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
        if self._closing:  # closed while connecting
            writer.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            bound_silence(sock, cfg.ping_timeout)
        self._heard = asyncio.get_running_loop().time()
        session: Session | None = None
        writes = Coalescer(writer.write)

        def transmit(data: bytes) -> None:
            if writer.transport.get_write_buffer_size() + writes.size > MAX_WRITE_BUFFER:
                if session is not None:
                    session.fail(SessionError("the server is not reading"))
                raise NotConnected("the server is not reading")
            writes.add(data)

        tasks: list[asyncio.Task] = []
        try:
            session = Session(
                cfg.session, self.keypair, transmit, self._check_server_key, self._event, self.network
            )
            self.session = session
            tasks = [
                asyncio.create_task(self._read(reader, session)),
                asyncio.create_task(session.dispatch()),
                asyncio.create_task(self._watch(session)),
            ]
            session.start()
            async with asyncio.timeout(cfg.register_timeout):
                await asyncio.shield(session.registered)
            self._got_in = True
            self.log.info(
                "silc_connected", host=cfg.host, cipher=session.ske.negotiated.cipher if session.ske else None
            )
            tasks += [asyncio.create_task(self._maintain(session)), asyncio.create_task(self._confirm(session))]
            await session.done
        finally:
            if session is not None:
                session.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for key in self.joined:
                if key in self.specs and self.specs[key].out_since is None:
                    self.specs[key].out_since = self.last_heard
            self.joined.clear()
            self.outbox.connection_lost()
            writes.flush()
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(2):
                    await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader, session: Session) -> None:
        loop = asyncio.get_running_loop()
        try:
            while session.phase is not Phase.CLOSED:
                data = await reader.read(READ_SIZE)
                if not data:
                    session.fail(SessionError("the server closed the connection"))
                    return
                self._heard = loop.time()
                session.data_received(data)
                if session.backlog:
                    # The buffer may hold more: let the events of this read go out
                    # before reading on, or one burst could fill the event queue.
                    await asyncio.sleep(0)
        except OSError as exc:
            session.fail(SessionError(f"socket error: {exc}"))

    async def _watch(self, session: Session) -> None:
        """End the session after `ping_timeout` without a byte from the server;
        PING it (one at a time) once it has been quiet for half of that."""
        timeout = self.config.ping_timeout
        loop = asyncio.get_running_loop()
        ping: asyncio.Task | None = None
        try:
            while session.phase is not Phase.CLOSED:
                quiet = loop.time() - self._heard
                if quiet >= timeout:
                    session.fail(SessionError(f"nothing from the server for {timeout:g} s"))
                    return
                idle = session.phase is Phase.CONNECTED and (ping is None or ping.done())
                if quiet >= timeout / 2 and idle:
                    ping = asyncio.create_task(self._ping(session))
                await asyncio.sleep((timeout / 2 if quiet < timeout / 2 else timeout) - quiet)
        finally:
            if ping is not None:
                ping.cancel()

    async def _ping(self, session: Session) -> None:
        """The reply is bytes from the server; `_watch` judges the silence."""
        with contextlib.suppress(CommandError, NotConnected, DecodeError, asyncio.TimeoutError):
            await session.ping(self.config.ping_timeout)

    def send(self, channel: Channel, data: bytes, flags: int, tries: int = 1) -> None:
        """Send a channel message, kept until the server has confirmed it; a
        connection that cannot take it now sends it after the reconnect."""
        session = self.session
        live = session is not None and session.phase is Phase.CONNECTED
        self.outbox.sent(channel.name, flags, data, tries, live)
        if live:
            with contextlib.suppress(NotConnected):
                session.send_channel_message(channel, data, flags)

    async def _confirm(self, session: Session) -> None:
        """After each batch of channel messages, a PING: its reply confirms them all."""
        loop = asyncio.get_running_loop()
        while session.phase is Phase.CONNECTED:
            await self.outbox.pending.wait()
            self.outbox.pending.clear()
            upto, started = self.outbox.last, loop.time()
            try:
                await session.ping(self.config.ping_timeout)
            except CommandError:
                pass  # an error reply is a reply all the same
            except (NotConnected, DecodeError, asyncio.TimeoutError):
                return  # unconfirmed: sent again after the reconnect
            self.outbox.confirmed(upto)
            await asyncio.sleep(self.config.barrier_gap - (loop.time() - started))

    def _resend(self, channel: Channel) -> None:
        """Once more on this connection, what the last one took unconfirmed."""
        again = self.outbox.to_resend(channel.name)
        for message in again:
            self.send(channel, message.data, message.flags, message.tries + 1)
        if again:
            self.log.warning("silc_messages_resent", channel=channel.name, count=len(again))

    async def _maintain(self, session: Session) -> None:
        """Heartbeat, rekey and channel (re)joins, every `tick` seconds."""
        cfg = self.config
        if self._closing:
            return
        await self._after_register(session)
        last_beat = time.monotonic()
        while session.phase is Phase.CONNECTED:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(cfg.tick):
                    await self._wake.wait()
            self._wake.clear()
            now = time.monotonic()
            if now - last_beat >= cfg.heartbeat:
                last_beat = now
                with contextlib.suppress(NotConnected):
                    session.heartbeat()
            if now - session.keys_since >= cfg.rekey_interval or session.bytes_since_rekey >= cfg.rekey_bytes:
                session.start_rekey()
            await self._leave_removed(session)
            await self._join_missing(session)
            await self._secure_joined(session)

    async def _after_register(self, session: Session) -> None:
        await self._take_nick(session)
        await self._join_missing(session)

    async def _take_nick(self, session: Session) -> None:
        """The configured nick, else the first alternative the server takes."""
        for nick in (self.config.nick, *self.config.alt_nicks):
            if not nick or nick == session.nick:
                return
            try:
                await session.set_nick(nick)
                return
            except (CommandError, asyncio.TimeoutError, DecodeError) as exc:
                self.log.warning("silc_nick_refused", nick=nick, reason=str(exc) or "timeout")

    async def _join_missing(self, session: Session) -> None:
        now = time.monotonic()
        for key, spec in list(self.specs.items()):
            if key in self.joined or spec.retry_at > now or session.phase is not Phase.CONNECTED:
                continue
            try:
                channel = await session.join(spec.name, spec.private_key)
                spec.failures = spec.mode_sets = 0
                spec.mode_retry_at = 0.0
                await self._secure(session, spec, channel)
                await session.resolve_members(channel)  # to be found by nick (private messages)
                if channel.id.data not in session.channels:
                    continue  # kicked meanwhile
                self.joined[key] = channel
                if spec.out_since is not None:
                    self._on_event(ev.Gap(spec.name, spec.out_since, time.time()))
                    spec.out_since = None
                self._tell_state(spec, channel)
                if channel.secured:
                    self._resend(channel)
                async with self._joins:
                    self._joins.notify_all()
            except (CommandError, asyncio.TimeoutError, DecodeError) as exc:
                spec.failures += 1
                spec.retry_at = now + min(600.0, self.config.tick * 2**spec.failures)
                self.log.warning("silc_join_failed", channel=spec.name, reason=str(exc) or "timeout")
            except NotConnected:
                return

    async def _leave_removed(self, session: Session) -> None:
        for key in [key for key in self.joined if key not in self.specs]:
            channel = self.joined.pop(key)
            try:
                await session.leave(channel)
                self.log.info("silc_left", channel=channel.name)
            except (CommandError, asyncio.TimeoutError, DecodeError) as exc:
                self.log.warning("silc_leave_failed", channel=channel.name, reason=str(exc) or "timeout")
            except NotConnected:
                return

    async def _secure(self, session: Session, spec: ChannelSpec, channel: Channel) -> None:
        """A channel with a private key lacks the private-key mode (a server
        restart re-creates it without): set it if the bridge founded the channel,
        at most once per `tick * 2**n` after the first time."""
        now = time.monotonic()
        if channel.secured or not channel.founded or spec.mode_retry_at > now:
            return
        spec.mode_sets += 1
        spec.mode_retry_at = now + min(600.0, self.config.tick * 2**spec.mode_sets)
        try:
            await session.set_mode(channel, channel.mode | CMODE_PRIVKEY)
            spec.refused = None
            self.log.warning("silc_private_key_mode_set", channel=spec.name, times=spec.mode_sets)
        except (CommandError, asyncio.TimeoutError, DecodeError) as exc:
            spec.refused = str(exc) or "no reply"
            self.log.warning("silc_private_key_mode_refused", channel=spec.name, reason=str(exc) or "timeout")
        except NotConnected:
            pass

    async def _secure_joined(self, session: Session) -> None:
        for key, channel in list(self.joined.items()):
            spec = self.specs[key]
            await self._secure(session, spec, channel)
            self._tell_state(spec, channel)
            if channel.secured:  # a private-key channel's orphans waited for the mode
                self._resend(channel)

    def _tell_state(self, spec: ChannelSpec, channel: Channel) -> None:
        """Say when relaying on a channel with a private key stops or resumes."""
        paused = None if channel.secured else _pause_reason(spec, channel)
        if (paused is None) != (spec.paused is None):
            spec.paused = paused
            self._on_event(ev.RelayState(spec.name, paused))

    def _event(self, event: ev.SessionEvent) -> None:
        if isinstance(event, ev.ModeChanged):
            self._wake.set()  # _maintain sets the private-key mode again, or says why not
            return
        if isinstance(event, ev.SelfRemoved):
            self.joined.pop(event.channel.casefold(), None)
            spec = self.specs.get(event.channel.casefold())
            if spec is not None:
                spec.out_since = spec.out_since or time.time()
                spec.retry_at = time.monotonic() + self.config.rejoin_delay
                asyncio.get_running_loop().call_later(self.config.rejoin_delay, self._wake.set)
            self.log.warning("silc_removed_from_channel", channel=event.channel, reason=event.reason)
        self._on_event(event)


def _pause_reason(spec: ChannelSpec, channel: Channel) -> str:
    lacks = "the channel lacks the private-key mode (+k)"
    if not channel.founded:
        return f"{lacks}, which only its founder may set, not the bridge"
    if spec.refused:
        return f"{lacks}, and the server refused to let the bridge set it ({spec.refused})"
    return f"{lacks}, and the bridge, its founder, sets it again shortly"
