"""Message ids, encrypted payloads, corrections, retractions, replies and reactions, as users
on real Prosody and InspIRCd 3 see them (InspIRCd 3 carries msgid, message-tags and TAGMSG;
what it lacks, draft/message-redaction, is tested against the scripted ircd)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.core.events import Endpoint
from tests.integration.bridge_harness import (
    ROOM, bridge_ready, config_text, irc_network, running_bridge,
)

CHAN = "#room"
XMPP, IRC = Endpoint("xmpp", ROOM), Endpoint("net", CHAN)
NS_CORRECT = "urn:xmpp:message-correct:0"
TAGS = ("message-tags", "echo-message")  # bob sees msgids, his own lines' too
#: With MAM the room gives each message a stanza-id (XEP-0359), as most rooms do.
pytestmark = pytest.mark.parametrize("prosody", [{"muc_mam": True}], indirect=True)


def link(*endpoints: str) -> str:
    return "  l:\n" + "".join(f"    - {e}\n" for e in endpoints)


@pytest.fixture
async def pair(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    """alice in the MUC, bob on IRC with message-tags, the bridge linking them."""
    text = config_text(prosody, tmp_path, irc_network("net", inspircd),
                       link(f"xmpp: {ROOM}", f"irc: net/{CHAN}"))
    bob = await irc_user(inspircd, "bob", caps=TAGS)
    await bob.join(CHAN)
    async with running_bridge(text) as bridge:
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob], CHAN)
        yield alice, bob, bridge


async def said(alice, bob, text: str):
    """alice says `text`; returns her copy and the line bob sees."""
    alice.say(ROOM, text)
    mine = await alice.wait_for_message(ROOM, text, nick="alice")
    line = await bob.wait_for_privmsg(CHAN, f"<alice> {text}", sender="relay")
    return mine, line


# 1. Message ids

async def test_every_relayed_message_is_known_by_its_id_on_each_side(pair):
    alice, bob, bridge = pair
    mine, line = await said(alice, bob, "from xmpp")
    assert mine.stanza_id and line.tags.get("msgid")
    bob.privmsg(CHAN, "from irc")
    echo = await bob.wait_for_privmsg(CHAN, "from irc", sender="bob")
    puppet = await alice.wait_for_message(ROOM, "from irc", nick="bob")
    ids = bridge.ids
    # the relay's line is learnt from its echo: wait for it
    for _ in range(50):
        if ids.translate("l", XMPP, mine.stanza_id, IRC):
            break
        await asyncio.sleep(0.05)
    assert ids.translate("l", XMPP, mine.stanza_id, IRC) == line.tags["msgid"]
    assert ids.translate("l", XMPP, mine.id, IRC) == line.tags["msgid"]  # the client's id too
    assert ids.translate("l", IRC, line.tags["msgid"], XMPP) == mine.stanza_id
    assert ids.translate("l", IRC, echo.tags["msgid"], XMPP) == puppet.id
    bridge.store.flush()  # and the store has them, for after a restart
    assert bridge.store.find_origin("l", str(XMPP), puppet.id) is not None


# 2. Encrypted payloads

ENCRYPTED = {
    "omemo": ("I sent you an OMEMO encrypted message but your client doesn't seem to support that.",
              "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><iv>AAAA</iv>"
              "</header><payload>c2VjcmV0</payload></encrypted>", "OMEMO"),
    "omemo2": ("This message is encrypted with OMEMO 2.",
               "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/><payload>c2VjcmV0</payload>"
               "</encrypted>", "OMEMO"),
    "ox": ("This message is encrypted with OpenPGP.",
           "<openpgp xmlns='urn:xmpp:openpgp:0'>c2lnbmNyeXB0</openpgp>", "OpenPGP"),
    "legacy-pgp": ("This message is encrypted.",
                   "<x xmlns='jabber:x:encrypted'>hQEMA8ZX1lfMKI</x>", "OpenPGP"),
    "otr": ("?OTR:AAMDJ+MVmSfjFZcAAAAAAQAAAAIAAADAVoV88L+aKOU5X5KOmj", None, "OTR"),
    "eme": ("This message is encrypted with Foo.",
            "<encryption xmlns='urn:xmpp:eme:0' namespace='urn:example:foo' name='Foo'/>", "Foo"),
}


async def test_encrypted_messages_are_never_relayed_and_both_sides_are_told(
        prosody, inspircd, xmpp_user, irc_user, tmp_path):
    text = config_text(prosody, tmp_path, irc_network("net", inspircd),
                       link(f"xmpp: {ROOM}", f"irc: net/{CHAN}"))
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(text):
        senders = {}
        for kind in ENCRYPTED:
            senders[kind] = await xmpp_user(kind)
            await senders[kind].join(ROOM, kind)
        await bridge_ready(senders["omemo"], [bob], CHAN)
        for kind, (body, payload, name) in ENCRYPTED.items():
            senders[kind].send(ROOM, body, *([payload] if payload else []))
            told = await senders[kind].chats.wait_for(lambda m: m.body and "not relayed" in m.body)
            assert told.room == ROOM and told.nick == "bridge"
            assert "IRC and SILC" in told.body and name in told.body
            await bob.wait_for(lambda l: l.command == "NOTICE" and kind in l.text
                               and "encrypted" in l.text and name in l.text)
        # a second one soon after from the same person: not told again
        senders["omemo"].send(ROOM, ENCRYPTED["omemo"][0], ENCRYPTED["omemo"][1])
        senders["omemo"].say(ROOM, "plain again")
        await bob.wait_for_privmsg(CHAN, "<omemo> plain again")
        seen = [l.text for l in bob.lines if l.command in ("PRIVMSG", "NOTICE") and l.target == CHAN]
        assert seen == [f"muc-bridge: an encrypted message ({name}) from {kind} could not be relayed"
                        for kind, (_, _, name) in ENCRYPTED.items()] + ["<omemo> plain again"]


# 3. Corrections

async def test_a_correction_reaches_irc_marked_and_a_small_edit_as_a_diff(pair):
    alice, bob, _ = pair
    mine, _ = await said(alice, bob, "hello wrld")
    alice.send(ROOM, "hello world", f"<replace xmlns='{NS_CORRECT}' id='{mine.id}'/>")
    await bob.wait_for_privmsg(CHAN, "<alice> * hello world", sender="relay")
    long = "this is a rather long message with a single typo in the middle of it, see"
    mine, _ = await said(alice, bob, long)
    alice.send(ROOM, long.replace("typo", "mistake"), f"<replace xmlns='{NS_CORRECT}' id='{mine.id}'/>")
    await bob.wait_for_privmsg(CHAN, "<alice> * s/typo/mistake/", sender="relay")


async def test_a_burst_of_corrections_shows_the_first_and_the_last_only(pair):
    alice, bob, _ = pair
    mine, _ = await said(alice, bob, "draft 0")
    mark = bob.lines.mark()
    for n in range(1, 8):
        alice.send(ROOM, f"draft {n}", f"<replace xmlns='{NS_CORRECT}' id='{mine.id}'/>")
    await bob.wait_for_privmsg(CHAN, "<alice> * draft 7", sender="relay", timeout=10, after=mark)
    await asyncio.sleep(0.5)
    assert [l.text for l in bob.privmsgs(CHAN, after=mark)] == ["<alice> * draft 1", "<alice> * draft 7"]


async def test_irc_s_slash_corrects_the_puppets_own_message_in_the_muc(pair):
    alice, bob, _ = pair
    bob.privmsg(CHAN, "I like tea very much")
    first = await alice.wait_for_message(ROOM, "I like tea very much", nick="bob")
    mark = alice.messages.mark()
    bob.privmsg(CHAN, "s/tea/coffee/")
    fixed = await alice.wait_for_message(ROOM, "I like coffee very much", nick="bob", after=mark)
    replace = fixed.child(NS_CORRECT, "replace")
    assert replace is not None and replace.get("id") == first.id
    # again: still the first message that is corrected (XEP-0308 3)
    bob.privmsg(CHAN, "s/very much/a lot/")
    again = await alice.wait_for_message(ROOM, "I like coffee a lot", nick="bob", after=mark)
    assert again.child(NS_CORRECT, "replace").get("id") == first.id
    assert not alice.messages.matching(lambda m: m.body and m.body.startswith("s/"), after=mark)
