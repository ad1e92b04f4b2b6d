"""The XEP-0114 component connection: handshake, reconnects, raw dispatch.

slixmpp's ComponentXMPP does the stream and the handshake; every message,
presence and iq after that is handed over as a raw element, so the hot path
builds no stanza objects and runs no handler matching or outgoing filters.
Room messages reflected to puppets, and the echoes of our own, do not even reach the
parser (`framing`). Queries (disco, version, ping) are the control plane: the adapter
hands those back to slixmpp's own plugins (`dispatch`; `bridge.xmpp.queries`).

A link that is quiet for half of `ping_timeout` gets an XEP-0199 ping; one silent
for all of it is dead and dropped (TCP keepalive and TCP_USER_TIMEOUT back this up
for writes into a blackhole), and so is one whose write buffer only grows.

XEP-0114 is plain TCP. With `tls: true` the link is TLS from the first byte instead (as
ejabberd's `ejabberd_service` listener with `tls: true` offers it; no STARTTLS, no
fallback to plain), the server's certificate verified for the XMPP server's domain.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from xml.etree import ElementTree as ET

import structlog
from slixmpp import ComponentXMPP

from bridge.config_types import ComponentConfig
from bridge.core.coalesce import Coalescer
from bridge.core.backoff import Backoff
from bridge.core.tcp import bound_silence
from bridge.core.tokens import new_id
from bridge.xmpp.framing import ReflectionFilter
from bridge.xmpp.outgoing import Outgoing
from bridge.xmpp.stanza import NS_PING, attr, local

log = structlog.get_logger(__name__)

StanzaHandler = Callable[[str, ET.Element], None]
StreamSetup = Callable[[ComponentXMPP], None]

#: Bytes waiting in the kernel-side write buffer beyond which the server is not reading:
#: the link is dropped, and what was pending is sent again after the reconnect.
MAX_WRITE_BUFFER = 4 << 20
#: How often the link's silence is checked.
WATCH_TICK = 1.0
#: The name slixmpp's connect loop is given for "TLS from the first byte" (any name it
#: finds in `tls_services` is connected to that way).
DIRECT_TLS = "direct-tls"


class HandshakeRefused(Exception):
    """The server refused the component's secret; retrying cannot help."""


