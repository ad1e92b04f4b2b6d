"""The reflection filter (bridge/xmpp/framing.py), differentially against the XML parser.

A stream (the header, then stanzas: plain ones, the copies and echoes the filter drops,
forwarded ones, CDATA, comments, deep nesting, entities, prefixes; sometimes a stanza
that never ends, bytes that are no stanza, or random corruption) goes through the filter
in the reads its seed says, and once more in one read. What must hold:

- the two runs give the same bytes, drops and cuts (however the reads fall);
- the output is the input less the stanzas dropped and the spans reported malformed;
- each dropped stanza is one the bridge has no use for, judged from the stanza itself
  (a groupchat message to a puppet, or an echo of ours without a subject);
- each span cut as malformed stops where a stanza begins and is no whole stanza;
- on a stream the parser takes whole, exactly the stanzas to drop are dropped (unless
  CDATA, a comment or a processing instruction turned the filter off) and each span in
  `stanzas` is one whole stanza.
"""

from __future__ import annotations

import random
import re
import xml.parsers.expat
from xml.sax.saxutils import escape, quoteattr

from bridge.xmpp import framing
from tests.fuzz.engine import Target, Violation
from tests.fuzz.mutate import mutate, reads, with_reads

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
          b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='bridge.localhost'>")
BOT = "r@muc.localhost/bridge"
OURS = {("mb1", BOT), ("mb'2", BOT), ("mb<3", BOT)}  # (id, sender) of our echoes
STREAM_NS = "jabber:component:accept"


class _Ours:
    def echo(self, msg_id: str, sender: str) -> bool:
        return (msg_id, sender) in OURS


class _Recording(framing.ReflectionFilter):
    """Notes where each dropped stanza was (stream offset, bytes)."""

    def __init__(self) -> None:
        super().__init__(_Ours())
        self.cut: list[tuple[int, bytes]] = []

    def _verdict(self, tag, buf, start, end):
        verdict = super()._verdict(tag, buf, start, end)
        if verdict == framing.UNUSED:
            self.cut.append((self.received - len(self._buf) + start, bytes(buf[start:end])))
        return verdict


# --- the generator ---

_TEXT = "abc xyz <>&'\"]]> é€😀\u0301\t\n"
_JIDS = ["bridge.localhost", "alice%irc@bridge.localhost/bridge", "a&amp;b@bridge.localhost/x",
         "room@muc.localhost/bob", "r@muc.localhost", BOT, "r@muc.localhost/mallory", ""]
_IDS = ["mb1", "mb'2", "mb<3", "x1", "x&y", ""]


def _text(rng: random.Random) -> str:
    return escape("".join(rng.choice(_TEXT) for _ in range(rng.choice((0, 1, 3, 8, 40)))))


def _attr(rng: random.Random, value: str) -> str:
    if rng.random() < 0.5:
        return quoteattr(value)
    return "'" + escape(value, {"'": "&apos;", '"': "&quot;"}) + "'"


def _children(rng: random.Random, depth: int) -> str:
    parts = []
    for _ in range(rng.choice((0, 1, 1, 2, 3, 5) if depth == 0 else (0, 1, 1, 2))):
        kind = rng.randrange(14 if depth < 4 else 5)
        if kind == 0:
            parts.append(_text(rng))
        elif kind == 1:
            parts.append(f"<x xmlns='urn:t' v={_attr(rng, _text(rng))}/>")
        elif kind == 2:
            parts.append(f"<body>{_text(rng)}</body>")
        elif kind == 3:
            parts.append(rng.choice(["<![CDATA[</message><message>]]>", "<!-- hm -->", "<?pi x?>"]))
        elif kind == 4:
            parts.append("&amp;&lt;&#65;&#x1F600;")
        elif kind == 5:
            parts.append(f"<subject>{_text(rng)}</subject>")
        elif kind == 6:
            parts.append(f"<c:subject xmlns:c='{STREAM_NS}'>{_text(rng)}</c:subject>")
        elif kind == 7:  # a stanza inside one, as XEP-0297 forwards it
            name = rng.choice(["message", "presence", "iq"])
            parts.append(f"<forwarded xmlns='urn:xmpp:forward:0'><{name} xmlns='jabber:client' "
                         f"type='groupchat' to='b@c/d'>{_children(rng, depth + 1)}</{name}></forwarded>")
        elif kind == 8:  # a stanza name inside an element of another namespace
            name = rng.choice(["message", "presence", "iq", "subject"])
            parts.append(f"<ext xmlns='urn:other'><{name}>{_children(rng, depth + 1)}</{name}></ext>")
        elif kind == 9:
            parts.append(f"<body>{_children(rng, depth + 1)}</body>")
        elif kind == 10:
            parts.append(f"<p:q xmlns:p='urn:p' a={_attr(rng, _text(rng))}>{_children(rng, depth + 1)}</p:q>")
        elif kind == 11:
            parts.append(f"<messages>{_children(rng, depth + 1)}</messages >")
        elif kind == 12:
            n = rng.choice((10, 10, 40, 300))
            parts.append("<d>" * n + _text(rng) + "</d>" * n)
        else:
            parts.append(f"<a{rng.choice(['', ' ', chr(10)])}/>" * rng.choice((1, 5, 50)))
    return "".join(parts)


