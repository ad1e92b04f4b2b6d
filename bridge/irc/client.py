"""The bridge's relay client on one IRC network: connect, register, stay up.

One `RelayClient` owns one connection at a time (a `HardenedConnection` on the
`irc` library's asyncio reactor) and, forever: connects (TLS verified unless
`tls_verify: false`), registers (CAP negotiation, PASS, SASL PLAIN, alternate
nicks on 433), keeps the link checked (any byte received proves it alive; after
half of `ping_timeout` of quiet we PING, and `ping_timeout` of silence means
dead, with TCP keepalive and TCP_USER_TIMEOUT as the kernel's backstop), and
reconnects with exponential backoff and jitter. Every line it sends goes
through the network's token bucket, and relayed lines are kept until the server
confirms them (see `Outbox`).

Event handlers are registered with `on`; they only ever see events of the
current connection, never late ones of a connection already replaced.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Iterator

import structlog
from irc.client import Event, NickMask
from irc.client_aio import AioReactor
from irc.connection import AioFactory

from bridge.config_types import IrcNetworkConfig
from bridge.core.backoff import Backoff
from bridge.core.ratelimit import TokenBucket
from bridge.core.tcp import bound_silence
from bridge.irc.connection import HardenedConnection
from bridge.irc.outbox import Outbox
from bridge.irc.split import WORST_HOST, text_budget

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 30.0
#: A connection that stayed registered this long resets the reconnect backoff.
STABLE_AFTER = 60.0
#: IRCv3 capabilities we use when the server offers them. echo-message only with
#: message-tags, for the msgid the server gives our lines (replies, reactions and REDACT
#: name them), and only for the relay: an XMPP user's own connection would get each of
#: its lines back for nothing (the relay, in the channel, hears them with their msgid).
WANTED_CAPS = ("multi-prefix", "account-tag", "account-notify", "extended-join",
               "server-time", "message-tags", "away-notify", "draft/message-redaction")
#: Nicks tried during one registration before giving up on the connection.
MAX_NICK_TRIES = 20
#: How often an alternate nick tries to get the configured one back (e.g. from our own
#: ghost, which a server keeps for a while after a link died).
NICK_RETRY = 60.0
#: Bytes of CAP LS we read before deciding (a server could send LS lines forever).
MAX_CAP_LS = 16384
SASL_CHUNK = 400  # IRCv3 SASL: AUTHENTICATE payloads are sent in 400-byte pieces
SASL_FAILURES = ("nicklocked", "saslfail", "sasltoolong", "saslaborted")  # 902, 904-906
NICK_REFUSED = ("nicknameinuse", "erroneusnickname", "nickcollision", "unavailresource")  # 433 432 436 437

Handler = Callable[[Event], object]


class RelayClient:
    def __init__(
        self,
        config: IrcNetworkConfig,
        *,
        on_registered: Callable[[], None],
        on_lost: Callable[[], None],
        notice: Callable[[str, str], list[str]],
        fold: Callable[[str], str] = str.lower,
        max_age: float = 300.0,
        prelude: tuple[str, ...] = (),
        on_sasl_failed: Callable[[str], None] | None = None,
        echo: bool = True,
    ) -> None:
        """`notice(room, text)` gives the lines that say `text` in `room` as the bridge;
        relayed lines older than `max_age` seconds when their turn comes are dropped;
        `prelude` goes first on every connection (a portal user's WEBIRC). A SASL login
        that fails (or a server without SASL) is logged and registration goes on without
        it, unless `on_sasl_failed` is given: then registration stops there and it is told
        the server's text (a portal user's connection, which is to log in or not be).
        `echo`: ask for echo-message (the relay, which learns its lines' msgids from it)."""
        self.config = config
        self.echo = echo
        self.fold = fold  # the network's case mapping, for telling our own nick
        self.prelude = prelude
        self.on_sasl_failed = on_sasl_failed
        self.network = config.name
        self.on_registered = on_registered
        self.on_lost = on_lost
        self.bucket = TokenBucket(config.flood.burst, config.flood.interval)
        self.outbox = Outbox(self.bucket, config.queue_size, config.name, notice=notice, max_age=max_age)
        self.conn: HardenedConnection | None = None
        self.nick = config.nick
        self.account: str | None = None
        self.user = "~" + config.username  # the worst case until the server tells us
        self.host: str | None = None
        self.caps: set[str] = set()
        self.registered = False
        self.connections = 0  # how many times we connected (tests and logs)
        self.closed = False  # `close` was called: `run` does not connect again
        #: Handlers given to `on`, per event type (the client's own are `_OWN`).
        self._handlers: dict[str, list[tuple[int, Handler]]] = {}
        self._reactor: AioReactor | None = None
        #: Done when the current connection is lost (a future: an Event would cost a deque).
        self._lost: asyncio.Future[None] | None = None
        self._registered_at: float | None = None
        self._cap_open = False  # CAP negotiation started and not yet ended
        self._cap_ls: str | None = ""  # CAP LS collected so far; None once answered
        self._nicks: Iterator[str] = iter(())
        self._nick_tries = 0

    # Public interface for the adapter

    def on(self, event_type: str, handler: Handler, priority: int = 0) -> None:
        """Call `handler(event)` for `event_type` events of the current connection
        ("all_events": every event), after the client's own of the same priority."""
        handlers = self._handlers.setdefault(event_type, [])
        handlers.append((priority, handler))
        handlers.sort(key=lambda entry: entry[0])

    def is_me(self, nick: str | None) -> bool:
        return nick is not None and self.fold(nick) == self.fold(self.nick)

    def control(self, line: str) -> None:
        self.outbox.control(line)

    def send(self, lines: Iterable[str], room: str, origin: str, when: float | None = None) -> asyncio.Future:
        """Relay `lines` to `room`: an event from `origin` (`network/room`) at `when`
        (Unix time; None: never too old). Sent again after a reconnect until confirmed."""
        return self.outbox.put(lines, room, origin, when)

    def budget(self, command: str, target: str) -> int:
        """Bytes of text that fit in `command target :text` as relayed by the server."""
        hostlen = getattr(self.features, "hostlen", None)
        worst = max(WORST_HOST, hostlen if isinstance(hostlen, int) else 0)
        return text_budget(command, target, self.nick, self.user, self.host or "h" * worst)

    @property
    def last_heard(self) -> float:
        """When the current (or last) connection last received anything, as Unix time."""
        if self.conn is None:
            return time.time()
        return time.time() - (time.monotonic() - self.conn.last_received)

    @property
    def features(self):
        return self.conn.features if self.conn is not None else None

    def security(self) -> str:
        c = self.config
        conn = self.conn
        live = conn is not None and conn.connected and conn.transport is not None
        tls = conn.transport.get_extra_info("ssl_object") if live else None
        session = f" {tls.version()} ({tls.cipher()[0]})" if tls is not None else ""
        if not c.tls:
            how = "no TLS (plain text)"
        elif c.tls_verify:
            how = f"TLS{session}, certificate verified"
        else:
            how = f"TLS{session}, certificate NOT verified"
        return f"IRC {self.network}: {how}, server {c.host}:{c.port}"

    async def run(self) -> None:
        """Stay connected until cancelled, or until `close`."""
        # The connection hands its events to `_dispatch`, not to the reactor's handlers
        # (whose one of its own, the library's PONG, we do ourselves).
        self._reactor = AioReactor(on_connect=self._on_transport, loop=asyncio.get_running_loop())
        backoff = Backoff()
        while True:
            try:
                registered_at = await self._session()
            except Exception:  # a bug here must not end the bridge: log, back off, retry
                log.exception("irc_session_failed", network=self.network)
                registered_at = None
            if self.closed:  # a reconnect now would join, then drop without a QUIT
                return
            if registered_at is not None and time.monotonic() - registered_at >= STABLE_AFTER:
                backoff.reset()
            delay = backoff.next_delay()
            log.info("irc_reconnect_wait", network=self.network, delay=round(delay, 1))
            await asyncio.sleep(delay)

    def reconnect(self, reason: str) -> None:
        """Drop the connection now; `run` connects again."""
        if self.conn is not None and self.conn.connected:
            self._drop(self.conn, reason)

    async def close(self, message: str = "muc-bridge shutting down", drain: float = 2.0) -> None:
        """Let queued lines go out for up to `drain` seconds, QUIT, and give the QUIT a moment
        to leave. Lines that could not go out are counted in the log, not lost in silence."""
        self.closed = True
        conn = self.conn
        if conn is None or not conn.connected:
            if len(self.outbox):
                log.warning("irc_unsent_at_shutdown", network=self.network, lines=len(self.outbox))
            return
        if self.registered:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain):
                    while len(self.outbox):
                        await asyncio.sleep(0.05)
        if len(self.outbox):
            log.warning("irc_unsent_at_shutdown", network=self.network, lines=len(self.outbox))
        transport = conn.transport
        conn.disconnect(message)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                while transport.get_write_buffer_size():
                    await asyncio.sleep(0.05)

    # One connection

    async def _session(self) -> float | None:
        """Connect and serve one connection until it is lost; returns when it
        was registered (None if it never was)."""
        conn = HardenedConnection(self._reactor, self.network, self._dispatch)
        self.conn = conn
        self._lost = asyncio.get_running_loop().create_future()
        self._begin_registration()
        self.connections += 1
        c = self.config
        log.info("irc_connecting", network=self.network, host=c.host, port=c.port, tls=c.tls)
        factory = AioFactory(ssl=self._tls_context()) if c.tls else AioFactory()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await conn.connect(c.host, c.port, self.nick, password=c.password,
                                   username=c.username, ircname=c.realname, connect_factory=factory)
        except (OSError, TimeoutError) as exc:
            log.warning("irc_connect_failed", network=self.network, error=str(exc) or type(exc).__name__)
            self.conn = None
            return None
        sock = conn.transport.get_extra_info("socket")
        if sock is not None:
            bound_silence(sock, c.ping_timeout)
        # CAP LS, PASS, NICK and USER went out at once; they still count.
        self.bucket.reset()
        self.bucket.spend(3 + bool(c.password) + len(self.prelude))
        tasks = [asyncio.create_task(self.outbox.run(conn.send_raw), name=f"irc {self.network} writer"),
                 asyncio.create_task(self._watch(conn), name=f"irc {self.network} watchdog")]
        try:
            await self._lost
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return self._registered_at

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.config.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _watch(self, conn: HardenedConnection) -> None:
        """A link silent for `ping_timeout` is dead, and so is one not registered
        within it. Any byte received proves life; after half of it quiet, a PING
        gives a live server something to answer. Now and then, ask for the
        configured nick back if we had to take another."""
        timeout = self.config.ping_timeout
        started = nick_tried = time.monotonic()
        pinged_after: float | None = None  # the last_received our PING followed
        while True:
            await asyncio.sleep(min(1.0, timeout / 10))
            now = time.monotonic()
            if self.registered and not self.is_me(self.config.nick) and now - nick_tried >= NICK_RETRY:
                nick_tried = now
                self.control(f"NICK {self.config.nick}")
            quiet = now - conn.last_received
            if quiet >= timeout:
                self._drop(conn, "ping timeout")
                return
            if not self.registered and now - started > timeout:
                self._drop(conn, "registration timeout")
                return
            # Modern IRC, "PING message": clients should not PING during registration.
            if self.registered and quiet >= timeout / 2 and pinged_after != conn.last_received:
                pinged_after = conn.last_received
                self.outbox.ping()

    def _drop(self, conn: HardenedConnection, reason: str) -> None:
        log.warning("irc_link_dead", network=self.network, reason=reason)
        transport = conn.transport
        conn.disconnect(reason)
        transport.abort()  # do not wait to flush into a dead link

    def _dispatch(self, conn, event: Event) -> None:
        """An event of a connection: to the handlers of its type, in priority order, if it
        is of the current connection (one a handler made anew meanwhile is not); "NO MORE"
        from one stops the rest."""
        if conn is not self.conn:
            return
        own = _OWN.get(event.type)
        typed, every = self._handlers.get(event.type), self._handlers.get("all_events")
        if own is None and not (typed and every):  # one list, in order already: a channel's lines
            handlers = typed or every or ()
        else:
            handlers = [(priority, getattr(self, name)) for priority, name in own or ()]
            handlers = sorted([*handlers, *(typed or ()), *(every or ())], key=lambda entry: entry[0])
        for _, handler in handlers:
            if handler(event) == "NO MORE":
                return

    def _on_transport(self, protocol, transport) -> None:
        # Called by the library before it sends PASS/NICK/USER: asking for
        # capabilities first makes the server hold registration until CAP END.
        for line in self.prelude:  # WEBIRC: before anything else, CAP included
            protocol.connection.send_raw(line)
        protocol.connection.send_raw("CAP LS 302")

    # Keepalive and connection state

    def _on_ping(self, event: Event) -> str:
        self.control(f"PONG :{event.target}")
        return "NO MORE"

    def _on_pong(self, event: Event) -> None:  # PONG <server> :<token>
        token = event.arguments[-1] if event.arguments else event.target
        if token:
            self.outbox.confirm(token)

    def _on_error(self, event: Event) -> None:
        log.warning("irc_server_error", network=self.network, message=event.target)

    def _on_disconnect(self, event: Event) -> None:
        was_registered = self.registered
        self.registered = False
        self.outbox.connection_lost()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        log.info("irc_disconnected", network=self.network,
                 reason=event.arguments[0] if event.arguments else "")
        if was_registered:
            self.on_lost()

    # Registration

    def _begin_registration(self) -> None:
        self.registered = False
        self._registered_at = None
        self.caps = set()
        self.account = None
        self.host = None
        self.user = "~" + self.config.username
        self._cap_open = True
        self._cap_ls = ""
        self._nicks = _nick_candidates(self.config)
        self.nick = next(self._nicks)
        self._nick_tries = 1

    def _on_cap(self, event: Event) -> None:
        args = event.arguments
        sub = args[0].upper() if args else ""
        if sub == "LS" and self._cap_open and self._cap_ls is not None:
            self._cap_ls += " " + (args[-1] if len(args) > 1 else "")
            more = len(args) >= 3 and args[1] == "*"  # more LS lines follow (CAP 302)
            if more and len(self._cap_ls) < MAX_CAP_LS:
                return
            offered = {cap.partition("=")[0] for cap in self._cap_ls.split()}
            self._cap_ls = None  # decided
            wanted = [cap for cap in WANTED_CAPS if cap in offered]
            if self.echo and "message-tags" in offered and "echo-message" in offered:
                wanted.append("echo-message")
            if self.config.sasl is not None:
                if "sasl" in offered:
                    wanted.append("sasl")
                else:
                    log.error("irc_sasl_unavailable", network=self.network)
                    if self.on_sasl_failed is not None:
                        self.on_sasl_failed("the server offers no SASL login")
                        return
            if wanted:
                self.control("CAP REQ :" + " ".join(wanted))
            else:
                self._cap_end()
        elif sub == "ACK":
            acked = {sys.intern(cap.lstrip("~=")) for cap in args[-1].split() if not cap.startswith("-")}
            self.caps |= acked
            log.info("irc_caps", network=self.network, caps=sorted(self.caps))
            if "sasl" in acked and self.config.sasl is not None:
                self.control("AUTHENTICATE PLAIN")
            else:
                self._cap_end()
        elif sub == "NAK" and self.config.sasl is not None and self.on_sasl_failed is not None \
                and "sasl" in (args[-1] if len(args) > 1 else "").split():
            self.on_sasl_failed("the server refused the SASL capability")
        elif sub == "NAK":
            log.warning("irc_caps_refused", network=self.network, caps=args[-1] if len(args) > 1 else "")
            self._cap_end()
        elif sub == "DEL":
            self.caps -= set(args[-1].split())

    def _on_authenticate(self, event: Event) -> None:
        sasl = self.config.sasl
        if sasl is None or event.target != "+":
            return
        payload = base64.b64encode(f"\0{sasl.username}\0{sasl.password}".encode()).decode()
        chunks = [payload[i:i + SASL_CHUNK] for i in range(0, len(payload), SASL_CHUNK)]
        if not chunks or len(chunks[-1]) == SASL_CHUNK:
            chunks.append("+")
        for chunk in chunks:
            self.control(f"AUTHENTICATE {chunk}")

    def _on_loggedin(self, event: Event) -> None:  # 900: <nick> <mask> <account> :text
        if len(event.arguments) >= 2:
            self.account = event.arguments[1]
            log.info("irc_logged_in", network=self.network, account=self.account)

    def _on_loggedout(self, event: Event) -> None:
        self.account = None

    def _on_sasl_failed(self, event: Event) -> None:
        log.error("irc_sasl_failed", network=self.network, reply=event.type)
        if self.on_sasl_failed is not None:
            self.on_sasl_failed(event.arguments[-1] if event.arguments else event.type)
        else:
            self._cap_end()

    def _on_sasl_done(self, event: Event) -> None:
        self._cap_end()

    def _cap_end(self) -> None:
        if self._cap_open and not self.registered:
            self._cap_open = False
            self.control("CAP END")

    def _on_nick_refused(self, event: Event) -> None:
        if self.registered:
            return
        if self._nick_tries >= MAX_NICK_TRIES:
            log.error("irc_no_nick", network=self.network, tries=self._nick_tries)
            self._drop(self.conn, "no usable nick")
            return
        refused, self.nick = self.nick, next(self._nicks)
        self._nick_tries += 1
        log.info("irc_nick_refused", network=self.network, nick=refused, reply=event.type, trying=self.nick)
        self.control(f"NICK {self.nick}")

    def _on_welcome(self, event: Event) -> None:
        self.nick = event.target or self.nick
        self.registered = True
        self._registered_at = time.monotonic()
        self._cap_open = False  # a server without CAP registers us anyway
        words = event.arguments[-1].split() if event.arguments else []
        if words and "!" in words[-1] and "@" in words[-1]:
            self._learn_mask(NickMask(words[-1]))
        log.info("irc_registered", network=self.network, nick=self.nick)
        self.on_registered()

    # Our own nick and mask, which decide how long relayed lines may be

    def _learn_mask(self, mask: NickMask) -> None:
        if mask.user and mask.host:
            self.user, self.host = mask.user, mask.host

    def _on_own_mask(self, event: Event) -> None:
        if event.source and self.is_me(event.source.nick):
            self._learn_mask(event.source)

    def _on_displayed_host(self, event: Event) -> None:  # 396: <nick> <host> :is now your displayed host
        if event.arguments:
            self.host = event.arguments[0].rpartition("@")[2]

    def _on_nick(self, event: Event) -> None:
        if event.source and self.is_me(event.source.nick) and event.target:
            log.info("irc_nick_changed", network=self.network, old=self.nick, new=event.target)
            self.nick = event.target


