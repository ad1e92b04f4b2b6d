"""Room events as users on real Prosody and InspIRCd see them: kicks both ways, XMPP nick
changes, who set a topic, notices and styling.

Whoever makes the MUC room owns it: when alice joins before the bridge she can kick
(and the bot cannot); when the bridge joins first, its bot is the moderator."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.bridge_harness import (
    ROOM, bridge_ready, config_text, irc_network, running_bridge, silc_network,
)
from tests.integration.clients import wait_until

CHAN = "#room"
NS_ADMIN = "http://jabber.org/protocol/muc#admin"


def link(*endpoints: str) -> str:
    return "  l:\n" + "".join(f"    - {e}\n" for e in endpoints)


@pytest.fixture
def linked(prosody, inspircd, tmp_path) -> str:
    return config_text(prosody, tmp_path, irc_network("net", inspircd),
                       link(f"xmpp: {ROOM}", f"irc: net/{CHAN}"))


def kick(user, nick: str, reason: str) -> None:
    """A moderator's kick (XEP-0045 8.2)."""
    iq = user.client.make_iq_set(ito=ROOM)
    iq.xml.append(_xml(f"<query xmlns='{NS_ADMIN}'><item nick='{nick}' role='none'>"
                       f"<reason>{reason}</reason></item></query>"))
    iq.send()


def _xml(text: str):
    import xml.etree.ElementTree as ET
    return ET.fromstring(text)


async def bot_moderates(bridge) -> None:
    """Wait until the bridge's bot made the room (before alice joins): it is its moderator."""
    room = bridge.router.adapters["xmpp"].rooms[ROOM]
    await wait_until(lambda: room.bot_role == "moderator", 15, "the bot to moderate the room")


async def puppet_of(alice, bob, text: str = "hello") -> None:
    """bob speaks on IRC; alice sees his puppet say it."""
    bob.privmsg(CHAN, text)
    await alice.wait_for_message(ROOM, text, nick=bob.nick)


# 1. Kicks

async def test_a_muc_kick_of_a_puppet_is_told_on_irc_and_keeps_it_out(
        linked, inspircd, xmpp_user, irc_user):
    alice = await xmpp_user("alice")
    await alice.join(ROOM, "alice")  # before the bridge: alice owns the room
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(linked):
        await bridge_ready(alice, [bob], CHAN)
        await puppet_of(alice, bob)
        kick(alice, "bob", "too loud")
        await alice.presences.wait_for(lambda p: p.nick == "bob" and not p.available and 307 in p.codes)
        await bob.wait_for(lambda l: l.command == "NOTICE" and l.target == CHAN and l.nick == "relay"
                           and l.text == "bob was kicked from the MUC by alice: too loud")
        mark = alice.presences.mark()
        bob.privmsg(CHAN, "still here")
        await alice.wait_for_message(ROOM, "<bob> still here", nick="bridge")
        await asyncio.sleep(0.3)
        assert not alice.presences.matching(lambda p: p.nick == "bob" and p.available, after=mark)
        carol = await xmpp_user("carol")  # an XMPP user kicked: told the same way
        await carol.join(ROOM, "carol")
        kick(alice, "carol", "off topic")
        await bob.wait_for(lambda l: l.command == "NOTICE" and l.target == CHAN
                           and l.text == "carol was kicked from the MUC by alice: off topic")
        kicks = [l for l in bob.lines if l.command == "NOTICE" and "was kicked" in l.text]
        assert len(kicks) == 2  # once each


async def test_an_irc_kick_is_a_muc_kick_with_the_reason_where_the_bot_may_kick(
        linked, inspircd, xmpp_user, irc_user):
    op = await irc_user(inspircd, "op")
    await op.join(CHAN)  # first in: channel operator
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(linked) as bridge:
        alice = await xmpp_user("alice")
        await bridge_ready(None, [op], CHAN)
        await bot_moderates(bridge)
        await alice.join(ROOM, "alice")
        await puppet_of(alice, bob)
        mark = op.lines.mark()
        op.send("KICK", CHAN, "bob", "spamming")
        gone = await alice.presences.wait_for(lambda p: p.nick == "bob" and not p.available)
        assert 307 in gone.codes and gone.reason == "kicked by op: spamming"
        await asyncio.sleep(0.5)  # the bridge's own kick is not told back to IRC
        assert not op.lines.matching(lambda l: "was kicked" in l.text, after=mark)


