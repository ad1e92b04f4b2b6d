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
_NAMES = 16  # distinct top-level element names followed (message, presence, iq, ...)
_SUBJECT = re.compile(rb"<(?:[^\s<>/:]+:)?subject[\s/>]")  # with or without a prefix


class Echoes(Protocol):
    def echo(self, msg_id: str, sender: str) -> bool:
        """Is message `msg_id` from `sender` a copy of one the bridge sent?"""


class _NoEchoes:
    def echo(self, msg_id: str, sender: str) -> bool:
        return False


class ReflectionFilter:
    """Feed it what the server sends, from the stream's first byte; give the parser
    what `feed` returns."""

    def __init__(self, ours: Echoes = _NoEchoes(), limit: int = MAX_PENDING) -> None:
        self.ours = ours
        self.limit = limit
        self.dropped = 0
        self.active = True
        self._root_open = False
        self._pending = b""
        self._opens: dict[bytes, re.Pattern[bytes]] = {}

    def feed(self, data: bytes) -> bytes:
        if not self.active:
            return data
        buf = self._pending + data if self._pending else data
        out: list[bytes] = []
        emitted = pos = 0  # buf[emitted:pos] is decided and kept
        while self.active:
            start = buf.find(b"<", pos)
            if start < 0:  # white space between stanzas
                pos = len(buf)
                break
            end, drop = self._next(buf, start)
            if end == _INCOMPLETE:
                pos = start
                break
            if end == _UNKNOWN:
                self.active = False
                pos = len(buf)
                break
            if drop:
                self.dropped += 1
                out.append(buf[emitted:start])
                emitted = end
            pos = end
        out.append(buf[emitted:pos])
        self._pending = buf[pos:]
        if len(self._pending) > self.limit or not self.active:
            self.active = False
            out.append(self._pending)
            self._pending = b""
        return b"".join(out)

    def _next(self, buf: bytes, start: int) -> tuple[int, bool]:
        """End of the stanza (or stream header) at `start` and whether to drop it."""
        if not self._root_open and buf.startswith(b"<?", start):
            declaration = _DECLARATION.match(buf, start)
            if declaration:
                return declaration.end(), False
            return (_INCOMPLETE if buf.find(b">", start) < 0 else _UNKNOWN), False
        if self._root_open and (plain := _PLAIN.match(buf, start)):
            return plain.end(), self._unused(plain[1], buf, start, plain.end())
        tag = _START.match(buf, start)
        if tag is None:  # cut short by the read, or not a start tag (the stream's end, ...)
            after = buf[start + 1:start + 2]
            incomplete = buf.find(b"<", start + 1) < 0 and not (after and after in b"!?/")
            return (_INCOMPLETE if incomplete else _UNKNOWN), False
        if not self._root_open:  # the stream's root element stays open
            self._root_open = True
            return tag.end(), False
        if buf[tag.end() - 2] == ord("/"):  # an empty element
            return tag.end(), self._unused(tag.group(), buf, start, tag.end())
        end = self._close(buf, tag.group(1), tag.end())
        if end == _UNKNOWN:
            return end, False
        if _NOT_FOLLOWED.search(buf, start, len(buf) if end == _INCOMPLETE else end):
            return _UNKNOWN, False  # CDATA could hide a '</name>' or a '<name': not followed
        return end, end >= 0 and self._unused(tag.group(), buf, start, end)

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
        return (self.ours.echo(msg_id.decode("utf-8", "replace"), sender.decode("utf-8", "replace"))
                and not _SUBJECT.search(buf, start, end))

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
