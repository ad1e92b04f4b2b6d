"""A minimal XMPP client for load: plain TCP on loopback, SASL PLAIN, bind, MUC join.

It builds no stanza objects: outgoing stanzas are preformatted strings and incoming
ones are read with ElementTree's C pull parser and dropped as soon as they are
counted, so a burst of thousands of messages costs the bench little CPU.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

STREAM = "http://etherx.jabber.org/streams"
CLIENT = "jabber:client"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
DELAY = "urn:xmpp:delay"

_MESSAGE = f"{{{CLIENT}}}message"
_PRESENCE = f"{{{CLIENT}}}presence"
_BODY = f"{{{CLIENT}}}body"

#: on_message(room_jid, nick, body, arrival_ns)
MessageHandler = Callable[[str, str, str, int], None]


class XmppError(Exception):
    pass


class _Protocol(asyncio.Protocol):
    def __init__(self, client: XmppClient) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._lost(exc)

    def pause_writing(self) -> None:
        self.client._writable.clear()

    def resume_writing(self) -> None:
        self.client._writable.set()


class XmppClient:
    """One logged-in account. `on_message` sees every groupchat message with a body
    (history excluded); `presences` counts MUC presences received per room."""

    def __init__(self, host: str, port: int, domain: str, user: str, password: str,
                 resource: str = "bench") -> None:
        self.host, self.port, self.domain = host, port, domain
        self.user, self.password, self.resource = user, password, resource
        self.jid = f"{user}@{domain}/{resource}"
        self.on_message: MessageHandler | None = None
        self.presences: dict[str, int] = {}
        self.transport: asyncio.Transport | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._waiters: list[tuple[Callable[[ET.Element], bool], asyncio.Future]] = []
        self._parser: ET.XMLPullParser | None = None
        self._root: ET.Element | None = None
        self._depth = 0
        self.closed: str | None = None

    # -- connecting ----------------------------------------------------------------

    async def login(self, timeout: float = 10.0) -> XmppClient:
        async with asyncio.timeout(timeout):
            loop = asyncio.get_running_loop()
            self.transport, _ = await loop.create_connection(lambda: _Protocol(self),
                                                             self.host, self.port)
            features = await self._open_stream()
            if features.find(f"{{{SASL}}}mechanisms") is None:
                raise XmppError("server offers no SASL")
            token = base64.b64encode(f"\0{self.user}\0{self.password}".encode()).decode()
            answer = self._expect(lambda el: el.tag in (f"{{{SASL}}}success", f"{{{SASL}}}failure"))
            self.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>")
            if (await answer).tag != f"{{{SASL}}}success":
                raise XmppError(f"SASL PLAIN refused for {self.user}")
            await self._open_stream()
            bound = self._expect(lambda el: el.get("id") == "bind")
            self.send(f"<iq type='set' id='bind'><bind xmlns='{BIND}'>"
                      f"<resource>{escape(self.resource)}</resource></bind></iq>")
            reply = await bound
            if reply.get("type") != "result":
                raise XmppError("resource binding failed")
            self.jid = reply.findtext(f".//{{{BIND}}}jid") or self.jid
        return self

    async def _open_stream(self) -> ET.Element:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        features = self._expect(lambda el: el.tag == f"{{{STREAM}}}features")
        self.send(f"<?xml version='1.0'?><stream:stream to={quoteattr(self.domain)} "
                  f"xmlns='{CLIENT}' xmlns:stream='{STREAM}' version='1.0'>")
        return await features

    async def join(self, room: str, nick: str, timeout: float = 10.0) -> None:
        """Enter a MUC room without history; returns when the server confirms (status 110)."""
        def own(el: ET.Element) -> bool:
            if el.tag != _PRESENCE or el.get("from", "").partition("/")[0] != room:
                return False
            if el.get("type") == "error":
                return True
            x = el.find(f"{{{MUC_USER}}}x")
            return x is not None and any(s.get("code") == "110"
                                         for s in x.iter(f"{{{MUC_USER}}}status"))
        confirmed = self._expect(own)
        self.send(f"<presence to={quoteattr(room + '/' + nick)}><x xmlns='{MUC}'>"
                  f"<history maxstanzas='0'/></x></presence>")
        async with asyncio.timeout(timeout):
            reply = await confirmed
        if reply.get("type") == "error":
            raise XmppError(f"{self.user} could not join {room}: {ET.tostring(reply)[:300]!r}")

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"</stream:stream>")
            self.transport.close()

    # -- sending -------------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise XmppError(f"{self.user}: connection closed ({self.closed})")
        self.transport.write(data.encode() if isinstance(data, str) else data)

    @staticmethod
    def groupchat(room: str, body: str) -> bytes:
        return (f"<message type='groupchat' to={quoteattr(room)}><body>{escape(body)}</body>"
                f"</message>").encode()

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark."""
        await self._writable.wait()

    # -- receiving -----------------------------------------------------------------

    def _expect(self, match: Callable[[ET.Element], bool]) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((match, future))
        return future

    def _feed(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        for event, el in parser.read_events():
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self._root = el
                continue
            self._depth -= 1
            if self._depth == 1:
                self._stanza(el)
                self._root.remove(el)
            if parser is not self._parser:  # the stream restarted inside this chunk
                return

    def _stanza(self, el: ET.Element) -> None:
        if el.tag == _MESSAGE:
            if el.get("type") == "groupchat" and self.on_message is not None:
                body = el.findtext(_BODY)
                if body is not None and el.find(f"{{{DELAY}}}delay") is None:
                    room, _, nick = el.get("from", "").partition("/")
                    self.on_message(room, nick, body, time.perf_counter_ns())
            return
        if el.tag == _PRESENCE:
            room = el.get("from", "").partition("/")[0]
            self.presences[room] = self.presences.get(room, 0) + 1
        if el.tag == f"{{{STREAM}}}error":
            self.closed = ET.tostring(el, encoding="unicode")[:300]
        if self._waiters:
            for waiter in list(self._waiters):
                match, future = waiter
                if not future.done() and match(el):
                    future.set_result(el)
                    self._waiters.remove(waiter)
                    break

    def _lost(self, exc: Exception | None) -> None:
        self.closed = self.closed or str(exc or "closed by server")
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(XmppError(f"{self.user}: connection lost ({self.closed})"))
        self._waiters.clear()
        self._writable.set()
