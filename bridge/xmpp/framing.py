"""Room messages the bridge has no use for, cut out of the raw stream before it is parsed.

Every joined puppet is an occupant, so the room reflects every message to each of
them as well as to the bot (XEP-0045 7.4), and the bot's copy is the only one the
bridge uses; and the bot's copy of a message the bridge sent itself is only an echo.
In a busy room with many puppets most of what the server sends is such copies, and
parsing them cost more than the rest of the relay (docs/performance.md).

`ReflectionFilter` frames the bytes into top-level stanzas without parsing them: in
XML 1.0 `<` never occurs in character data or attribute values (sections 2.4 and
3.1), so once CDATA sections, comments and processing instructions are ruled out
(`<!` or `<?` inside a stanza), the markup of a stanza is its tags, and it ends at
the end tag that closes its start tag. A groupchat message addressed to a full JID with a
localpart (a puppet; the bot is the component's bare JID, and a portal room, which users
write to, a bare JID) is dropped, and so is the
copy of a message the bridge sent (its id, from the occupant that sent it:
`Outgoing.echo`, which also confirms it) unless it carries a subject (the room's
subject also ends a join, XEP-0045 7.2.15); every other byte goes to the parser
unchanged. Whatever it does not follow turns it off for the rest of the stream and
leaves everything to the parser.

It also tells the stream where each stanza it passes starts and ends (`stanzas`), so
that a stanza the parser refuses costs that stanza only, and it cuts out a stanza
that can never end: one still open when a new stanza begins (a `<message`,
`<presence` or `<iq` in the stream's own namespace, which no stanza holds: a
forwarded one declares `jabber:client`, and so may an element around it), or bytes
that are no stanza at all.

Its work is linear in the bytes it is fed, however the reads fall: a stanza that
arrives in many reads is framed from where the last read left off (its open
elements, or the quote a tag was in), never again from its start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

#: Most bytes held back waiting for the end of one stanza before the filter gives up.
MAX_PENDING = 1 << 19
#: Most elements declaring a namespace followed inside one stanza; beyond, a stanza name
#: inside any of them is taken for one in that namespace.
MAX_NAMESPACES = 64

_DECLARATION = re.compile(rb"<\?xml[^<>]*\?>")
# No possessive quantifiers (`x*+`) here: until 3.11.5 CPython matched them wrongly when what
# they repeat can backtrack (gh-106052), and Debian 12's Python is 3.11.2. An atomic group
# around a greedy repeat, `(?>x*)`, is what they mean and what CPython now compiles them to.
# The common case in one match: a whole message, presence or iq (start tag as group 1)
# holding no element of those names and no '<!' or '<?'; anything else takes the long way.
_PLAIN = re.compile(rb"""(<(message|presence|iq)(?=[\s/>])(?>(?:(?>[^'"<>]+)|'[^'<]*'|"[^"<]*")*)>)"""
                    rb"""(?:(?<=/>)|(?>(?:(?>[^<]+)|<(?![!?]|/?(?:message|presence|iq)[\s/>]))*)</\2\s*>)""")
_NAME = re.compile(rb"""[^!?/'"<>\s]+""")  # of an element, right after '<' or '</'
# What changes nothing inside a stanza, in one match: text, empty elements and elements
# holding only text, none of them named like a stanza.
_INERT = re.compile(rb"""(?>(?:(?>[^<]+)|<(?!(?:message|presence|iq)[\s/>])((?>[^!?/'"<>\s]+))(?=[\s/>])"""
                    rb"""(?>(?:(?>[^'"<>]+)|'[^'<]*'|"[^"<]*")*)>(?:(?<=/>)|(?>[^<]*)</\1\s*>))*)""")
_TAG_TEXT = re.compile(rb"""[^'"<>]*""")  # inside a tag, outside quotes
_END_TAG = re.compile(rb"""</([^!?/'"<>\s]+)\s*>""")
# One attribute of a start tag: taken in turn, never inside a value.
_ATTRIBUTE = re.compile(rb"""\s([^\s=]+)\s*=\s*(?:'([^']*)'|"([^"]*)")""")
# Where a new top-level stanza could begin (checked further: a whole start tag, no xmlns).
_STANZA_START = re.compile(rb"<(?:message|presence|iq)(?=[\s/>])")
_STANZA_NAMES = (b"message", b"presence", b"iq")
_LONGEST_START = len(b"<presence ")  # a _STANZA_START cut by a read is shorter
_SUBJECT = re.compile(rb"<(?:[^\s<>/:]+:)?subject[\s/>]")  # with or without a prefix
_STANZA_ID = re.compile(rb"<stanza-id\s[^<>]*>")

_INCOMPLETE, _UNKNOWN = -1, -2
KEEP, UNUSED, MALFORMED = 0, 1, 2  # what to do with a framed stanza
_COMPLETE, _INVALID = 0, 1  # how a tag scan ends (or _INCOMPLETE)


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


@dataclass(slots=True)
class _TagScan:
    """How far one tag was scanned: from `start` ('<') to `pos`, inside `quote` or not."""

    start: int
    pos: int
    quote: int = 0  # the byte of the quote the scan is inside, or 0


@dataclass(slots=True)
class _Item:
    """The stanza (or stream header, or bytes that are none) being framed, from `start`."""

    start: int
    fresh: bool = True  # nothing scanned yet: the fast path may take it whole
    tag: _TagScan | None = None  # its start tag, or one inside it, cut by a read
    start_tag: bytes = b""  # once whole
    name: bytes = b""  # of the stanza
    depth: int = 0  # elements of that name open
    pos: int = 0  # inside it: where to go on (between tags)
    # Elements inside that declare a default namespace, innermost last: [name, open of that name].
    namespaces: list[list] = field(default_factory=list)
    garbage: bool = False  # no stanza at all: looking for where the next one begins


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
        self._buf = bytearray()
        self._head = 0  # self._buf[self._head:] is held back
        self._item: _Item | None = None  # the held-back stanza, as far as it was framed

    def feed(self, data: bytes) -> bytes:
        self.stanzas = []
        self.received += len(data)
        if not self.active:
            return data
        buf = self._buf
        buf += data
        base = self.received - len(buf)  # stream offset of buf[0]
        out: list[bytes] = []
        size = 0  # of what `out` holds
        emitted = pos = self._head  # buf[emitted:pos] is decided and kept
        while self.active:
            item = self._item
            if item is None:
                start = buf.find(b"<", pos)
                if start < 0:  # white space between stanzas
                    pos = len(buf)
                    break
                item = self._item = _Item(start)
            in_stream = self._root_open
            end, verdict = self._frame(buf, item)
            if end == _INCOMPLETE:
                pos = item.start
                break
            self._item = None
            if end == _UNKNOWN:
                self.active = False
                pos = len(buf)
                break
            start = item.start
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
                out.append(bytes(buf[emitted:start]))
                size += start - emitted
                emitted = end
            pos = end
        out.append(bytes(buf[emitted:pos]))
        if len(buf) - pos > self.limit or not self.active:
            self.active = False
            out.append(bytes(buf[pos:]))
            pos = len(buf)
            self._item = None
        self._head = pos
        self._compact()
        return b"".join(out)

    @property
    def pending(self) -> bytes:
        """What is held back, waiting for the end of a stanza."""
        return bytes(self._buf[self._head:])

    def _compact(self) -> None:
        """Forget what was passed on once it outweighs what is held (so each byte is
        moved at most once on average)."""
        head = self._head
        if head == 0 or head < len(self._buf) - head:
            return
        del self._buf[:head]
        self._head = 0
        item = self._item
        if item is not None:
            item.start -= head
            item.pos -= head
            if item.tag is not None:
                item.tag.start -= head
                item.tag.pos -= head

    # Framing one item

    def _frame(self, buf: bytearray, item: _Item) -> tuple[int, int]:
        """End of the item at `item.start` and what to do with it; _INCOMPLETE (with
        `item` saying how far it got) or _UNKNOWN."""
        start = item.start
        if item.fresh:
            if len(buf) < start + 2:
                return _INCOMPLETE, KEEP
            after = buf[start + 1]
            if not self._root_open:
                return self._header(buf, item, after)
            if after in b"!?/":  # CDATA, a comment, a processing instruction, an end tag
                return _UNKNOWN, KEEP
            plain = _PLAIN.match(buf, start)
            if plain:
                return plain.end(), self._verdict(plain[1], buf, start, plain.end())
            item.fresh = False
            item.pos = start + 1
            if not _NAME.match(buf, start + 1):
                item.garbage = True
            else:
                item.tag = _TagScan(start, start + 1)
        if item.garbage:
            return self._skip_to_stanza(buf, item)
        if not item.start_tag:  # the stanza's start tag, cut by a read
            status = _scan_tag(buf, item.tag)
            if status == _INCOMPLETE:
                return _INCOMPLETE, KEEP
            if status == _INVALID:  # not a start tag: no stanza at all
                item.garbage, item.tag = True, None
                return self._skip_to_stanza(buf, item)
            end = item.tag.pos
            item.tag = None
            item.start_tag = bytes(buf[start:end])
            if buf[end - 2] == ord("/"):  # an empty element
                return end, self._verdict(item.start_tag, buf, start, end)
            item.name, item.depth = _NAME.match(item.start_tag, 1)[0], 1
            if _declares_namespace(item.start_tag):
                item.namespaces.append([item.name, 1])
            item.pos = end
        return self._content(buf, item)

    def _header(self, buf: bytearray, item: _Item, after: int) -> tuple[int, int]:
        """The XML declaration, or the stream's root start tag (which stays open)."""
        start = item.start
        if after == ord("?"):
            gt = buf.find(b">", max(item.pos, start))
            if gt < 0:
                item.pos = len(buf)
                return _INCOMPLETE, KEEP
            declaration = _DECLARATION.fullmatch(buf, start, gt + 1)
            return (gt + 1, KEEP) if declaration else (_UNKNOWN, KEEP)
        if after in b"!/" or not _NAME.match(buf, start + 1):
            return _UNKNOWN, KEEP
        if item.tag is None:
            item.tag = _TagScan(start, start + 1)
        status = _scan_tag(buf, item.tag)
        if status == _INCOMPLETE:
            return _INCOMPLETE, KEEP
        if status == _INVALID:
            return _UNKNOWN, KEEP
        self._root_open = True
        return item.tag.pos, KEEP

    def _content(self, buf: bytearray, item: _Item) -> tuple[int, int]:
        """Inside a stanza: go from tag to tag until the `</name>` that balances the
        `<name` tags before it."""
        while True:
            tag = item.tag
            if tag is None:
                lt = item.pos = _INERT.match(buf, item.pos).end()  # at a '<', or the end
                if lt + 1 >= len(buf):
                    return _INCOMPLETE, KEEP
                if buf[lt + 1] in b"!?":  # CDATA could hide a '</name>' or a '<name': not followed
                    return _UNKNOWN, KEEP
                tag = item.tag = _TagScan(lt, lt + 1)
            status = _scan_tag(buf, tag)
            if status == _INCOMPLETE:
                return _INCOMPLETE, KEEP
            item.tag = None
            lt, end = tag.start, tag.pos
            closing = buf[lt + 1] == ord("/")
            name = _name(buf, lt + 1 + closing)
            if status == _INVALID:  # a '<' that starts no tag: text to the parser
                if name == item.name:
                    return _UNKNOWN, KEEP  # it could hide where the stanza ends
                item.pos = lt + 1
                continue
            item.pos = end
            if closing:
                closed = _END_TAG.fullmatch(buf, lt, end)
                if closed is None:
                    continue  # '</a b>': text to the parser
                _leave_namespaces(item.namespaces, closed[1])
                if closed[1] == item.name:
                    item.depth -= 1
                    if not item.depth:
                        return end, self._verdict(item.start_tag, buf, item.start, end)
                continue
            if name is None:
                continue  # '<' then white space, or a name run into a quote: text to the parser
            declares = _declares_namespace(bytes(buf[lt:end]))
            if name in _STANZA_NAMES and not item.namespaces and not declares:
                return lt, MALFORMED  # a new stanza begins: this one never ends
            if buf[end - 2] == ord("/"):
                continue
            if name == item.name:
                item.depth += 1
            _enter_namespaces(item.namespaces, name, declares)

    def _skip_to_stanza(self, buf: bytearray, item: _Item) -> tuple[int, int]:
        """Bytes that are no stanza, up to where the next one begins: a whole start tag
        of a stanza, in the stream's namespace."""
        while True:
            tag = item.tag
            if tag is None:
                found = _STANZA_START.search(buf, item.pos)
                if found is None:
                    item.pos = max(item.pos, len(buf) - _LONGEST_START)
                    return _INCOMPLETE, KEEP
                tag = item.tag = _TagScan(found.start(), found.start() + 1)
            status = _scan_tag(buf, tag)
            if status == _INCOMPLETE:
                return _INCOMPLETE, KEEP
            item.tag = None
            item.pos = tag.start + 1
            if status == _COMPLETE and not _declares_namespace(bytes(buf[tag.start:tag.pos])):
                return tag.start, MALFORMED

    # Verdicts

    def _verdict(self, tag: bytes, buf: bytearray, start: int, end: int) -> int:
        return UNUSED if self._unused(tag, buf, start, end) else KEEP

    def _unused(self, tag: bytes, buf: bytearray, start: int, end: int) -> bool:
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
        if b"@" in to and b"/" in to:  # a puppet's copy; a bare JID is a portal room
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


def _scan_tag(buf: bytearray, tag: _TagScan) -> int:
    """Go on scanning the tag at `tag.start` to its closing '>' (outside quotes): _COMPLETE
    (`tag.pos` then just after it), _INCOMPLETE (all of `buf` scanned) or _INVALID (a '<'
    inside: no tag). Each byte is looked at once, however many reads the tag spans."""
    pos, quote, size = tag.pos, tag.quote, len(buf)
    while True:
        if quote:
            closing = buf.find(quote, pos)
            if buf.find(b"<", pos, size if closing < 0 else closing) >= 0:
                return _INVALID
            if closing < 0:
                tag.pos, tag.quote = size, quote
                return _INCOMPLETE
            pos, quote = closing + 1, 0
        pos = _TAG_TEXT.match(buf, pos).end()
        if pos == size:
            tag.pos, tag.quote = pos, 0
            return _INCOMPLETE
        char = buf[pos]
        if char == ord(">"):
            tag.pos = pos + 1
            return _COMPLETE
        if char == ord("<"):
            return _INVALID
        pos, quote = pos + 1, char


def _name(buf: bytearray, pos: int) -> bytes | None:
    """The element name at `pos` (after '<' or '</'), if white space, '/' or '>' ends it."""
    name = _NAME.match(buf, pos)
    if name is None or (name.end() < len(buf) and buf[name.end()] not in b" \t\r\n/>"):
        return None
    return name[0]


def _enter_namespaces(namespaces: list[list], name: bytes, declares: bool) -> None:
    """An element opens: one that declares a namespace is followed until it closes."""
    if declares and len(namespaces) < MAX_NAMESPACES:
        namespaces.append([name, 1])
        return
    for entry in reversed(namespaces):  # another of a name followed: it closes first
        if entry[0] == name:
            entry[1] += 1
            return


def _leave_namespaces(namespaces: list[list], name: bytes) -> None:
    for i in range(len(namespaces) - 1, -1, -1):
        if namespaces[i][0] == name:
            namespaces[i][1] -= 1
            if not namespaces[i][1]:
                del namespaces[i:]
            return


def _declares_namespace(start_tag: bytes) -> bool:
    """Does the start tag set a default namespace (`xmlns='...'`)?"""
    return b"xmlns" in start_tag and any(name == b"xmlns" for name, _, _ in _ATTRIBUTE.findall(start_tag))