async def test_an_irc_kick_without_muc_rights_is_a_leave_saying_who_kicked(
        linked, inspircd, xmpp_user, irc_user):
    alice = await xmpp_user("alice")
    await alice.join(ROOM, "alice")  # alice owns the room; the bot is a participant
    op = await irc_user(inspircd, "op")
    await op.join(CHAN)
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(linked):
        await bridge_ready(alice, [op], CHAN)
        await puppet_of(alice, bob)
        op.send("KICK", CHAN, "bob", "spamming")
        gone = await alice.presences.wait_for(lambda p: p.nick == "bob" and not p.available)
        assert 307 not in gone.codes and gone.status == "kicked by op: spamming"


# 2. Nick changes

async def test_xmpp_nick_changes_show_on_irc_and_a_flood_of_them_does_not(
        linked, inspircd, xmpp_user, irc_user):
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(linked):
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob], CHAN)
        await alice.change_nick(ROOM, "alicia")
        await bob.wait_for(lambda l: l.command == "NOTICE" and l.target == CHAN
                           and l.text == "alice is now known as alicia")
        for n in range(10):
            await alice.change_nick(ROOM, f"a{n}")
        await asyncio.sleep(1.0)  # the bridge has heard them all by now
        told = [l.text for l in bob.lines if l.command == "NOTICE" and "known as" in l.text]
        assert told == ["alice is now known as alicia", "alicia is now known as a0",
                        "a0 is now known as a1"]


# 3. Who set the topic

async def test_an_irc_topic_comes_from_the_setters_puppet_or_the_bot_naming_them(
        linked, inspircd, xmpp_user, irc_user):
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    carol = await irc_user(inspircd, "carol")
    await carol.join(CHAN)
    bob.send("MODE", CHAN, "-t")  # anyone may set the topic
    async with running_bridge(linked):
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob], CHAN)
        await puppet_of(alice, bob)
        await bob.set_topic(CHAN, "bob's topic")
        by_bob = await alice.messages.wait_for(lambda m: m.subject == "bob's topic")
        assert by_bob.nick == "bob" and by_bob.body is None
        mark = alice.messages.mark()
        await carol.set_topic(CHAN, "carol's topic")  # carol never spoke: no puppet
        by_bot = await alice.messages.wait_for(lambda m: m.subject == "carol's topic", after=mark)
        assert by_bot.nick == "bridge"
        said = [m.body for m in alice.messages.matching(lambda m: m.nick == "bridge", after=mark)]
        assert said == ["carol set the topic in net/#room", None]


@pytest.mark.parametrize("prosody", [{"muc_options": {"muc_room_default_change_subject": False}}],
                         indirect=True)
async def test_a_topic_the_room_refuses_from_the_puppet_comes_from_the_bot_naming_the_setter(
        linked, inspircd, xmpp_user, irc_user):
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(linked) as bridge:
        alice = await xmpp_user("alice")
        await bridge_ready(None, [bob], CHAN)
        await bot_moderates(bridge)  # it may set the subject; bob's puppet may not
        await alice.join(ROOM, "alice")
        await puppet_of(alice, bob)
        mark = alice.messages.mark()
        await bob.set_topic(CHAN, "bob's topic")
        await alice.messages.wait_for(lambda m: m.subject == "bob's topic", after=mark)
        said = [(m.nick, m.body) for m in alice.messages.matching(lambda m: True, after=mark)]
        assert said == [("bridge", "bob set the topic in net/#room"), ("bridge", None)]


async def test_an_xmpp_subject_shows_on_irc_who_set_it(linked, inspircd, xmpp_user, irc_user):
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    bob.send("MODE", CHAN, "-t")  # the relay may set the topic
    async with running_bridge(linked):
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob], CHAN)
        mark = bob.lines.mark()
        alice.set_subject(ROOM, "alice's subject")
        topic = await bob.wait_for(lambda l: l.command == "TOPIC" and l.text == "alice's subject",
                                   after=mark)
        seen = [(l.command, l.nick, l.text) for l in bob.lines.matching(
            lambda l: l.command in ("NOTICE", "TOPIC", "PRIVMSG"), after=mark)]
        assert seen == [("NOTICE", "relay", "alice set the topic in the MUC"),
                        ("TOPIC", "relay", "alice's subject")] and topic.nick == "relay"


