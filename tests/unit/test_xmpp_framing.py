"""The reflection filter: whatever the stream holds and however it is cut into reads,
the parser gets exactly the stanzas it would have got, less the puppets' copies and
the echoes of our own messages."""

from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.xmpp.framing import ReflectionFilter
from bridge.xmpp.outgoing import Outgoing

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
          b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='bridge.localhost'>")

texts = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
                max_size=12)
QUOTES = st.sampled_from(["'", '"'])
jids = st.sampled_from(["bridge.localhost", "alice%irc@bridge.localhost/bridge",
                        "a&b@bridge.localhost/x", "room@muc.localhost/bob",
                        "#chan%irc@bridge.localhost"])  # a portal room: users write to it
BOT = "r@muc.localhost/bridge"  # the occupant that sent our messages
OURS = Outgoing()
for msg_id in ("mb1", "mb'2"):
    OURS.add(msg_id, "r@muc.localhost", BOT, "")
ids = st.sampled_from(["mb1", "mb'2", "mb3", "x&y", ""])
senders = st.sampled_from([BOT, "r@muc.localhost/mallory"])


def quoted(value: str, quote: str) -> str:
    if quote == '"':
        return quoteattr(value)
    return "'" + escape(value, {"'": "&apos;", '"': "&quot;"}) + "'"


@st.composite
def children(draw, depth=0):
    """Child elements: text with '>' and quotes, CDATA with '<' and tags, empty elements,
    nesting, forwarded stanzas."""
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["text", "cdata", "empty", "subject", "forwarded", "nested"]
                                    if depth < 2 else ["text", "cdata", "empty"]))
        if kind == "forwarded":  # a message inside a stanza (XEP-0297), even inside a message:
            # in jabber:client, declared (the stream's namespace is another)
            parts.append("<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' "
                         f"type='groupchat' to='b%irc@bridge.localhost/bridge'>{draw(children(depth + 1))}"
                         "</message><iq xmlns='jabber:client'/></forwarded>")
        elif kind == "subject":
            parts.append(f"<subject>{escape(draw(texts))}</subject>")
        elif kind == "text":
            parts.append(escape(draw(texts)))
        elif kind == "cdata":
            body = draw(texts).replace("]]>", "")
            tags = draw(st.sampled_from(["<a>", "</message>", "<message>", "</iq><presence "]))
            parts.append(f"<![CDATA[{body}{tags}]]>")
        elif kind == "empty":
            value = quoted(draw(texts), draw(QUOTES))
            parts.append(f"<x xmlns='urn:t' v={value}/>")
        else:
            parts.append(f"<body>{draw(children(depth + 1))}</body>")
    return "".join(parts)


@st.composite
def stanzas(draw):
    name = draw(st.sampled_from(["message", "presence", "iq", "messages"]))
    kind = draw(st.sampled_from(["groupchat", "chat", "error", "result"]))
    to = draw(jids)
    quote = draw(QUOTES)
    extra = f" data={quoted(draw(texts), quote)}" if draw(st.booleans()) else ""
    msg_id = draw(ids)
    sender = draw(senders)
    head = (f"<{name}{extra} type={quoted(kind, quote)}  to = {quoted(to, quote)} "
            f"id={quoted(msg_id, quote)} from={quoted(sender, quote)}")
    inner = draw(children())
    xml = f"{head}/>" if not inner and draw(st.booleans()) else f"{head}>{inner}</{name}>"
    plain = "&" not in quoted(to, quote) + quoted(msg_id, quote)
    unused = name == "message" and kind == "groupchat" and plain and (
        ("@" in to and "/" in to) or (msg_id in ("mb1", "mb'2") and sender == BOT and "<subject>" not in inner))
    return xml.encode(), unused


def parsed(data: bytes) -> list[bytes]:
    """Top-level stanzas as the stream parser sees them."""
    parser = ET.XMLPullParser(events=("start", "end"))
    parser.feed(data)
    depth, out = 0, []
    for event, element in parser.read_events():
        depth += 1 if event == "start" else -1
        if event == "end" and depth == 1:
            out.append(element)
    for element in out:
        element.tail = None  # white space between stanzas is not part of them
    return [ET.tostring(element) for element in out]


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=300)
@given(st.lists(stanzas(), max_size=8), st.lists(st.integers(0, 10_000), max_size=12),
       st.sampled_from([b"", b" ", b"\n  "]))
