"""Test clients that act as people: an XMPP user in MUC rooms and an IRC user on channels.

Both record everything they receive in an `Inbox`, whose `wait_for(predicate)` also sees what
arrived before the wait began (messages often arrive before the test starts waiting):

    alice = await XmppUser.login(prosody, "alice", "pw")
    await alice.join("room", "alice")
    bob = await IrcUser.connect(inspircd, "bob")
    await bob.join("#room")
    alice.say("room", "hello")
    line = await bob.wait_for_privmsg("#room", "hello")   # fails the test after a timeout
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXMLMask

T = TypeVar("T")

#: How long a test waits for something it expects, unless it says otherwise.
TIMEOUT = 5.0


async def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT,
                     what: str = "condition") -> None:
    """Poll `condition` until it is true; fail the test after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Inbox(Generic[T]):
    """What a client received, oldest first (the newest `limit` items), and waits on it."""

    def __init__(self, name: str, limit: int = 10_000) -> None:
        self.name = name
        self._items: collections.deque[T] = collections.deque(maxlen=limit)
        self._total = 0  # items ever appended; the absolute index of the next one
        self._changed = asyncio.Event()
        self.closed: str | None = None  # why no more items will come

    def append(self, item: T) -> None:
        self._items.append(item)
        self._total += 1
        self._wake()

    def close(self, reason: str) -> None:
        self.closed = reason
        self._wake()

    def reopen(self) -> None:
        self.closed = None

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def mark(self) -> int:
        """A position to pass as `after=`, to ignore everything received so far."""
        return self._total

    def matching(self, predicate: Callable[[T], bool], after: int = 0) -> list[T]:
        first = self._total - len(self._items)
        return [item for i, item in enumerate(self._items, first) if i >= after and predicate(item)]

    async def wait_for(self, predicate: Callable[[T], bool], timeout: float = TIMEOUT,
                       after: int = 0) -> T:
        """The first item (at or after position `after`) that matches; waits for it if needed.
        Fails the test (AssertionError with the last items seen) after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        checked = after
        while True:
            changed = self._changed
            first = self._total - len(self._items)
            for i, item in enumerate(self._items, first):
                if i >= checked and predicate(item):
                    return item
            checked = self._total
            remaining = deadline - loop.time()
            if self.closed is not None or remaining <= 0:
                recent = "\n  ".join(repr(item) for item in list(self._items)[-10:])
                state = f"closed ({self.closed})" if self.closed is not None else "timed out"
                raise AssertionError(f"{self.name}: {state} after waiting up to {timeout} s "
                                     f"for a match; last received:\n  {recent}")
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass


# -- XMPP ---------------------------------------------------------------------------------

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_DELAY = "urn:xmpp:delay"


@dataclass(frozen=True)
class GroupMessage:
    """A groupchat message as a room occupant sees it: a text, a subject change, or both."""

    room: str  # bare room JID
    nick: str  # sender's nick ("" for the room itself)
    body: str | None
    subject: str | None
    id: str | None
    delayed: bool  # history sent on join (carries a XEP-0203 delay)
    xml: ET.Element | None = field(default=None, compare=False, repr=False)

    @property
    def is_action(self) -> bool:
        return self.body is not None and self.body.startswith("/me ")

    @property
    def stanza_id(self) -> str | None:
        """The room's XEP-0359 id for it."""
        sid = self.xml.find("{urn:xmpp:sid:0}stanza-id") if self.xml is not None else None
        return sid.get("id") if sid is not None and sid.get("by") == self.room else None

    def child(self, ns: str, name: str) -> ET.Element | None:
        return self.xml.find(f"{{{ns}}}{name}") if self.xml is not None else None


@dataclass(frozen=True)
class RoomPresence:
    """An occupant's presence in a room (XEP-0045 §7.2)."""

    room: str
    nick: str
    available: bool
    jid: str | None  # the real JID, when the room shows it to us
    codes: frozenset[int] = field(default_factory=frozenset)  # 110 self, 303 nick change, ...
    new_nick: str | None = None  # with code 303
    status: str | None = None