# 4. Notices and styling

async def test_irc_notices_are_marked_in_the_muc(linked, inspircd, xmpp_user, irc_user):
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(linked):
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob], CHAN)
        bob.notice(CHAN, "the build is green")
        await alice.wait_for_message(ROOM, "-bob- the build is green", nick="bob")


async def test_xmpp_styling_reaches_irc_as_formatting_codes(linked, inspircd, xmpp_user, irc_user):
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(linked):
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob], CHAN)
        alice.say(ROOM, "*bold* _italic_ ~gone~ `x = 1` but 2 * 3 * 4 and snake_case")
        await bob.wait_for_privmsg(
            CHAN, "<alice> \x02bold\x02 \x1ditalic\x1d \x1egone\x1e \x11x = 1\x11 but 2 * 3 * 4 and snake_case")
        alice.say(ROOM, "> *quoted*\n```\n*code*\n```")
        await bob.wait_for_privmsg(CHAN, "<alice> > *quoted*")
        await bob.wait_for_privmsg(CHAN, "<alice> *code*")


# 5. Operators and voice

async def test_an_irc_op_is_a_moderator_in_the_muc_where_the_bot_may_make_one(
        linked, inspircd, xmpp_user, irc_user):
    op = await irc_user(inspircd, "op")
    await op.join(CHAN)
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(linked) as bridge:
        alice = await xmpp_user("alice")
        await bridge_ready(None, [op], CHAN)
        await bot_moderates(bridge)  # the bot made the room: its owner
        await alice.join(ROOM, "alice")
        await puppet_of(alice, bob)
        mark = alice.presences.mark()
        op.send("MODE", CHAN, "+o", "bob")
        await alice.presences.wait_for(lambda p: p.nick == "bob" and p.role == "moderator", after=mark)
        op.send("MODE", CHAN, "-o", "bob")
        await alice.presences.wait_for(lambda p: p.nick == "bob" and p.role == "participant", after=mark)


async def test_without_the_rights_an_irc_op_shows_in_the_puppets_status(
        linked, inspircd, xmpp_user, irc_user):
    alice = await xmpp_user("alice")
    await alice.join(ROOM, "alice")  # alice owns the room; the bot is a participant
    op = await irc_user(inspircd, "op")
    await op.join(CHAN)
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(linked):
        await bridge_ready(alice, [op], CHAN)
        await puppet_of(alice, bob)
        mark = alice.presences.mark()
        op.send("MODE", CHAN, "+v", "bob")
        shown = await alice.presences.wait_for(lambda p: p.nick == "bob" and p.status, after=mark)
        assert shown.status == "voice in net/#room" and shown.available and shown.role == "participant"
        op.send("MODE", CHAN, "+o", "bob")
        await alice.presences.wait_for(lambda p: p.nick == "bob" and p.status == "op in net/#room",
                                       after=mark)


# The same on SILC

async def test_on_silc_nick_changes_and_topic_setters_are_told_and_notices_marked(
        prosody, xmpp_user, tmp_path):
    from tests.servers.silc.server import SilcTestServer
    from tests.servers.silc.user import ChannelMessage, TestUser
    async with SilcTestServer() as silc:
        networks = silc_network("silcnet", silc, tmp_path)
        text = config_text(prosody, tmp_path, networks, link(f"xmpp: {ROOM}", "silc: silcnet/hackers"))
        async with TestUser("sam", silc.port) as sam:
            await sam.join("hackers")
            alice = await xmpp_user("alice")
            await alice.join(ROOM, "alice")
            async with running_bridge(text):
                await bridge_ready(alice, [], CHAN)
                await sam.wait_for(ChannelMessage, timeout=15, text=lambda t: "end-to-end" in t)
                await alice.change_nick(ROOM, "alicia")
                await sam.wait_for(ChannelMessage, text="alice is now known as alicia")
                alice.set_subject(ROOM, "new subject")
                await sam.wait_for(ChannelMessage, text="alicia set the topic in the MUC")
                await sam.say("hackers", "deploy at noon", notice=True)
                await alice.wait_for_message(ROOM, "-sam- deploy at noon", nick="sam", timeout=10)