def _stanza(rng: random.Random) -> str:
    name = rng.choice(["message"] * 6 + ["presence", "iq", "messages", "stream:features"])
    attrs = []
    for key, values in (("type", ["groupchat", "chat", "error", "result", "groupchat"]),
                        ("to", _JIDS), ("id", _IDS), ("from", _JIDS)):
        if rng.random() < 0.9:
            spaces = rng.choice([" ", " ", "\n\t", "  "]), rng.choice(["", " "])
            attrs.append(f"{spaces[0]}{key}{spaces[1]}={spaces[1]}{_attr(rng, rng.choice(values))}")
    rng.shuffle(attrs)
    if rng.random() < 0.1:
        attrs.append(f" xmlns={_attr(rng, rng.choice(['jabber:client', STREAM_NS, 'urn:x']))}")
    head = f"<{name}{''.join(attrs)}"
    inner = _children(rng, 0)
    if not inner and rng.random() < 0.4:
        return head + rng.choice(["/>", " />"])
    return f"{head}>{inner}</{name}{rng.choice(['', ' ', chr(10)])}>"


def _broken(rng: random.Random) -> str:
    """What a broken server could send: a stanza cut short, bytes that are no stanza."""
    return rng.choice([
        "<message type='chat' to='bridge.localhost'><body>never closed",
        "<<garbage>>", "< message>", "<message a='<'>", "</message>", "<message",
        "<presence to='x' <iq/>", "text at the top",
        "<message type='groupchat' to='a@b'><body>&bogus;</body></message>",
        "<message type='groupchat' to='a@b/c'><x></message>", "<iq><iq/></iq>",
    ])


def generate(rng: random.Random) -> bytes:
    parts = [HEADER.decode()]
    for _ in range(rng.choice((1, 2, 3, 4, 8))):
        parts.append(rng.choice(["", "", " ", "\n  "]))
        parts.append(_broken(rng) if rng.random() < 0.05 else _stanza(rng))
    if rng.random() < 0.05:
        parts.append("</stream:stream>")
    stream = "".join(parts).encode()
    if rng.random() < 0.25:
        stream = stream[:len(HEADER)] + mutate(rng, stream[len(HEADER):])
    if rng.random() < 0.01:  # one large stanza: how it is framed across many reads
        body = "<b>y</b>" * rng.choice((500, 5000))
        big = f"<message to='bridge.localhost'><body>{body}</body></message>"
        stream += big.encode()
    return with_reads(rng, stream)


# --- the oracle ---


def _run(chunks: list[bytes]) -> tuple[_Recording, bytes, list[tuple[int, int, bytes]]]:
    """The filter over `chunks`: itself, its output, and each feed's stanza spans."""
    f = _Recording()
    outputs, spans = [], []
    for chunk in chunks:
        out = f.feed(chunk)
        spans.extend((a, b, out) for a, b in f.stanzas)
        outputs.append(out)
    return f, b"".join(outputs), spans


def _tag_end(data: bytes, start: int) -> int:
    """End of the (well-formed) tag at `start`."""
    quote = None
    for i in range(start + 1, len(data)):
        c = data[i]
        if quote:
            if c == quote:
                quote = None
        elif c in b"'\"":
            quote = c
        elif c == ord(">"):
            return i + 1
    return len(data)


def _top_level(data: bytes) -> tuple[list[tuple[int, int, str, dict, bool]], bool]:
    """The parser's view: (start, end, name, attributes, holds a subject) of each whole
    top-level stanza, and whether it took the whole stream."""
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    found, open_ = [], []

    def start(name, attrs):
        at = parser.CurrentByteIndex
        if len(open_) == 1:
            open_.append([at, name, attrs, False])
        elif len(open_) > 1 and name.rpartition(" ")[2] == "subject":
            open_[1][3] = True
            open_.append(None)
        else:
            open_.append(None)

    def end(name):
        at = parser.CurrentByteIndex
        item = open_.pop()
        if len(open_) == 1 and item is not None:
            begin, tag, attrs, subject = item
            head_end = _tag_end(data, begin)
            stop = head_end if data[head_end - 2:head_end] == b"/>" else data.index(b">", at) + 1
            found.append((begin, stop, tag, attrs, subject))

    parser.StartElementHandler, parser.EndElementHandler = start, end
    try:
        parser.Parse(data, False)
        return found, True
    except xml.parsers.expat.ExpatError:
        return found, False