def _nick_candidates(config: IrcNetworkConfig) -> Iterator[str]:
    """The configured nick, the alternates, then the nick with random digits."""
    yield config.nick
    yield from config.alt_nicks
    while True:
        yield f"{config.nick}{random.randint(10, 999)}"


#: The client's own handlers: event type -> [(priority, method)], in priority order.
_OWN: dict[str, list[tuple[int, str]]] = {}
for _type, _method, _priority in (
    ("ping", "_on_ping", -50),  # before the library's own PONG, which it stops
    ("pong", "_on_pong", 0),
    ("error", "_on_error", 0),
    ("disconnect", "_on_disconnect", 0),
    ("cap", "_on_cap", 0),
    ("authenticate", "_on_authenticate", 0),
    ("saslsuccess", "_on_sasl_done", 0),
    ("saslalready", "_on_sasl_done", 0),
    ("loggedin", "_on_loggedin", 0),
    ("loggedout", "_on_loggedout", 0),
    ("welcome", "_on_welcome", -10),  # before the adapter joins its channels
    ("join", "_on_own_mask", -10),
    ("396", "_on_displayed_host", 0),
    # Own nick changes after the adapter's handlers, which must still see the old nick.
    ("nick", "_on_nick", 10),
    *((name, "_on_sasl_failed", 0) for name in SASL_FAILURES),
    *((name, "_on_nick_refused", 0) for name in NICK_REFUSED),
):
    _OWN.setdefault(_type, []).append((_priority, _method))
for _handlers in _OWN.values():
    _handlers.sort(key=lambda entry: entry[0])
del _type, _method, _priority, _handlers