def test_the_parser_gets_every_stanza_but_copies_and_echoes_however_the_reads_fall(
        items, points, gap):
    stream = HEADER + b"".join(gap + xml for xml, _ in items)
    reflections = ReflectionFilter(OURS)
    outputs = []
    for chunk in cut(stream, points):
        outputs.append(reflections.feed(chunk))
        for a, b in reflections.stanzas:  # each span is exactly one whole stanza
            root = ET.fromstring(b"<r xmlns='jabber:component:accept'>" + outputs[-1][a:b] + b"</r>")
            assert len(root) == 1 and outputs[-1][a:b].endswith(b">")
    passed = b"".join(outputs)
    # CDATA turns the filter off: then only the copies it met before are gone.
    if b"<![CDATA[" not in stream:
        assert reflections.active and reflections.dropped == sum(r for _, r in items)
    kept, dropped = [], reflections.dropped
    for xml, reflected in items:
        if reflected and dropped:
            dropped -= 1
        else:
            kept.append(xml)
    assert parsed(passed) == parsed(HEADER + b"".join(kept))


def test_a_comment_turns_it_off_and_loses_nothing():
    copy = b"<message type='groupchat' to='a%irc@bridge.localhost/bridge'><body>x</body></message>"
    stream = HEADER + copy + b"<message to='bridge.localhost'><!-- hm --><body>y</body></message>" + copy
    reflections = ReflectionFilter()
    passed = b"".join(reflections.feed(stream[i:i + 7]) for i in range(0, len(stream), 7))
    assert not reflections.active and reflections.dropped == 1
    assert parsed(passed) == parsed(HEADER + stream[len(HEADER) + len(copy):])


def test_a_stanza_too_long_to_hold_goes_to_the_parser_as_it_comes():
    reflections = ReflectionFilter(limit=100)
    body = b"<message type='groupchat' to='a@b/c'><body>" + b"x" * 300
    passed = reflections.feed(HEADER) + reflections.feed(body)
    assert not reflections.active and passed == HEADER + body


def test_the_end_of_the_stream_passes():
    reflections = ReflectionFilter()
    assert reflections.feed(HEADER + b"</stream:stream>") == HEADER + b"</stream:stream>"


def room_message(msg_id, child, nick="bob"):
    return (f"<message type='groupchat' to='bridge.localhost' from='r@muc.localhost/{nick}' "
            f"id='{msg_id}'>{child}</message>").encode()


def test_the_echo_of_our_own_message_is_dropped_but_not_a_subject_nor_a_stranger():
    ours = Outgoing(memory=2)
    for msg_id in ("mb5", "mb6", "mb7", "mb8", "mb9", "mbA"):
        ours.add(msg_id, "r@muc.localhost", "r@muc.localhost/bob", "")
    for msg_id in ("mb5", "mb6", "mb7"):  # confirmed long ago: mb5 is forgotten (memory 2)
        ours.echo(msg_id, "r@muc.localhost/bob")
    echo, late = room_message("mb8", "<body>hi</body>"), room_message("mb7", "<body>hi</body>")
    subject = room_message("mb9", "<subject>our topic</subject>")  # the room's subject: it ends a join
    prefixed = room_message("mbA", "<c:subject xmlns:c='jabber:component:accept'>t</c:subject>")
    stranger, forgotten = room_message("x1", "<body>hi</body>"), room_message("mb5", "<body>old</body>")
    reflections = ReflectionFilter(ours)
    passed = reflections.feed(HEADER + echo + late + subject + prefixed + stranger + forgotten)
    assert reflections.dropped == 2
    assert parsed(passed) == parsed(HEADER + subject + prefixed + stranger + forgotten)
    assert "mb8" not in ours.pending and "mb9" not in ours.pending  # their copies confirm them


def test_an_occupant_reusing_one_of_our_ids_is_not_taken_for_our_echo():
    ours = Outgoing()
    ours.add("k7", "r@muc.localhost", "r@muc.localhost/bridge", "")
    reuse = room_message("k7", "<body>mallory's own words</body>", nick="mallory")
    reflections = ReflectionFilter(ours)
    assert parsed(reflections.feed(HEADER + reuse)) == parsed(HEADER + reuse)
    assert "k7" in ours.pending  # still waiting for its real copy