class XmppUser:
    """A person with an XMPP client: logs in to the Prosody fixture (plain c2s on loopback,
    SCRAM), joins MUC rooms and talks there. Rooms may be named `room` (on the fixture's MUC
    service) or as a full JID."""

    def __init__(self, prosody, user: str, password: str, resource: str = "tests") -> None:
        self.prosody = prosody
        self.jid = f"{user}@{prosody.domain}/{resource}"
        self.messages: Inbox[GroupMessage] = Inbox(f"{user}.messages")
        self.presences: Inbox[RoomPresence] = Inbox(f"{user}.presences")
        self.chats: Inbox[GroupMessage] = Inbox(f"{user}.chats")  # one-to-one and MUC PMs
        self.rooms: dict[str, str] = {}  # room JID -> our nick
        self.client = slixmpp.ClientXMPP(self.jid, password)
        # Loopback test server without certificates: plain stream, SCRAM over it.
        self.client.enable_direct_tls = False
        self.client.enable_starttls = False
        self.client.enable_plaintext = True
        self.client.plugin["feature_mechanisms"].unencrypted_scram = True
        # slixmpp's `message` event wants a <body/>; subject changes have none. Catch all.
        self.client.register_handler(Callback(
            "test groupchat", MatchXMLMask("<message xmlns='jabber:client' type='groupchat'/>"),
            self._on_groupchat))
        self.client.register_handler(Callback(
            "test muc presence",
            MatchXMLMask(f"<presence xmlns='jabber:client'><x xmlns='{NS_MUC_USER}'/></presence>"),
            self._on_presence))
        self.client.register_handler(Callback(
            "test chat", MatchXMLMask("<message xmlns='jabber:client' type='chat'/>"), self._on_chat))
        self.client.add_event_handler("disconnected", self._on_disconnected)

    @classmethod
    async def login(cls, prosody, user: str, password: str, resource: str = "tests",
                    timeout: float = 10.0) -> XmppUser:
        self = cls(prosody, user, password, resource)
        await self.connect(timeout)
        return self

    async def connect(self, timeout: float = 10.0) -> None:
        """Log in (again, after a disconnect) and rejoin the rooms joined before."""
        outcome = asyncio.get_running_loop().create_future()

        def settle(result: object) -> None:
            if not outcome.done():
                outcome.set_result(result)

        with (self.client.event_handler("session_start", lambda _: settle(None)),
              self.client.event_handler("failed_all_auth",
                                        lambda _: settle("authentication failed"))):
            self.messages.reopen()
            self.presences.reopen()
            self.client.connect(self.prosody.host, self.prosody.c2s_port)
            try:
                error = await asyncio.wait_for(outcome, timeout)
            except TimeoutError:
                error = f"no session within {timeout} s"
        if error:
            self.client.cancel_connection_attempt()
            self.client.abort()
            raise AssertionError(f"{self.jid}: login failed: {error}")
        for room, nick in list(self.rooms.items()):
            await self.join(room, nick, timeout=timeout)

    async def close(self, timeout: float = 3.0) -> None:
        self.client.cancel_connection_attempt()
        try:
            await asyncio.wait_for(self.client.disconnect(wait=1.0), timeout)
        except TimeoutError:
            self.client.abort()

    def room_jid(self, room: str) -> str:
        return room if "@" in room else self.prosody.room_jid(room)

    async def join(self, room: str, nick: str, history: int = 0,
                   timeout: float = TIMEOUT) -> None:
        """Join and wait until the join is complete: our own presence (status 110), then the
        subject, which ends the join sequence (XEP-0045 §7.2.15)."""
        room = self.room_jid(room)
        mark_p, mark_m = self.presences.mark(), self.messages.mark()
        presence = self.client.make_presence(pto=f"{room}/{nick}")
        x = ET.SubElement(presence.xml, f"{{{NS_MUC}}}x")
        ET.SubElement(x, f"{{{NS_MUC}}}history", maxstanzas=str(history))
        presence.send()
        self.rooms[room] = nick
        await self.presences.wait_for(lambda p: p.room == room and 110 in p.codes and p.available,
                                      timeout, after=mark_p)
        await self.messages.wait_for(lambda m: m.room == room and m.subject is not None,
                                     timeout, after=mark_m)

    async def leave(self, room: str, status: str = "", timeout: float = TIMEOUT) -> None:
        room = self.room_jid(room)
        mark = self.presences.mark()
        self.client.send_presence(pto=f"{room}/{self.rooms.pop(room)}", ptype="unavailable",
                                  pstatus=status or None)
        await self.presences.wait_for(
            lambda p: p.room == room and 110 in p.codes and not p.available, timeout, after=mark)

    async def change_nick(self, room: str, nick: str, timeout: float = TIMEOUT) -> None:
        room = self.room_jid(room)
        mark = self.presences.mark()
        self.client.send_presence(pto=f"{room}/{nick}")
        await self.presences.wait_for(
            lambda p: p.room == room and 110 in p.codes and p.available and p.nick == nick,
            timeout, after=mark)
        self.rooms[room] = nick

    def say(self, room: str, text: str) -> None:
        self.client.send_message(mto=self.room_jid(room), mbody=text, mtype="groupchat")

    def send(self, room: str, body: str | None, *payloads: str) -> str:
        """A groupchat message with extra payloads (XML strings); returns its id."""
        msg = self.client.make_message(mto=self.room_jid(room), mbody=body, mtype="groupchat")
        for payload in payloads:
            msg.xml.append(ET.fromstring(payload))
        msg_id = msg["id"] or self.client.new_id()
        msg["id"] = msg_id
        msg.send()
        return msg_id

    def me(self, room: str, text: str) -> None:
        """A /me action: by convention (XEP-0245) a body that starts with "/me "."""
        self.say(room, f"/me {text}")

    def set_subject(self, room: str, subject: str) -> None:
        self.client.send_message(mto=self.room_jid(room), msubject=subject, mtype="groupchat")

    async def wait_for_message(self, room: str, body: str | None = None, *,
                               nick: str | None = None, timeout: float = TIMEOUT,
                               after: int = 0) -> GroupMessage:
        """A live (not history) message in `room`, optionally with this body and sender."""
        room = self.room_jid(room)
        return await self.messages.wait_for(
            lambda m: (m.room == room and m.body is not None and not m.delayed
                       and (body is None or m.body == body) and (nick is None or m.nick == nick)),
            timeout, after=after)

    async def wait_for_subject(self, room: str, subject: str, timeout: float = TIMEOUT,
                               after: int = 0) -> GroupMessage:
        room = self.room_jid(room)
        return await self.messages.wait_for(
            lambda m: m.room == room and m.subject == subject, timeout, after=after)

    def occupants(self, room: str) -> set[str]:
        """Nicks present in `room` now, as told by presences."""
        room = self.room_jid(room)
        present: set[str] = set()
        for p in self.presences:
            if p.room != room:
                continue
            if p.available:
                present.add(p.nick)
            else:
                present.discard(p.nick)
                if p.new_nick:
                    present.add(p.new_nick)
        return present

    def _on_disconnected(self, _reason: object) -> None:
        self.messages.close("disconnected")
        self.presences.close("disconnected")

    def _on_groupchat(self, msg: slixmpp.Message) -> None:
        xml = msg.xml
        body = xml.find("{jabber:client}body")
        subject = xml.find("{jabber:client}subject")
        self.messages.append(GroupMessage(
            room=msg["from"].bare, nick=msg["from"].resource,
            body=None if body is None else (body.text or ""),
            subject=None if subject is None else (subject.text or ""),
            id=xml.get("id"), delayed=xml.find(f"{{{NS_DELAY}}}delay") is not None, xml=xml))

    def _on_chat(self, msg: slixmpp.Message) -> None:
        body = msg.xml.find("{jabber:client}body")
        self.chats.append(GroupMessage(
            room=msg["from"].bare, nick=msg["from"].resource, body=None if body is None else body.text,
            subject=None, id=msg.xml.get("id"), delayed=False, xml=msg.xml))

    def _on_presence(self, pres: slixmpp.Presence) -> None:
        x = pres.xml.find(f"{{{NS_MUC_USER}}}x")
        item = x.find(f"{{{NS_MUC_USER}}}item")
        codes = frozenset(int(s.get("code", 0)) for s in x.findall(f"{{{NS_MUC_USER}}}status"))
        status = pres.xml.find("{jabber:client}status")
        self.presences.append(RoomPresence(
            room=pres["from"].bare, nick=pres["from"].resource,
            available=pres["type"] != "unavailable",
            jid=item.get("jid") if item is not None else None, codes=codes,
            new_nick=item.get("nick") if item is not None and 303 in codes else None,
            status=status.text if status is not None else None))


