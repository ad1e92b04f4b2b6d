"""Room messages the bridge has no use for, cut out of the raw stream before it is parsed.

Every joined puppet is an occupant, so the room reflects every message to each of
them as well as to the bot (XEP-0045 7.4), and the bot's copy is the only one the
bridge uses; and the bot's copy of a message the bridge sent itself is only an echo.
In a busy room with many puppets most of what the server sends is such copies, and
parsing them cost more than the rest of the relay (docs/performance.md).

`ReflectionFilter` frames the bytes into top-level stanzas without tokenizing them:
in XML 1.0 `<` never occurs in character data or attribute values (sections 2.4 and
3.1), so once CDATA sections, comments and processing instructions are ruled out
(`<!` or `<?` inside a stanza), the stanza that starts with `<name` ends at the
`</name>` that balances the `<name` tags in between. A groupchat message addressed to
a JID with a localpart (a puppet; the bot is the component's bare JID) is dropped, and
so is the copy of a message the bridge sent (its id, from the occupant that sent it:
`Outgoing.echo`, which also confirms it) unless it carries a subject (the room's
subject also ends a join, XEP-0045 7.2.15); every other byte goes to the parser
unchanged. Whatever it does not follow turns it off for the rest of the stream and
leaves everything to the parser.

It also tells the stream where each stanza it passes starts and ends (`stanzas`), so
that a stanza the parser refuses costs that stanza only, and it cuts out a stanza
that can never end: one still open when a new stanza begins (a `<message`,
`<presence` or `<iq` in the stream's own namespace, which no stanza holds: a
forwarded one declares `jabber:client`), or bytes that are no stanza at all.
"""

from __future__ import annotations

import re
from typing import Protocol

#: Most bytes held back waiting for the end of one stanza before the filter gives up.
MAX_PENDING = 1 << 19

# A start or empty-element tag; quoted values may hold '>' (possessive: no backtracking).
_START = re.compile(rb"""<([^!?/'"<>\s]++)(?:[^'"<>]++|'[^'<]*+'|"[^"<]*+")*+>""")
_DECLARATION = re.compile(rb"<\?xml[^<>]*\?>")
# The common case in one match: a whole message, presence or iq (start tag as group 1)
# holding no element of those names and no '<!' or '<?'; anything else takes the long way.
_PLAIN = re.compile(rb"""(<(message|presence|iq)(?=[\s/>])(?:[^'"<>]++|'[^'<]*+'|"[^"<]*+")*+>)"""
                    rb"""(?:(?<=/>)|(?:[^<]++|<(?![!?]|/?(?:message|presence|iq)[\s/>]))*+</\2\s*>)""")
# One attribute of a start tag (matched by _START or _PLAIN): taken in turn, never inside a value.
_ATTRIBUTE = re.compile(rb"""\s([^\s=]+)\s*=\s*(?:'([^']*)'|"([^"]*)")""")
_NOT_FOLLOWED = re.compile(rb"<[!?]")  # CDATA, comment, DTD, processing instruction
_INCOMPLETE, _UNKNOWN = -1, -2
KEEP, UNUSED, MALFORMED = 0, 1, 2  # what to do with a framed stanza
# Where a new top-level stanza could begin (checked further: no xmlns of its own).
_STANZA_START = re.compile(rb"<(?:message|presence|iq)(?=[\s/>])")
_NAMES = 16  # distinct top-level element names followed (message, presence, iq, ...)
_SUBJECT = re.compile(rb"<(?:[^\s<>/:]+:)?subject[\s/>]")  # with or without a prefix
_STANZA_ID = re.compile(rb"<stanza-id\s[^<>]*>")


class Echoes(Protocol):
    def echo(self, msg_id: str, sender: str) -> bool:
        """Is message `msg_id` from `sender` a copy of one the bridge sent?"""

    def learned(self, msg_id: str, sender: str, stanza_id: str) -> None:
        """The room calls our message `msg_id` (sent as `sender`) `stanza_id` (XEP-0359)."""