def test_cdata_or_a_forwarded_message_inside_a_stanza_never_cuts_it_short():
    copy = b"<message type='groupchat' to='a%irc@bridge.localhost/bridge'><body>x</body></message>"
    cdata = b"<message type='groupchat' to='a%irc@bridge.localhost/bridge'><body><![CDATA[</message>]]></body></message>"
    forwarded = (b"<message to='bridge.localhost'><forwarded xmlns='urn:xmpp:forward:0'>"
                 + copy.replace(b"<message ", b"<message xmlns='jabber:client' ") + b"</forwarded></message>")
    reflections = ReflectionFilter()
    passed = reflections.feed(HEADER + forwarded + copy)
    assert reflections.active and reflections.dropped == 1  # the copy, not the forwarded one
    assert parsed(passed) == parsed(HEADER + forwarded)
    passed += reflections.feed(cdata + copy)  # not followed: off, and nothing lost
    assert not reflections.active and reflections.dropped == 1
    assert parsed(passed) == parsed(HEADER + forwarded + cdata + copy)


def test_a_stanza_that_never_ends_or_bytes_that_are_none_are_cut_out_and_the_rest_kept():
    good = b"<message type='chat' to='bridge.localhost' id='g'><body>ok</body></message>"
    unclosed = b"<message type='chat' to='bridge.localhost' id='u'><body>never closed"
    forwarded = (b"<message to='bridge.localhost'><forwarded xmlns='urn:xmpp:forward:0'>"
                 b"<message xmlns='jabber:client' to='x@y'><body>in</body></message></forwarded></message>")
    reflections = ReflectionFilter()
    passed = reflections.feed(HEADER + good + unclosed)  # for now, it may yet end
    assert reflections.malformed == []
    passed += reflections.feed(forwarded + b"<<garbage>>" + good)
    assert reflections.active
    assert [size for _, size in reflections.malformed] == [len(unclosed), len(b"<<garbage>>")]
    assert reflections.malformed[0][0] == len(HEADER + good)  # stream offsets, for the log
    assert parsed(passed) == parsed(HEADER + good + forwarded + good)


def test_the_cut_copy_of_our_message_tells_the_rooms_stanza_id():
    ours, learned = Outgoing(), []
    ours.on_stanza_id = lambda *args: learned.append(args)
    ours.add("k8", "r@muc.localhost", "r@muc.localhost/bob", "")
    ours.add("k9", "r@muc.localhost", "r@muc.localhost/bob", "")
    sid = "<stanza-id xmlns='urn:xmpp:sid:0' by='r@muc.localhost' id='room-id-1'/>"
    forged = "<stanza-id xmlns='urn:xmpp:sid:0' by='elsewhere' id='forged'/>"
    reflections = ReflectionFilter(ours)
    reflections.feed(HEADER + room_message("k8", "<body>hi</body>" + forged + sid)
                     + room_message("k9", "<body>hi</body>" + forged))
    assert reflections.dropped == 2
    assert learned == [("k8", "r@muc.localhost/bob", "room-id-1")]


def fed(stream: bytes, size: int) -> tuple[ReflectionFilter, bytes]:
    reflections = ReflectionFilter(OURS)
    return reflections, b"".join(reflections.feed(stream[i:i + size]) for i in range(0, len(stream), size))


def test_a_stanza_name_in_another_namespace_is_no_new_stanza_however_the_reads_fall():
    payload = (b"<message type='chat' to='bridge.localhost'><event xmlns='urn:x'><items><iq/>"
               + b"<b>y</b>" * 300 + b"<presence a='1'>x</presence></items></event></message>")
    for size in (len(payload), 7, 64):
        reflections, passed = fed(HEADER + payload, size)
        assert reflections.active and reflections.malformed == [] and passed == HEADER + payload


def test_a_stanza_in_the_stream_namespace_inside_another_is_cut_the_same_in_one_read_or_many():
    broken = b"<message type='chat' to='bridge.localhost'><body>cut short"
    good = b"<message type='chat' to='bridge.localhost'><body>ok</body></message>"
    results = {(tuple(r.malformed), passed) for r, passed in (fed(HEADER + broken + good, n) for n in (1000, 5, 17))}
    assert results == {(((len(HEADER), len(broken)),), HEADER + good)}


def test_a_large_stanza_in_small_reads_passes_whole_once_it_ends():
    stanza = b"<message to='bridge.localhost'><body>" + b"<a x='>'/>" * 20000 + b"</body></message>"
    reflections, passed = fed(HEADER + stanza, 512)
    assert passed == HEADER + stanza and reflections.active
    assert reflections.stanzas == [(0, len(stanza))]  # of the last read's output: the whole stanza
