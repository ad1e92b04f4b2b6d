"""The whole bridge between real Prosody and real InspIRCd/ngIRCd: what users see."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from tests.integration.bridge_harness import (
    ROOM, bridge_ready, config_text, irc_network, running_bridge,
)

CHAN = "#room"


def link(*endpoints: str) -> str:
    return "  l:\n" + "".join(f"    - {e}\n" for e in endpoints)


@pytest.fixture
async def pair(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    """alice in the MUC, bob on IRC, the bridge linking them."""
    text = config_text(prosody, tmp_path, irc_network("net", inspircd),
                       link(f"xmpp: {ROOM}", f"irc: net/{CHAN}"),
                       component="  ping_interval: 0.5\n  puppet_idle: 2\n")
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(text) as bridge:
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob], CHAN)
        yield alice, bob, bridge


async def test_messages_both_ways_with_names_actions_and_formatting(pair):
    alice, bob = pair[:2]
    alice.say(ROOM, "hello irc")
    await bob.wait_for_privmsg(CHAN, "<alice> hello irc", sender="relay")
    alice.me(ROOM, "waves")
    await bob.wait_for_privmsg(CHAN, "* alice waves", sender="relay")
    bob.privmsg(CHAN, "hello \x02xmpp\x02 \x0304red\x03")
    await alice.wait_for_message(ROOM, "hello *xmpp* red", nick="bob")
    bob.action(CHAN, "dances")
    await alice.wait_for_message(ROOM, "/me dances", nick="bob")


async def test_the_puppets_copies_and_our_echoes_are_cut_before_parsing(pair):
    alice, bob, bridge = pair
    for n in range(3):
        bob.privmsg(CHAN, f"line {n}")
    await alice.wait_for_message(ROOM, "line 2", nick="bob")
    alice.say(ROOM, "and one from xmpp")
    await bob.wait_for_privmsg(CHAN, "<alice> and one from xmpp", sender="relay")
    reflections = bridge.adapters[0].component.stream.reflections
    # bob's puppet got all four, and the bot its three as echoes
    assert reflections.active and reflections.dropped >= 7


async def test_crlf_in_xmpp_text_cannot_inject_irc_commands(pair):
    alice, bob = pair[:2]
    alice.say(ROOM, "evil\r\nQUIT :x\r\nPRIVMSG #room :forged")
    await bob.wait_for_privmsg(CHAN, "<alice> QUIT :x", sender="relay")
    await bob.wait_for_privmsg(CHAN, "<alice> PRIVMSG #room :forged", sender="relay")
    alice.say(ROOM, "still here?")
    await bob.wait_for_privmsg(CHAN, "<alice> still here?", sender="relay")
    assert not bob.lines.matching(lambda l: l.command == "QUIT" and l.nick == "relay")


async def test_long_message_split_within_512_bytes_and_multiline_cap(pair):
    alice, bob = pair[:2]
    word = "wörd "  # 6 bytes in UTF-8
    alice.say(ROOM, (word * 300).strip())
    alice.say(ROOM, "\n".join(f"line {i}" for i in range(1, 21)))
    await bob.wait_for(lambda l: l.command == "PRIVMSG" and "more lines" in l.text)
    long_lines = [l for l in bob.privmsgs(CHAN) if "wörd" in l.text]
    assert "".join(l.text.removeprefix("<alice> ") for l in long_lines).replace(" ", "") == \
        "wörd" * 300
    assert all(len(l.raw.encode()) + 2 <= 512 for l in long_lines)
    multi = [l.text for l in bob.privmsgs(CHAN) if "wörd" not in l.text]
    assert multi == [f"<alice> line {i}" for i in range(1, 5)] + ["<alice> [… 16 more lines cut]"]


async def test_irc_user_is_a_puppet_occupant_that_follows_nick_part_and_idle(pair):
    alice, bob = pair[:2]
    bob.privmsg(CHAN, "hi")
    await alice.wait_for_message(ROOM, "hi", nick="bob")
    assert "bob" in alice.occupants(ROOM)
    alice.client.register_plugin("xep_0030")
    info = await alice.client.plugin["xep_0030"].get_info(jid="bob%net@bridge.localhost", timeout=5)
    assert info["disco_info"]["identities"]
    await bob.change_nick("bobby")
    await alice.presences.wait_for(lambda p: p.nick == "bob" and 303 in p.codes and p.new_nick == "bobby")
    await bob.part(CHAN, "later")
    await alice.presences.wait_for(lambda p: p.nick == "bobby" and not p.available)
    # idle: a speaker who goes quiet leaves after puppet_idle (2 s here)
    await bob.join(CHAN)
    bob.privmsg(CHAN, "back")
    await alice.wait_for_message(ROOM, "back", nick="bobby")
    await alice.presences.wait_for(lambda p: p.nick == "bobby" and not p.available, timeout=10)


async def test_component_answers_disco_with_gateway_identity(pair):
    alice = pair[0]
    alice.client.register_plugin("xep_0030")
    info = await alice.client.plugin["xep_0030"].get_info(jid="bridge.localhost", timeout=5)
    identities = {(c, t) for c, t, *_ in info["disco_info"]["identities"]}
    assert ("gateway", "irc") in identities
    assert "http://jabber.org/protocol/muc" in info["disco_info"]["features"]


async def test_topic_both_ways(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    bob.send("MODE", CHAN, "-t")
    text = config_text(prosody, tmp_path, irc_network("net", inspircd),
                       link(f"xmpp: {ROOM}", f"irc: net/{CHAN}"))
    async with running_bridge(text):
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob], CHAN)
        alice.set_subject(ROOM, "from xmpp")
        await bob.wait_for(lambda l: l.command == "TOPIC" and l.text == "from xmpp")
        await bob.set_topic(CHAN, "from irc")
        await alice.wait_for_subject(ROOM, "from irc")


async def test_nway_each_message_exactly_once_and_never_back(prosody, inspircd, ngircd, xmpp_user,
                                                             irc_user, tmp_path):
    networks = irc_network("insp", inspircd) + irc_network("ngi", ngircd)
    text = config_text(prosody, tmp_path, networks,
                       link(f"xmpp: {ROOM}", "irc: insp/#a", "irc: insp/#b", "irc: ngi/#c"))
    a = await irc_user(inspircd, "ann")
    b = await irc_user(inspircd, "ben")
    c = await irc_user(ngircd, "cat")
    for user, chan in ((a, "#a"), (b, "#b"), (c, "#c")):
        await user.join(chan)
    async with running_bridge(text):
        x = await xmpp_user("xena")
        await x.join(ROOM, "xena")
        for user, chan in ((a, "#a"), (b, "#b"), (c, "#c")):
            await bridge_ready(x if user is a else None, [user], chan)
        x.say(ROOM, "from xmpp")
        a.privmsg("#a", "from a")
        b.privmsg("#b", "from b")
        c.privmsg("#c", "from c")
        expected = {
            "#a": {"<xena> from xmpp", "<ben> from b", "<cat> from c"},
            "#b": {"<xena> from xmpp", "<ann> from a", "<cat> from c"},
            "#c": {"<xena> from xmpp", "<ann> from a", "<ben> from b"},
        }
        for user, chan in ((a, "#a"), (b, "#b"), (c, "#c")):
            for line in expected[chan]:
                await user.wait_for_privmsg(chan, line, sender="relay")
        for nick, body in (("ann", "from a"), ("ben", "from b"), ("cat", "from c")):
            await x.wait_for_message(ROOM, body, nick=nick)
        await asyncio.sleep(1.0)  # anything extra (a duplicate, an echo) would arrive by now
        for user, chan in ((a, "#a"), (b, "#b"), (c, "#c")):
            relayed = [l.text for l in user.privmsgs(chan) if l.nick == "relay"]
            assert sorted(relayed) == sorted(expected[chan])
        bodies = [m.body for m in x.messages if m.body and m.nick != "xena" and not m.delayed]
        assert sorted(bodies) == ["from a", "from b", "from c"]


async def test_history_in_the_room_is_not_replayed_on_start(prosody, inspircd, xmpp_user, irc_user,
                                                            tmp_path):
    alice = await xmpp_user("alice")
    await alice.join(ROOM, "alice")
    alice.say(ROOM, "said before the bridge came")
    await alice.wait_for_message(ROOM, "said before the bridge came")
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    text = config_text(prosody, tmp_path, irc_network("net", inspircd),
                       link(f"xmpp: {ROOM}", f"irc: net/{CHAN}"))
    async with running_bridge(text):
        await bridge_ready(alice, [bob], CHAN)
        alice.say(ROOM, "live")
        await bob.wait_for_privmsg(CHAN, "<alice> live")
        assert [l.text for l in bob.privmsgs(CHAN)] == ["<alice> live"]


async def test_puppet_jid_is_stable_across_bridge_restarts(prosody, inspircd, xmpp_user, irc_user,
                                                           tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    text = config_text(prosody, tmp_path, irc_network("net", inspircd),
                       link(f"xmpp: {ROOM}", f"irc: net/{CHAN}"))
    alice = await xmpp_user("alice")
    await alice.join(ROOM, "alice")
    for round_ in range(2):
        mark, line_mark = alice.presences.mark(), bob.lines.mark()
        async with running_bridge(text) as bridge:
            await bridge_ready(alice, [bob], CHAN, after=(mark, line_mark))
            bob.privmsg(CHAN, f"round {round_}")
            await alice.wait_for_message(ROOM, f"round {round_}", nick="bob")
            room = bridge.adapters[0].rooms[ROOM]
            jids = [p.jid for p in room.puppets.values()]
            assert jids == ["bob%net@bridge.localhost/bridge"]
        await alice.presences.wait_for(lambda p: p.nick == "bob" and not p.available, after=mark)
        # the relay's nick is free again before the next start takes it
        await bob.wait_for(lambda l: l.command == "QUIT" and l.nick == "relay", after=line_mark)


async def test_bridge_reconnects_after_prosody_restart(pair, prosody):
    alice, bob = pair[:2]
    bob.privmsg(CHAN, "before")
    await alice.wait_for_message(ROOM, "before", nick="bob")
    await alice.close()
    await prosody.kill()  # no goodbye: the bridge finds its stream gone
    await prosody.start()
    await alice.connect()  # logs in again and rejoins the room
    await alice.presences.wait_for(lambda p: p.nick == "bridge" and p.available, timeout=30)
    bob.privmsg(CHAN, "after")
    await alice.wait_for_message(ROOM, "after", nick="bob", timeout=15)
    alice.say(ROOM, "xmpp after")
    await bob.wait_for_privmsg(CHAN, "<alice> xmpp after")


def test_wrong_component_secret_is_one_clear_line_and_exit_1(tmp_path):
    from bridge.demo.servers import Prosody

    async def scenario():
        async with Prosody(tmp_path / "prosody") as prosody:
            path = tmp_path / "config.yaml"
            path.write_text(config_text(prosody, tmp_path, "  {}", "  {}").replace(
                prosody.component_secret, "wrong-secret"))
            return await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "bridge", "run", "--config", str(path)],
                capture_output=True, text=True, timeout=60, env=os.environ.copy())

    result = asyncio.run(scenario())
    assert result.returncode == 1
    assert "refused the component secret" in result.stderr
    assert "Traceback" not in result.stderr