def tls_context(config: ComponentConfig) -> ssl.SSLContext | None:
    """The client side of the link's TLS (None without `tls`): the server's certificate
    verified against `ca_file`'s CAs, else the system's, unless `tls_verify: false`."""
    if not config.tls:
        return None
    context = ssl.create_default_context(cafile=config.ca_file)
    if not config.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Stream(ComponentXMPP):
    def __init__(self, config: ComponentConfig, on_stanza: StanzaHandler, outgoing: Outgoing,
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__(config.jid, config.secret, config.server, config.port)
        self.on_stanza = on_stanza
        self.outgoing = outgoing
        self.ping_timeout = config.ping_timeout
        self.last_received = time.monotonic()
        self.reflections = ReflectionFilter(outgoing)
        self.tls = tls
        if tls is not None:
            # slixmpp's connect loop (1.10 to 1.17) connects to each name in `tls_services`
            # with TLS from the first byte, `default_domain` as the name the certificate
            # must carry (and SNI); without `enable_plaintext` it never tries plain TCP.
            self.tls_services = {DIRECT_TLS}
            self.enable_direct_tls, self.enable_plaintext = True, False
            self.default_domain = config.certificate_name

    def get_ssl_context(self) -> ssl.SSLContext:
        """Ours, whatever slixmpp's version would add to its own."""
        return self.tls or super().get_ssl_context()

    def connection_made(self, transport, send_event: bool = True) -> None:
        self.reflections = ReflectionFilter(self.outgoing)  # a new stream from its first byte
        self.last_received = time.monotonic()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            bound_silence(sock, self.ping_timeout)
        super().connection_made(transport, send_event)

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        kept = self.reflections.feed(data)
        for offset, size in self.reflections.malformed:
            log.warning("xmpp_stanza_malformed", network="xmpp", offset=offset, size=size,
                        reason="never closed, or no stanza at all")
        self.reflections.malformed.clear()
        if kept:
            self._parse(kept, self.reflections.stanzas)

    def _parse(self, data: bytes, stanzas: list[tuple[int, int]]) -> None:
        """Feed the parser and dispatch what it finds (as slixmpp does), except that a
        stanza it refuses costs that stanza only: the filter said where each one ends,
        so a new parser takes over after it. Never logs the bytes themselves."""
        if self.parser is None:
            return
        handled = 0  # stanzas of `data` dispatched
        try:
            self.parser.feed(data)
            for event, xml in self.parser.read_events():
                if event == "start":
                    if self.xml_depth == 0:
                        self.xml_root = xml
                        self.start_stream_handler(xml)
                    self.xml_depth += 1
                    continue
                self.xml_depth -= 1
                if self.xml_depth == 0:
                    self.disconnect_reason = "End of stream"
                    self.abort()
                    return
                if self.xml_depth == 1:
                    handled += 1
                    self._spawn_event(xml)
                    if self.xml_root is not None:
                        self.xml_root.clear()
        except (ET.ParseError, LookupError) as exc:  # LookupError: an unknown encoding
            self._refused(exc, data, stanzas, handled)

    def _refused(self, exc: Exception, data: bytes, stanzas: list[tuple[int, int]], handled: int) -> None:
        offset = self.reflections.received - len(self.reflections.pending) - len(data)
        if not self.reflections.active or handled >= len(stanzas) or not self._restart_parser():
            log.warning("xmpp_stream_malformed", network="xmpp", error=type(exc).__name__,
                        position=getattr(exc, "position", None), size=len(data))
            self.send_raw("<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                          "</stream:error></stream:stream>")
            self.abort()
            return
        start, end = stanzas[handled]
        log.warning("xmpp_stanza_malformed", network="xmpp", offset=offset + start, size=end - start,
                    error=type(exc).__name__)
        rest = stanzas[handled + 1:]
        if rest:
            cut = rest[0][0]
            self._parse(data[cut:], [(a - cut, b - cut) for a, b in rest])

    def _restart_parser(self) -> bool:
        """A new parser inside the stream's root element, as if it had read the header."""
        parser = ET.XMLPullParser(("start", "end"))
        try:
            parser.feed(self.reflections.header)
            events = list(parser.read_events())
        except (ET.ParseError, LookupError):
            return False
        if len(events) != 1:
            return False
        self.parser, self.xml_root, self.xml_depth = parser, events[0][1], 1
        return True

    def dispatch(self, xml: ET.Element) -> None:
        """Hand a stanza to slixmpp's own handlers and plugins (the control plane)."""
        super()._spawn_event(xml)

    def _spawn_event(self, xml: ET.Element) -> None:
        kind = local(xml.tag)
        if kind in ("message", "presence", "iq") and self.sessionstarted:
            try:
                self.on_stanza(kind, xml)
            except Exception:  # a bad stanza must never take the stream down
                log.exception("stanza_handler_failed", stanza=kind, sender=xml.get("from"))
            return
        super()._spawn_event(xml)


class Component:
    """Keeps one component stream up, for as long as `run` runs."""

    def __init__(self, config: ComponentConfig, on_stanza: StanzaHandler,
                 on_online: Callable[[], Awaitable[None]], on_offline: Callable[[], None],
                 connect_timeout: float = 30.0, setup: StreamSetup = lambda stream: None) -> None:
        """`setup` registers slixmpp plugins on each new stream."""
        self.config = config
        self.setup = setup
        self.on_stanza = on_stanza
        self.on_online = on_online
        self.on_offline = on_offline
        self.connect_timeout = connect_timeout
        self.stream: _Stream | None = None
        self.online = False
        self.closed = False  # `close` was called: `run` does not connect again
        self.outgoing = Outgoing(secret=config.secret)  # the room messages we sent: the one owner of their ids
        self.ping_target = config.server_domain  # set by the adapter
        self.tls = tls_context(config)
        # Our iqs waiting for an answer: id -> (where it went, the waiting future).
        self._pending: dict[str, tuple[str, asyncio.Future[ET.Element | None]]] = {}
        self._writes = Coalescer(self._write)

    # -- sending ---------------------------------------------------------

    def send(self, data: str) -> bool:
        """Queue one stanza for this loop turn's write; False (nothing sent) while offline."""
        if not self.online or self.stream is None or self.stream.transport is None:
            return False
        self._writes.add(data.encode())
        return True

    def flush(self) -> None:
        self._writes.flush()

    def dispatch(self, xml: ET.Element) -> None:
        """Hand a received stanza to slixmpp's plugins (see `setup`)."""
        if self.stream is not None:
            self.stream.dispatch(xml)

    def _write(self, data: bytes) -> None:
        stream = self.stream
        if self.online and stream is not None and stream.transport is not None:
            if stream.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                log.warning("xmpp_link_dead", network="xmpp", reason="the server is not reading",
                            buffered=stream.transport.get_write_buffer_size())
                self.abort()
                return
            stream.transport.write(data)

    new_id = staticmethod(new_id)

    async def query(self, to: str, sender: str, payload: str, kind: str = "get",
                    timeout: float = 30.0) -> ET.Element | None:
        """Send an iq and wait for its answer; None on timeout, while offline, or when
        the stream drops meanwhile."""
        iq_id = self.new_id()
        future: asyncio.Future[ET.Element | None] = asyncio.get_running_loop().create_future()
        self._pending[iq_id] = (to, future)
        try:
            if not self.send(f"<iq type='{kind}' id='{iq_id}' to={attr(to)} from={attr(sender)}>"
                             f"{payload}</iq>"):
                return None
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return None
        finally:
            self._pending.pop(iq_id, None)

    def resolve(self, xml: ET.Element) -> bool:
        """Hand an iq result or error to the `query` waiting for it (if it came from
        where the query went: an outsider cannot answer for the server)."""
        to, future = self._pending.get(xml.get("id", ""), ("", None))
        if future is None or future.done() or xml.get("from") != to:
            return False
        future.set_result(xml)
        return True

    def _gone(self) -> None:
        """The stream is gone: nothing more goes out on it, and every query waiting for an
        answer gets None (its task goes on: cancelling it would end, say, housekeeping)."""
        self.online = False
        self._writes.clear()
        for _, future in self._pending.values():
            if not future.done():
                future.set_result(None)
        self.on_offline()

    async def _watch(self, stream: _Stream) -> None:
        """Ping a quiet link; drop one silent for `ping_timeout`."""
        timeout = self.config.ping_timeout
        pinged = 0.0
        while True:
            await asyncio.sleep(min(WATCH_TICK, timeout / 4))
            silent = time.monotonic() - stream.last_received
            if silent >= timeout:
                log.warning("xmpp_link_dead", network="xmpp", reason="silent", seconds=round(silent, 1))
                stream.abort()
                return
            if silent >= timeout / 2 and time.monotonic() - pinged >= timeout / 2:
                pinged = time.monotonic()
                self.send(f"<iq type='get' id='{self.new_id()}' to={attr(self.ping_target)} "
                          f"from={attr(self.config.jid)}><ping xmlns='{NS_PING}'/></iq>")

    def peer(self) -> str | None:
        """The server's IP address while online."""
        stream = self.stream
        if not self.online or stream is None or stream.transport is None:
            return None
        address = stream.transport.get_extra_info("peername")
        return address[0] if address else None

    def tls_session(self) -> ssl.SSLObject | None:
        """The link's TLS session while online over TLS."""
        stream = self.stream
        if not self.online or stream is None or stream.transport is None:
            return None
        return stream.transport.get_extra_info("ssl_object")

    def abort(self) -> None:
        """Drop the stream (a dead link); `run` reconnects."""
        if self.stream is not None:
            self.stream.abort()

    # -- connection loop -------------------------------------------------

    async def run(self) -> None:
        """Keep the stream up until cancelled, or until `close`."""
        backoff = Backoff(initial=1.0, maximum=60.0)
        while True:
            connected = await self._session()
            if self.closed:  # a new stream now would join every room again, only to leave
                return
            if connected:
                backoff.reset()
            delay = backoff.next_delay()
            log.info("xmpp_reconnect_wait", network="xmpp", delay=round(delay, 1))
            await asyncio.sleep(delay)

    async def _session(self) -> bool:
        """One stream's life; True if the handshake succeeded."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[str] = loop.create_future()
        started = asyncio.Event()
        refused: list[str] = []

        def finish(reason: object) -> None:
            if not ended.done():
                ended.set_result(str(reason))

        def stream_error(error: object) -> None:
            condition = error["condition"]  # type: ignore[index]
            text = error["text"]  # type: ignore[index]
            log.warning("xmpp_stream_error", network="xmpp", condition=condition, text=text)
            if condition == "not-authorized":
                refused.append(text or condition)

        def connection_failed(error: object) -> None:
            if isinstance(error, ssl.SSLError):
                self._tls_failed(error)
            finish(error)

        stream = self.stream = _Stream(self.config, self.on_stanza, self.outgoing, self.tls)
        self.setup(stream)
        stream.add_event_handler("session_start", lambda _: started.set())
        stream.add_event_handler("stream_error", stream_error)
        stream.add_event_handler("disconnected", finish)
        stream.add_event_handler("connection_failed", connection_failed)
        log.info("xmpp_connecting", network="xmpp", server=self.config.server, port=self.config.port,
                 tls=self.config.tls)
        stream.connect()
        waiter = asyncio.ensure_future(started.wait())
        try:
            async with asyncio.timeout(self.connect_timeout):
                await asyncio.wait([ended, waiter], return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            log.warning("xmpp_connect_timeout", network="xmpp")
        finally:
            waiter.cancel()
        if not started.is_set():
            stream.cancel_connection_attempt()
            stream.abort()
            await _retire(stream)
            if refused:
                raise HandshakeRefused(
                    f"the XMPP server at {self.config.server}:{self.config.port} refused the "
                    f"component secret for {self.config.jid} ({refused[0]})")
            log.warning("xmpp_connect_failed", network="xmpp",
                        reason=ended.result() if ended.done() else "timeout")
            return False
        log.info("xmpp_online", network="xmpp", jid=self.config.jid)
        self.online = True
        watch = asyncio.create_task(self._watch(stream), name="xmpp link watch")
        try:
            await self.on_online()
            reason = await ended
        finally:
            watch.cancel()
            stream.cancel_connection_attempt()
            stream.abort()
            self._gone()
            await _retire(stream, watch)
        log.warning("xmpp_offline", network="xmpp", reason=reason)
        return True

    def _tls_failed(self, error: ssl.SSLError) -> None:
        """Say why TLS failed and what to change (the connection is tried again later)."""
        c = self.config
        where = dict(network="xmpp", server=c.server, port=c.port)
        if isinstance(error, ssl.SSLCertVerificationError):
            log.error("xmpp_certificate_refused", **where, name=c.certificate_name,
                      error=error.verify_message,
                      hint="give the CA that signed the server's certificate in component.ca_file, "
                           "or the name it carries in component.tls_name")
        else:
            log.error("xmpp_tls_failed", **where, error=error.reason or str(error),
                      hint="does this port speak TLS from the first byte (ejabberd_service with "
                           "tls: true)? If not, set component.tls: false")

    async def close(self) -> None:
        self.closed = True
        stream = self.stream
        if stream is not None and self.online:
            self.flush()
            self.online = False
            stream.disconnect(wait=2.0)
            await asyncio.sleep(0)


async def _retire(stream: _Stream, *tasks: asyncio.Task) -> None:
    """End the tasks of a stream that is gone: slixmpp's send-queue task would
    otherwise be collected while pending, and asyncio says so on stderr."""
    filters = stream._run_out_filters
    if filters is not None:
        filters.cancel()
        tasks = (*tasks, filters)
    await asyncio.gather(*tasks, return_exceptions=True)