class _NoEchoes:
    def echo(self, msg_id: str, sender: str) -> bool:
        return False

    def learned(self, msg_id: str, sender: str, stanza_id: str) -> None:
        pass


class ReflectionFilter:
    """Feed it what the server sends, from the stream's first byte; give the parser
    what `feed` returns."""

    def __init__(self, ours: Echoes = _NoEchoes(), limit: int = MAX_PENDING) -> None:
        self.ours = ours
        self.limit = limit
        self.dropped = 0
        self.malformed: list[tuple[int, int]] = []  # (stream offset, size) of each cut out
        self.stanzas: list[tuple[int, int]] = []  # of the last `feed`'s output: each stanza kept
        self.header = b""  # the stream's declaration and root start tag, as received
        self.received = 0  # bytes fed so far (offsets for logs)
        self.active = True
        self._root_open = False
        self._pending = b""
        self._opens: dict[bytes, re.Pattern[bytes]] = {}

    def feed(self, data: bytes) -> bytes:
        self.stanzas = []
        base = self.received - len(self._pending)  # stream offset of buf[0]
        self.received += len(data)
        if not self.active:
            return data
        buf = self._pending + data if self._pending else data
        out: list[bytes] = []
        size = 0  # of what `out` holds
        emitted = pos = 0  # buf[emitted:pos] is decided and kept
        while self.active:
            start = buf.find(b"<", pos)
            if start < 0:  # white space between stanzas
                pos = len(buf)
                break
            in_stream = self._root_open
            end, verdict = self._next(buf, start)
            if end == _INCOMPLETE:
                pos = start
                break
            if end == _UNKNOWN:
                self.active = False
                pos = len(buf)
                break
            if verdict == KEEP:
                if not in_stream:  # the prologue and the root's start tag
                    self.header += buf[start:end]
                else:
                    at = size + start - emitted
                    self.stanzas.append((at, at + end - start))
            else:
                if verdict == UNUSED:
                    self.dropped += 1
                else:
                    self.malformed.append((base + start, end - start))
                out.append(buf[emitted:start])
                size += start - emitted
                emitted = end
            pos = end
        out.append(buf[emitted:pos])
        self._pending = buf[pos:]
        if len(self._pending) > self.limit or not self.active:
            self.active = False
            out.append(self._pending)
            self._pending = b""
        return b"".join(out)

    @property
    def pending(self) -> bytes:
        """What is held back, waiting for the end of a stanza."""
        return self._pending

    def _next(self, buf: bytes, start: int) -> tuple[int, int]:
        """End of the stanza (or stream header) at `start` and what to do with it."""
        if not self._root_open and buf.startswith(b"<?", start):
            declaration = _DECLARATION.match(buf, start)
            if declaration:
                return declaration.end(), KEEP
            return (_INCOMPLETE if buf.find(b">", start) < 0 else _UNKNOWN), KEEP
        if self._root_open and (plain := _PLAIN.match(buf, start)):
            return plain.end(), self._verdict(plain[1], buf, start, plain.end())
        tag = _START.match(buf, start)
        if tag is None:  # cut short by the read, or not a start tag (the stream's end, ...)
            after = buf[start + 1:start + 2]
            if buf.find(b"<", start + 1) < 0 and not (after and after in b"!?/"):
                return _INCOMPLETE, KEEP
            if self._root_open and after and after not in b"!?/":  # no stanza at all
                return self._skip_to_stanza(buf, start + 1)
            return _UNKNOWN, KEEP
        if not self._root_open:  # the stream's root element stays open
            self._root_open = True
            return tag.end(), KEEP
        if buf[tag.end() - 2] == ord("/"):  # an empty element
            return tag.end(), self._verdict(tag.group(), buf, start, tag.end())
        end = self._close(buf, tag.group(1), tag.end())
        if end == _UNKNOWN:
            return end, KEEP
        if _NOT_FOLLOWED.search(buf, start, len(buf) if end == _INCOMPLETE else end):
            return _UNKNOWN, KEEP  # CDATA could hide a '</name>' or a '<name': not followed
        if end == _INCOMPLETE:  # or never ends: a new stanza begins inside it
            stray = self._stanza_start(buf, tag.end(), len(buf))
            return (stray, MALFORMED) if stray >= 0 else (_INCOMPLETE, KEEP)
        return end, self._verdict(tag.group(), buf, start, end)

    def _stanza_start(self, buf: bytes, pos: int, end: int) -> int:
        """Where in buf[pos:end] a top-level stanza begins, or -1: a stanza-named start tag
        in the stream's own namespace (none of its own), which no stanza can hold."""
        for found in _STANZA_START.finditer(buf, pos, end):
            tag = _START.match(buf, found.start())
            if tag is not None and b"xmlns" not in tag.group():
                return found.start()
        return -1

    def _skip_to_stanza(self, buf: bytes, pos: int) -> tuple[int, int]:
        """Bytes that are no stanza, up to where the next one begins."""
        at = self._stanza_start(buf, pos, len(buf))
        return (at, MALFORMED) if at >= 0 else (_INCOMPLETE, KEEP)

    def _verdict(self, tag: bytes, buf: bytes, start: int, end: int) -> int:
        return UNUSED if self._unused(tag, buf, start, end) else KEEP

    def _unused(self, tag: bytes, buf: bytes, start: int, end: int) -> bool:
        """A puppet's copy of a room message, or the echo of one of ours without a subject."""
        if not (tag.startswith(b"<message") and tag[8:9].isspace()):
            return False
        groupchat, to, msg_id, sender = False, b"", b"", b""
        for name, single, double in _ATTRIBUTE.findall(tag):
            if name == b"type":
                groupchat = (single or double) == b"groupchat"
            elif name == b"to":
                to = single or double
            elif name == b"id":
                msg_id = single or double
            elif name == b"from":
                sender = single or double
        if not groupchat or b"&" in to + msg_id + sender:  # an entity: the parser decides
            return False
        if b"@" in to:
            return True
        msg_id_, sender_ = msg_id.decode("utf-8", "replace"), sender.decode("utf-8", "replace")
        if not self.ours.echo(msg_id_, sender_) or _SUBJECT.search(buf, start, end):
            return False
        for found in _STANZA_ID.finditer(buf, start, end):  # what replies and reactions name
            attrs = {name: single or double for name, single, double in _ATTRIBUTE.findall(found.group())}
            if attrs.get(b"id") and attrs.get(b"by") == sender.partition(b"/")[0] \
                    and b"&" not in attrs[b"id"]:
                self.ours.learned(msg_id_, sender_, attrs[b"id"].decode("utf-8", "replace"))
                break
        return True

    def _close(self, buf: bytes, name: bytes, pos: int) -> int:
        """End of the `</name>` that balances the `<name ...>` just before `pos`."""
        opens = self._opens.get(name)
        if opens is None:
            if len(self._opens) >= _NAMES:
                return _UNKNOWN
            opens = self._opens[name] = re.compile(b"<" + re.escape(name) + rb"[\s/>]")
        closing, depth, search = b"</" + name, 1, pos
        while True:
            at = buf.find(closing, search)
            if at < 0:
                return _INCOMPLETE
            gt = buf.find(b">", at)
            if gt < 0:
                return _INCOMPLETE
            if buf[at + len(closing):gt].strip():  # </names>: another element
                search = at + 1
                continue
            for nested in opens.finditer(buf, pos, at):
                tag = _START.match(buf, nested.start())
                if tag is None:
                    return _UNKNOWN
                if buf[tag.end() - 2] != ord("/"):
                    depth += 1
            depth -= 1
            pos = search = gt + 1
            if depth == 0:
                return pos
