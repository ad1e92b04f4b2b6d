"""The XEP-0114 component connection: handshake, reconnects, raw dispatch.

slixmpp's ComponentXMPP does the stream and the handshake; every message,
presence and iq after that is handed over as a raw element, so the hot path
builds no stanza objects and runs no handler matching or outgoing filters.
Room messages reflected to puppets, and the echoes of our own, do not even reach the
parser (`framing`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from xml.etree import ElementTree as ET

import structlog
from slixmpp import ComponentXMPP

from bridge.config_types import ComponentConfig
from bridge.core.coalesce import Coalescer
from bridge.core.backoff import Backoff
from bridge.xmpp.framing import ReflectionFilter, SentIds
from bridge.xmpp.stanza import attr, local

log = structlog.get_logger(__name__)

StanzaHandler = Callable[[str, ET.Element], None]


class HandshakeRefused(Exception):
    """The server refused the component's secret; retrying cannot help."""


class _Stream(ComponentXMPP):
    def __init__(self, config: ComponentConfig, on_stanza: StanzaHandler, sent_ids: SentIds) -> None:
        super().__init__(config.jid, config.secret, config.server, config.port)
        self.on_stanza = on_stanza
        self.sent_ids = sent_ids
        self.last_received = time.monotonic()
        self.reflections = ReflectionFilter(sent_ids)

    def connection_made(self, transport, send_event: bool = True) -> None:
        self.reflections = ReflectionFilter(self.sent_ids)  # a new stream from its first byte
        super().connection_made(transport, send_event)

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        super().data_received(self.reflections.feed(data))

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
                 connect_timeout: float = 30.0) -> None:
        self.config = config
        self.on_stanza = on_stanza
        self.on_online = on_online
        self.on_offline = on_offline
        self.connect_timeout = connect_timeout
        self.stream: _Stream | None = None
        self.online = False
        self._ids = itertools.count(1)
        self.sent_ids = SentIds()  # of the room messages we sent: their echoes are ours
        self._pending: dict[str, asyncio.Future[ET.Element]] = {}
        self._outgoing = Coalescer(self._write)

    # -- sending ---------------------------------------------------------

    def send(self, data: str) -> bool:
        """Queue one stanza for this loop turn's write; False (nothing sent) while offline."""
        if not self.online or self.stream is None or self.stream.transport is None:
            return False
        self._outgoing.add(data.encode())
        return True

    def flush(self) -> None:
        self._outgoing.flush()

    def _write(self, data: bytes) -> None:
        stream = self.stream
        if self.online and stream is not None and stream.transport is not None:
            stream.transport.write(data)

    def new_id(self) -> str:
        return f"mb{next(self._ids)}"

    async def query(self, to: str, sender: str, payload: str, kind: str = "get",
                    timeout: float = 30.0) -> ET.Element | None:
        """Send an iq and wait for its answer; None on timeout or while offline."""
        iq_id = self.new_id()
        future: asyncio.Future[ET.Element] = asyncio.get_running_loop().create_future()
        self._pending[iq_id] = future
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
        """Hand an iq result or error to the `query` waiting for it."""
        future = self._pending.get(xml.get("id", ""))
        if future is None or future.done():
            return False
        future.set_result(xml)
        return True

    def silent_for(self) -> float:
        """Seconds since the server last sent anything."""
        return time.monotonic() - self.stream.last_received if self.stream else 0.0

    def abort(self) -> None:
        """Drop the stream (a dead link); `run` reconnects."""
        if self.stream is not None:
            self.stream.abort()

    # -- connection loop -------------------------------------------------

    async def run(self) -> None:
        backoff = Backoff(initial=1.0, maximum=60.0)
        while True:
            connected = await self._session()
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

        stream = self.stream = _Stream(self.config, self.on_stanza, self.sent_ids)
        stream.add_event_handler("session_start", lambda _: started.set())
        stream.add_event_handler("stream_error", stream_error)
        stream.add_event_handler("disconnected", finish)
        stream.add_event_handler("connection_failed", finish)
        log.info("xmpp_connecting", network="xmpp", server=self.config.server, port=self.config.port)
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
            if refused:
                raise HandshakeRefused(
                    f"the XMPP server at {self.config.server}:{self.config.port} refused the "
                    f"component secret for {self.config.jid} ({refused[0]})")
            log.warning("xmpp_connect_failed", network="xmpp",
                        reason=ended.result() if ended.done() else "timeout")
            return False
        log.info("xmpp_online", network="xmpp", jid=self.config.jid)
        self.online = True
        try:
            await self.on_online()
            reason = await ended
        finally:
            self.online = False
            self._outgoing.clear()
            stream.cancel_connection_attempt()
            stream.abort()
            for future in self._pending.values():
                future.cancel()
            self.on_offline()
        log.warning("xmpp_offline", network="xmpp", reason=reason)
        return True

    async def close(self) -> None:
        stream = self.stream
        if stream is not None and self.online:
            self.flush()
            self.online = False
            stream.disconnect(wait=2.0)
            await asyncio.sleep(0)
