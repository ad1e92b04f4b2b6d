"""Message ids, encrypted payloads, corrections, retractions, replies and reactions, as users
on real Prosody and InspIRCd 3 see them (InspIRCd 3 carries msgid, message-tags and TAGMSG;
what it lacks, draft/message-redaction, is tested against the scripted ircd)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.core.events import Endpoint
from tests.integration.bridge_harness import (
    ROOM, bridge_ready, config_text, irc_network, running_bridge, silc_network,
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
    await asyncio.sleep(0.3)  # the room's stanza-id for the puppet's message comes with its copy
    assert ids.translate("l", IRC, echo.tags["msgid"], XMPP) == puppet.stanza_id
    assert ids.translate("l", IRC, echo.tags["msgid"], XMPP, sent=True) == puppet.id
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


# 4. Retractions

NS_RETRACT = "urn:xmpp:message-retract:1"
RETRACT_FALLBACK = "This person attempted to retract a previous message, but it's unsupported."


def retraction(target: str) -> tuple[str, str, str]:
    return (RETRACT_FALLBACK, f"<retract xmlns='{NS_RETRACT}' id='{target}'/>",
            f"<fallback xmlns='urn:xmpp:fallback:0' for='{NS_RETRACT}'/>")


async def test_a_retraction_is_a_short_notice_on_irc_without_redaction(pair):
    alice, bob, _ = pair
    mine, _ = await said(alice, bob, "oops, wrong room")
    alice.send(ROOM, *retraction(mine.stanza_id))
    notice = await bob.wait_for(lambda l: l.command == "NOTICE" and l.target == CHAN)
    assert notice.text == '<alice> (retracted "oops, wrong room")'
    await asyncio.sleep(0.3)
    assert not [l for l in bob.lines if "attempted to retract" in l.raw]


@pytest.fixture
async def scripted(prosody, xmpp_user, tmp_path):
    """alice in the MUC and the bridge's relay on the scripted ircd, which offers what
    InspIRCd 3 lacks: draft/message-redaction (with message-tags and echo-message)."""
    from tests.servers.scripted_ircd import ScriptedIrcd
    ircd = await ScriptedIrcd(caps=("message-tags", "echo-message", "draft/message-redaction",
                                    "server-time")).start()
    text = config_text(prosody, tmp_path, irc_network("net", ircd),
                       link(f"xmpp: {ROOM}", f"irc: net/{CHAN}"))
    try:
        async with running_bridge(text) as bridge:
            alice = await xmpp_user("alice")
            await alice.join(ROOM, "alice")
            await bridge_ready(alice, [], CHAN)
            relay = await ircd.client()
            for _ in range(100):
                if CHAN in relay.channels:
                    break
                await asyncio.sleep(0.05)
            yield alice, relay, bridge
    finally:
        await ircd.stop()


async def test_retractions_are_redact_both_ways_where_the_server_offers_it(scripted):
    alice, relay, _ = scripted
    alice.say(ROOM, "oops")
    mine = await alice.wait_for_message(ROOM, "oops", nick="alice")
    await relay.expect(f"PRIVMSG {CHAN} :<alice> oops")  # echoed back as msgid scripted1
    await asyncio.sleep(0.2)
    alice.send(ROOM, *retraction(mine.stanza_id))
    assert await relay.expect("REDACT") == f"REDACT {CHAN} scripted1"
    # and from IRC: bob takes back his line
    relay.send(f"@msgid=b1 :bob!b@127.0.0.1 PRIVMSG {CHAN} :mistake")
    said_ = await alice.wait_for_message(ROOM, "mistake", nick="bob")
    mark = alice.messages.mark()
    relay.send(f":bob!b@127.0.0.1 REDACT {CHAN} b1 :typo")
    retract = await alice.messages.wait_for(
        lambda m: m.nick == "bob" and m.child(NS_RETRACT, "retract") is not None, after=mark)
    assert retract.child(NS_RETRACT, "retract").get("id") in (said_.stanza_id, said_.id)


async def test_a_redact_the_server_refuses_becomes_the_notice_said_where_redact_is_missing(scripted):
    alice, relay, _ = scripted
    alice.say(ROOM, "too late")
    mine = await alice.wait_for_message(ROOM, "too late", nick="alice")
    await relay.expect(f"PRIVMSG {CHAN} :<alice> too late")
    await asyncio.sleep(0.2)
    alice.send(ROOM, *retraction(mine.stanza_id))
    msgid = (await relay.expect("REDACT")).split()[2]
    relay.send(f":irc.test FAIL REDACT REDACT_WINDOW_EXPIRED {CHAN} {msgid} 60 "
               ":You can no longer edit this message")
    assert await relay.expect("NOTICE") == f'NOTICE {CHAN} :<alice> (retracted "too late")'


# 5. Replies

NS_REPLY = "urn:xmpp:reply:0"


async def test_replies_both_ways_with_the_quote_stripped_and_draft_reply(pair):
    alice, bob, _ = pair
    bob.privmsg(CHAN, "who is there?")
    echo = await bob.wait_for_privmsg(CHAN, "who is there?", sender="bob")
    asked = await alice.wait_for_message(ROOM, "who is there?", nick="bob")
    quote = "> bob: who is there?\n"
    await asyncio.sleep(0.3)  # the room's stanza-id of bob's line reaches the bridge
    alice.send(ROOM, quote + "me!",
               f"<reply xmlns='{NS_REPLY}' to='{ROOM}/bob' id='{asked.stanza_id}'/>",
               f"<fallback xmlns='urn:xmpp:fallback:0' for='{NS_REPLY}'>"
               f"<body start='0' end='{len(quote)}'/></fallback>")
    line = await bob.wait_for_privmsg(CHAN, "<alice> bob: me!", sender="relay")
    assert line.tags.get("+draft/reply") == echo.tags["msgid"]
    # and from IRC: bob answers alice's message with +draft/reply
    mine, relayed = await said(alice, bob, "is it you?")
    await asyncio.sleep(0.3)  # the relay's own msgid comes with its echo
    mark = alice.messages.mark()
    bob.send_raw(f"@+draft/reply={relayed.tags['msgid']} PRIVMSG {CHAN} :yes it is")
    answer = await alice.wait_for_message(ROOM, nick="bob", after=mark)
    reply = answer.child(NS_REPLY, "reply")
    assert reply is not None and reply.get("id") == mine.stanza_id
    assert reply.get("to") == f"{ROOM}/alice"
    assert answer.body == "> alice: is it you?\nyes it is"
    fallback = answer.child("urn:xmpp:fallback:0", "fallback")
    assert fallback.get("for") == NS_REPLY


# 6. Reactions

NS_REACTIONS = "urn:xmpp:reactions:0"


def reactions(target: str, *emojis: str) -> str:
    inner = "".join(f"<reaction>{e}</reaction>" for e in emojis)
    return f"<reactions xmlns='{NS_REACTIONS}' id='{target}'>{inner}</reactions>"


async def test_reactions_are_tagmsg_both_ways_where_message_tags_are_carried(pair):
    alice, bob, _ = pair
    bob.privmsg(CHAN, "cake is ready")
    echo = await bob.wait_for_privmsg(CHAN, "cake is ready", sender="bob")
    cake = await alice.wait_for_message(ROOM, "cake is ready", nick="bob")
    await asyncio.sleep(0.3)
    alice.send(ROOM, None, reactions(cake.stanza_id, "🎉"))
    tag = await bob.wait_for(lambda l: l.command == "TAGMSG" and l.nick == "relay")
    assert tag.tags == {"+draft/react": "🎉", "+draft/reply": echo.tags["msgid"],
                        **{k: v for k, v in tag.tags.items() if k in ("msgid", "time")}}
    alice.send(ROOM, None, reactions(cake.stanza_id))  # all taken back
    untag = await bob.wait_for(lambda l: l.command == "TAGMSG" and "+draft/unreact" in l.tags)
    assert untag.tags["+draft/unreact"] == "🎉"
    # and from IRC: bob reacts to alice's message
    mine, relayed = await said(alice, bob, "want some?")
    await asyncio.sleep(0.3)
    mark = alice.messages.mark()
    bob.send_raw(f"@+draft/react=👍;+draft/reply={relayed.tags['msgid']} TAGMSG {CHAN}")
    got = await alice.messages.wait_for(
        lambda m: m.nick == "bob" and m.child(NS_REACTIONS, "reactions") is not None, after=mark)
    el = got.child(NS_REACTIONS, "reactions")
    assert el.get("id") == mine.stanza_id
    assert [r.text for r in el] == ["👍"]


async def test_reactions_without_message_tags_share_one_line(prosody, ngircd, xmpp_user, irc_user,
                                                              tmp_path):
    text = config_text(prosody, tmp_path, irc_network("net", ngircd),
                       link(f"xmpp: {ROOM}", f"irc: net/{CHAN}"))
    cat = await irc_user(ngircd, "cat")
    await cat.join(CHAN)
    async with running_bridge(text):
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        dan = await xmpp_user("dan")
        await dan.join(ROOM, "dan")
        await bridge_ready(alice, [cat], CHAN)
        alice.say(ROOM, "lunch at noon?")
        mine = await alice.wait_for_message(ROOM, "lunch at noon?", nick="alice")
        await cat.wait_for_privmsg(CHAN, "<alice> lunch at noon?")
        target = mine.stanza_id or mine.id
        alice.send(ROOM, None, reactions(target, "👍"))
        dan.send(ROOM, None, reactions(target, "👍", "🍕"))
        line = await cat.wait_for(lambda l: l.command == "NOTICE" and "reactions" in l.text, timeout=10)
        items = line.text.removeprefix("reactions: ").split("; ")  # alice's and dan's, any order
        assert sorted(items) == sorted(['alice 👍 to "lunch at noon?"', 'dan 👍 to "lunch at noon?"',
                                        'dan 🍕 to "lunch at noon?"'])
        await asyncio.sleep(0.5)
        assert len([l for l in cat.lines if l.command == "NOTICE" and "reactions" in l.text]) == 1


# 7. The same on SILC, which has lines of text only; and on a link of all three networks

async def test_on_silc_corrections_retractions_replies_and_reactions_read_as_text(
        prosody, inspircd, xmpp_user, irc_user, tmp_path):
    from tests.servers.silc.server import SilcTestServer
    from tests.servers.silc.user import ChannelMessage, TestUser
    async with SilcTestServer() as silc:
        networks = irc_network("net", inspircd) + silc_network("silcnet", silc, tmp_path)
        text = config_text(prosody, tmp_path, networks,
                           link(f"xmpp: {ROOM}", f"irc: net/{CHAN}", "silc: silcnet/hackers"))
        bob = await irc_user(inspircd, "bob", caps=TAGS)
        await bob.join(CHAN)
        async with TestUser("sam", silc.port) as sam:
            await sam.join("hackers")
            async with running_bridge(text):
                alice = await xmpp_user("alice")
                await alice.join(ROOM, "alice")
                await bridge_ready(alice, [bob], CHAN)
                await sam.wait_for(ChannelMessage, timeout=15, text=lambda t: "end-to-end" in t)

                def sam_sees(line: str):
                    return sam.wait_for(ChannelMessage, timeout=10, text=line)

                mine, _ = await said(alice, bob, "the build is gren")
                await sam_sees("<alice> the build is gren")
                alice.send(ROOM, "the build is green", f"<replace xmlns='{NS_CORRECT}' id='{mine.id}'/>")
                await sam_sees("<alice> * the build is green")
                await asyncio.sleep(0.3)
                alice.send(ROOM, None, reactions(mine.stanza_id, "👍"))
                await sam_sees('reactions: alice 👍 to "the build is green"')
                alice.send(ROOM, *retraction(mine.stanza_id))
                await sam_sees('<alice> (retracted "the build is green")')
                # sam's line has no id on SILC: the bridge gives it one, so a reply to it from
                # XMPP finds its copy on IRC
                await sam.say("hackers", "who broke it?")
                asked = await alice.wait_for_message(ROOM, "who broke it?", nick="sam")
                echo = await bob.wait_for_privmsg(CHAN, "<sam> who broke it?", sender="relay")
                await asyncio.sleep(0.3)
                alice.send(ROOM, "not me", f"<reply xmlns='{NS_REPLY}' to='{ROOM}/sam' id='{asked.stanza_id}'/>")
                await sam_sees("<alice> sam: not me")
                line = await bob.wait_for_privmsg(CHAN, "<alice> sam: not me", sender="relay")
                assert line.tags.get("+draft/reply") == echo.tags["msgid"]
                assert not [m for m in sam.events if isinstance(m, ChannelMessage)
                            and "attempted to retract" in m.text]
