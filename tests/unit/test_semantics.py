"""What a message means beyond its text: reading XMPP payloads, and how line-based
networks show corrections, retractions and replies."""

import asyncio
from xml.etree import ElementTree as ET

from bridge.core.semantics import Pacer, correction_text, reply_text, retraction_text
from bridge.xmpp import semantics


def stanza(inner: str, body: str | None = "text") -> ET.Element:
    body_xml = f"<body>{body}</body>" if body is not None else ""
    return ET.fromstring(f"<message xmlns='jabber:client' type='groupchat'>{body_xml}{inner}</message>")


def test_plain_messages_are_not_special():
    xml = stanza("<stanza-id xmlns='urn:xmpp:sid:0' id='s' by='r@m'/>"
                 "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='o'/>")
    assert not semantics.special(xml, "text")


def test_every_encryption_is_recognised():
    for payload, name in (
        ("<encrypted xmlns='eu.siacs.conversations.axolotl'/>", "OMEMO"),
        ("<encrypted xmlns='urn:xmpp:omemo:2'/>", "OMEMO"),
        ("<openpgp xmlns='urn:xmpp:openpgp:0'/>", "OpenPGP"),
        ("<x xmlns='jabber:x:encrypted'>abc</x>", "OpenPGP"),
        ("<encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:otr:0'/>", "OTR"),
        ("<encryption xmlns='urn:xmpp:eme:0' namespace='urn:x:new' name='New'/>", "New"),
    ):
        xml = stanza(payload)
        assert semantics.special(xml, "text")
        assert semantics.read(xml, "text").encrypted == name
    assert semantics.read(stanza("", "?OTRv3?"), "?OTRv3?").encrypted == "OTR"


def test_a_reply_loses_the_fallback_quote_it_marks():
    body = "> bob: hello there\nhi bob"
    xml = stanza("<reply xmlns='urn:xmpp:reply:0' to='r@m/bob' id='m1'/>"
                 "<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'>"
                 f"<body start='0' end='{len('> bob: hello there')+1}'/></fallback>", body)
    meaning = semantics.read(xml, body)
    assert (meaning.body, meaning.reply_to, meaning.reply_nick) == ("hi bob", "m1", "bob")


def test_reactions_are_the_whole_set():
    xml = stanza("<reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>👍</reaction>"
                 "<reaction>👍</reaction><reaction>🎉</reaction></reactions>", None)
    meaning = semantics.read(xml, "")
    assert (meaning.reacts_to, meaning.reactions) == ("m1", ("👍", "🎉"))


def test_corrections_read_as_a_marked_line_or_a_diff():
    assert correction_text(None, "hello world") == "* hello world"
    assert correction_text("hello wrld", "hello world") == "* hello world"  # short: whole
    long = "a long enough message that makes a small edit worth a diff rather than all"
    assert correction_text(long, long.replace("small", "tiny")) == "* s/small/tiny/"
    assert correction_text(long, "something else entirely, and long enough to be a diff") \
        .startswith("* something")
    assert retraction_text("what was said before, quite a long line") == \
        '(retracted "what was said before, quite a…")'
    assert reply_text("bob", "yes") == "bob: yes"


async def test_a_burst_of_corrections_shows_the_first_and_the_newest():
    shown = []
    pacer = Pacer(shown.append, quiet=0.2)
    for n in range(10):
        pacer.offer("m1", n)
    pacer.offer("m2", "other")
    assert shown == [0, "other"]
    await asyncio.sleep(0.3)
    assert shown == [0, "other", 9]