# -- IRC ----------------------------------------------------------------------------------

def _unescape_tag(value: str) -> str:
    """IRCv3 message-tags value unescaping."""
    out, chars = [], iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append({":": ";", "s": " ", "r": "\r", "n": "\n"}.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class IrcLine:
    """One line from the server: `@tags :source COMMAND params...`."""

    command: str
    params: tuple[str, ...] = ()
    source: str = ""
    tags: dict[str, str] = field(default_factory=dict, compare=False)
    raw: str = field(default="", compare=False)

    @classmethod
    def parse(cls, raw: str) -> IrcLine:
        rest, tags, source = raw, {}, ""
        if rest.startswith("@"):
            tag_text, _, rest = rest[1:].partition(" ")
            for tag in tag_text.split(";"):
                key, _, value = tag.partition("=")
                tags[key] = _unescape_tag(value)
            rest = rest.lstrip(" ")
        if rest.startswith(":"):
            source, _, rest = rest[1:].partition(" ")
            rest = rest.lstrip(" ")
        head, sep, trailing = rest.partition(" :")
        params = head.split()
        command = params.pop(0).upper() if params else ""
        if sep:
            params.append(trailing)
        return cls(command, tuple(params), source, tags, raw)

    @property
    def nick(self) -> str:
        return self.source.split("!", 1)[0]

    @property
    def target(self) -> str:
        return self.params[0] if self.params else ""

    @property
    def text(self) -> str:
        return self.params[-1] if self.params else ""

    @property
    def action(self) -> str | None:
        """The text of a CTCP ACTION (/me), else None."""
        if self.command == "PRIVMSG" and self.text.startswith("\x01ACTION "):
            return self.text[len("\x01ACTION "):].rstrip("\x01")
        return None


class IrcUser:
    """A person with a raw IRC client on the InspIRCd or ngIRCd fixture (plain or TLS, the
    TLS certificate verified against the fixture's). Answers PING; records every line."""

    def __init__(self, server, nick: str, *, tls: bool = False, password: str | None = None,
                 caps: tuple[str, ...] = (), username: str | None = None) -> None:
        self.server = server
        self.nick = nick
        self.tls = tls
        self.password = password
        self.caps = caps
        self.username = username or "tester"
        self.lines: Inbox[IrcLine] = Inbox(f"{nick}.lines")
        self.acked_caps: frozenset[str] = frozenset()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None

    @classmethod
    async def connect(cls, server, nick: str, *, tls: bool = False, password: str | None = None,
                      caps: tuple[str, ...] = (), timeout: float = 10.0) -> IrcUser:
        """Connect and register; returns once the MOTD (or its absence) is through."""
        self = cls(server, nick, tls=tls, password=password, caps=caps)
        await self.register(timeout)
        return self

    async def register(self, timeout: float = 10.0) -> None:
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.server.cert_path))
        port = self.server.tls_port if self.tls else self.server.port
        reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.server.host, port, ssl=context, limit=65536), timeout)
        self._reader_task = asyncio.create_task(self._read(reader), name=f"irc {self.nick}")
        if self.caps:
            self.send("CAP", "REQ", " ".join(self.caps))
        if self.password:
            self.send("PASS", self.password)
        self.send("NICK", self.nick)
        self.send("USER", self.username, "0", "*", f"test user {self.nick}")
        if self.caps:
            reply = await self.lines.wait_for(
                lambda l: l.command == "CAP" and l.params[1:2] in (("ACK",), ("NAK",)), timeout)
            if reply.params[1] == "ACK":
                self.acked_caps = frozenset(reply.text.split())
            self.send("CAP", "END")
        # InspIRCd finishes registration in its once-a-second tick: allow for it.
        done = await self.lines.wait_for(
            lambda l: l.command in ("376", "422", "432", "433", "464", "465", "ERROR"), timeout)
        if done.command not in ("376", "422"):
            raise AssertionError(f"{self.nick}: registration refused: {done.raw}")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while raw := await reader.readline():
                line = IrcLine.parse(raw.decode("utf-8", "replace").rstrip("\r\n"))
                if line.command == "PING":
                    self.send("PONG", *line.params)
                self.lines.append(line)
            self.lines.close("connection closed by the server")
        except (OSError, ValueError) as exc:  # ValueError: a line over the reader's limit
            self.lines.close(f"connection lost: {exc!r}")

    # -- sending ---------------------------------------------------------------------------
    def send(self, command: str, *params: str) -> None:
        """Send one well-formed line; the last parameter may contain spaces."""
        if any(c in p for p in (command, *params) for c in "\r\n\0"):
            raise ValueError("CR, LF and NUL cannot be sent inside an IRC line")
        parts = [command, *params]
        if params and (" " in params[-1] or params[-1].startswith(":") or not params[-1]):
            parts[-1] = ":" + params[-1]
        self.send_raw(" ".join(parts))

    def send_raw(self, line: str | bytes) -> None:
        """Send bytes as they are (CRLF added), for tests of misbehaving input."""
        data = line.encode() if isinstance(line, str) else line
        if self._writer is None or self._writer.is_closing():
            raise AssertionError(f"{self.nick}: not connected")
        self._writer.write(data + b"\r\n")

    def privmsg(self, target: str, text: str) -> None:
        self.send("PRIVMSG", target, text)

    def action(self, target: str, text: str) -> None:
        """/me: a CTCP ACTION."""
        self.send("PRIVMSG", target, f"\x01ACTION {text}\x01")

    def notice(self, target: str, text: str) -> None:
        self.send("NOTICE", target, text)

    # -- commands that wait for the server's answer ------------------------------------------
    async def _command(self, ok: Callable[[IrcLine], bool], timeout: float,
                       *line: str) -> IrcLine:
        """Send a command; wait for the line that says it worked, fail on an error numeric."""
        mark = self.lines.mark()
        self.send(*line)
        reply = await self.lines.wait_for(
            lambda l: ok(l) or (len(l.command) == 3 and l.command[0] in "45"), timeout, after=mark)
        if not ok(reply):
            raise AssertionError(f"{self.nick}: {' '.join(line[:2])} refused: {reply.raw}")
        return reply

    def _own(self, command: str, channel: str | None = None) -> Callable[[IrcLine], bool]:
        """Matches the server's echo of our own JOIN/PART/TOPIC/NICK."""
        nick = self.nick.lower()
        return lambda l: (l.command == command and l.nick.lower() == nick
                          and (channel is None or l.target.lower() == channel.lower()))

    async def join(self, channel: str, timeout: float = TIMEOUT) -> None:
        """Join and wait for the end of the names list (366)."""
        await self._command(lambda l: l.command == "366" and l.params[1].lower() == channel.lower(),
                            timeout, "JOIN", channel)

    async def part(self, channel: str, reason: str = "", timeout: float = TIMEOUT) -> None:
        await self._command(self._own("PART", channel), timeout,
                            "PART", channel, *([reason] if reason else []))

    async def set_topic(self, channel: str, topic: str, timeout: float = TIMEOUT) -> None:
        await self._command(self._own("TOPIC", channel), timeout, "TOPIC", channel, topic)

    async def change_nick(self, nick: str, timeout: float = TIMEOUT) -> None:
        await self._command(self._own("NICK"), timeout, "NICK", nick)
        self.nick = nick

    async def quit(self, reason: str = "bye", timeout: float = TIMEOUT) -> None:
        """QUIT and wait for the server to close the connection."""
        if self._writer is not None and not self._writer.is_closing():
            self.send("QUIT", reason)
            try:
                await asyncio.wait_for(asyncio.shield(self._reader_task), timeout)
            except TimeoutError:
                pass
        await self.close()

    async def close(self) -> None:
        """Drop the connection (no QUIT)."""
        if self._writer is not None:
            self._writer.close()
            try:
                await asyncio.wait_for(self._writer.wait_closed(), 2.0)
            except (OSError, TimeoutError, ssl.SSLError):
                pass
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)

    # -- reading -----------------------------------------------------------------------------
    async def wait_for(self, predicate: Callable[[IrcLine], bool], timeout: float = TIMEOUT,
                       after: int = 0) -> IrcLine:
        return await self.lines.wait_for(predicate, timeout, after)

    async def wait_for_privmsg(self, target: str, text: str | None = None, *,
                               sender: str | None = None, timeout: float = TIMEOUT,
                               after: int = 0) -> IrcLine:
        """A PRIVMSG to `target` (a channel, or our nick), optionally with this exact text
        and from this nick."""
        return await self.lines.wait_for(
            lambda l: (l.command == "PRIVMSG" and l.target.lower() == target.lower()
                       and (text is None or l.text == text)
                       and (sender is None or l.nick.lower() == sender.lower())),
            timeout, after=after)

    def privmsgs(self, target: str, after: int = 0) -> list[IrcLine]:
        return self.lines.matching(
            lambda l: l.command == "PRIVMSG" and l.target.lower() == target.lower(), after)