_RAW_ATTRIBUTE = re.compile(rb"""\s([^\s=]+)\s*=\s*(?:'([^']*)'|"([^"]*)")""")


def _unused(name: str, attrs: dict, subject: bool, raw_head: bytes) -> bool:
    """Does the bridge have no use for this stanza (from its parsed form)? The bridge
    goes by local names; a value written with an entity is left to the parser."""
    if name.rpartition(" ")[2] != "message" or attrs.get("type") != "groupchat":
        return False
    if not re.match(rb"<message\s", raw_head):  # a prefixed one is left to the parser
        return False
    raw = {key: a or b for key, a, b in _RAW_ATTRIBUTE.findall(raw_head)}
    if any(b"&" in raw.get(key, b"") for key in (b"type", b"to", b"id", b"from")):
        return False
    if "@" in attrs.get("to", "") and "/" in attrs.get("to", ""):  # a puppet's copy (a bare
        return True  # JID with a local part is a portal room, which users write to)
    return (attrs.get("id", ""), attrs.get("from", "")) in OURS and not subject


def check(data: bytes) -> None:
    stream = data[4:]
    f, out, spans = _run(reads(data))
    whole, out_whole, _ = _run([stream])
    if (out, f.dropped, f.malformed, f.active) != (out_whole, whole.dropped, whole.malformed, whole.active):
        raise Violation("the reads changed what the parser gets")
    # The output is the input less what was dropped and cut.
    removed = sorted([(at, len(span), "dropped") for at, span in f.cut]
                     + [(at, size, "malformed") for at, size in f.malformed])
    expected, pos = [], 0
    for at, size, _ in removed:
        if at < pos:
            raise Violation("overlapping cuts")
        expected.append(stream[pos:at])
        pos = at + size
    expected.append(stream[pos:])
    if b"".join(expected) != out + f.pending:
        raise Violation("output (and what is held back) is not the input less the cuts")
    for at, span in f.cut:
        if stream[at:at + len(span)] != span or not span.startswith(b"<message"):
            raise Violation("a dropped span is not a message where it was said to be")
        found, ok = _top_level(HEADER + span)
        if ok and len(found) == 1 and found[0][1] == len(HEADER) + len(span):
            _, _, name, attrs, subject = found[0]
            if not _unused(name, attrs, subject, span[:_tag_end(span, 0)]):
                raise Violation("dropped a stanza the bridge uses")
        # Otherwise the parser refuses it: it would cost that stanza only, and nothing is lost.
    for at, size in f.malformed:
        after = stream[at + size:at + size + 10]
        if not framing._STANZA_START.match(after):
            raise Violation("a malformed span does not stop where a stanza begins")
        found, ok = _top_level(HEADER + stream[at:at + size])
        if ok and len(found) == 1 and found[0][1] == size + len(HEADER):
            raise Violation("cut out a whole stanza as malformed")
    for a, b, feed_out in spans:
        if not (feed_out[a:a + 1] == b"<" and feed_out[b - 1:b] == b">"):
            raise Violation("a stanza span is not a tag to a tag")
    # On a stream the parser takes whole: exactly the unused stanzas go.
    stanzas, ok = _top_level(stream)
    if not ok or f.malformed:
        return
    unused = [(s, e) for s, e, name, attrs, subject in stanzas
              if _unused(name, attrs, subject, stream[s:_tag_end(stream, s)])]
    cut = [(at, at + len(span)) for at, span in f.cut]
    if f.active:
        if cut != unused:
            raise Violation(f"dropped {len(cut)} stanzas, not the {len(unused)} unused ones")
    elif cut != unused[:len(cut)]:
        raise Violation("dropped other stanzas than the first unused ones before it gave up")
    # An end tag at the stream's top level (the stream's own end, or one cut short) is where
    # the filter hands the rest to the parser.
    top_end = stream.find(b"<", stanzas[-1][1] if stanzas else len(HEADER))
    if not f.active and not (b"<!" in stream or b"<?" in stream[len(HEADER):] or b"<d><d><d>" in stream
                             or stream[top_end:top_end + 2] == b"</"):
        raise Violation("turned itself off on a stream it follows")
    for a, b, feed_out in spans:
        inner, ok = _top_level(HEADER + feed_out[a:b])
        if not ok or len(inner) != 1:
            raise Violation("a stanza span is not one whole stanza")


TARGET = Target(
    "xmpp-framing", "XMPP stream bytes in reads -> reflection filter vs the XML parser",
    generate, check, bound=0.5, full=1_000_000)
