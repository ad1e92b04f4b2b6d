"""`xmpp_users: connect` on an IRC endpoint, through the whole bridge (real Prosody and
InspIRCd): an XMPP occupant who speaks appears in the IRC channel as an IRC connection of
their own (`alice[x]`); over the cap, or until their connection is in, the relay speaks
for them."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.integration.bridge_harness import (ROOM, bridge_ready, config_text, heard_once, irc_network,
                                             running_bridge)
from tests.integration.test_bridge_addresses import CHAN, chat
from tests.integration.test_bridge_semantics import NS_REACTIONS, NS_REPLY, reactions, retraction
from tests.servers.scripted_ircd import ScriptedIrcd

pytestmark = pytest.mark.timeout(90)
IDLE = 8.0


def config(prosody, tmp_path, inspircd) -> str:
    networks = irc_network("net", inspircd, extra=f", xmpp_user_clients: 1, xmpp_user_idle: {IDLE}")
    links = f"  l:\n    - xmpp: {ROOM}\n    - irc: net/{CHAN}\n      xmpp_users: connect\n"
    return config_text(prosody, tmp_path, networks, links)


def said(nick: str, text: str, target: str = CHAN):
    return lambda l: l.command == "PRIVMSG" and l.nick == nick and l.target == target and l.text == text


async def test_xmpp_users_speak_on_irc_through_connections_of_their_own(prosody, inspircd, xmpp_user,
                                                                         irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    alice, carol = await xmpp_user("alice"), await xmpp_user("carol")
    await alice.join(ROOM, "alice")
    await carol.join(ROOM, "carol")
    async with running_bridge(config(prosody, tmp_path, inspircd)):
        await bridge_ready(alice, [bob], CHAN)

        # the first line may go through the relay; then alice's own connection comes in
        alice.say(ROOM, "one")
        await bob.wait_for(lambda l: said("relay", "<alice> one")(l) or said("alice[x]", "one")(l))
        await bob.wait_for(lambda l: l.command == "JOIN" and l.nick == "alice[x]" and l.target == CHAN)
        alice.say(ROOM, "two")
        await bob.wait_for(said("alice[x]", "two"))
        alice.me(ROOM, "waves")
        waved = await bob.wait_for(lambda l: l.nick == "alice[x]" and l.action is not None)
        assert (waved.target, waved.action) == (CHAN, "waves")

        # the cap is 1: carol speaks through the relay, and goes on doing so
        carol.say(ROOM, "from carol")
        await bob.wait_for(said("relay", "<carol> from carol"))
        await asyncio.sleep(1.0)  # her connection would be in by now
        carol.say(ROOM, "carol again")
        await bob.wait_for(said("relay", "<carol> carol again"))
        assert not bob.lines.matching(lambda l: l.nick.startswith("carol"))

        # bob reaches the MUC once; nothing of alice's connection comes back, nor is it a puppet
        bob.privmsg(CHAN, "from irc")
        await heard_once([alice, carol], "bob", "from irc", ["one", "two", "/me waves", "from carol", "carol again"])
        assert alice.occupants(ROOM) == {"alice", "bob", "bridge", "carol"}

        # a nick change in the MUC is alice's connection's own
        await alice.change_nick(ROOM, "alicia")
        renamed = await bob.wait_for(lambda l: l.command == "NICK" and l.nick == "alice[x]")
        assert renamed.text == "alicia[x]"
        alice.say(ROOM, "renamed")
        await bob.wait_for(said("alicia[x]", "renamed"))
        assert not bob.lines.matching(lambda l: "known as" in l.text)

        # private messages both ways between bob and alice's connection
        bob.privmsg("alicia[x]", "psst")
        got = await alice.chats.wait_for(lambda m: m.body == "psst", timeout=10)
        assert (got.room, got.nick) == (ROOM, "bob")
        chat(alice, f"{ROOM}/bob", "hi bob", "pm-1")
        await bob.wait_for(said("alicia[x]", "hi bob", target="bob"))
        assert not bob.lines.matching(lambda l: l.nick == "relay" and l.target == "bob")

        # alice leaves the MUC: her connection quits IRC, with her words
        await alice.leave(ROOM, "gone fishing")
        gone = await bob.wait_for(lambda l: l.command == "QUIT" and l.nick == "alicia[x]")
        assert "gone fishing" in gone.text

        # idle: the connection quits on its own
        await alice.join(ROOM, "alice")
        mark = bob.lines.mark()
        alice.say(ROOM, "back")
        await bob.wait_for(lambda l: l.command == "JOIN" and l.nick == "alice[x]", after=mark)
        await bob.wait_for(lambda l: l.command == "QUIT" and l.nick == "alice[x]", timeout=IDLE + 6, after=mark)
        assert not alice.messages.matching(lambda m: m.nick and m.nick.endswith("[x]"))


def ident_of(line) -> str:
    return line.source.partition("!")[2].partition("@")[0]


@pytest.mark.parametrize("inspircd", [{"ident": True}], indirect=True)
async def test_one_identd_answers_the_irc_server_for_plumbed_and_portal_connections(prosody, inspircd, xmpp_user,
                                                                                      irc_user, tmp_path):
    # InspIRCd asks port 113 of the address a client comes from (127.0.0.1 here) who it is;
    # an ident nobody answered for shows with a `~` before it.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's listeners do
        try:
            probe.bind(("127.0.0.1", 113))
        except OSError as exc:
            pytest.fail(f"this test needs port 113 on 127.0.0.1 (for InspIRCd's ident check): {exc}")
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    await bob.join("#portal")
    alice, carol = await xmpp_user("alice"), await xmpp_user("carol")
    await alice.join(ROOM, "alice")
    text = config(prosody, tmp_path, inspircd) + \
        "portal: {networks: [net], users: [localhost]}\nidentd: {port: 113, host: 127.0.0.1}\n"
    async with running_bridge(text):
        await bridge_ready(alice, [bob], CHAN)
        relay = bob.lines.matching(lambda l: l.command == "JOIN" and l.nick == "relay")[0]
        assert ident_of(relay).startswith("~")  # the relay is nobody's own connection

        # a plumbed user's own connection (xmpp_users: connect)
        alice.say(ROOM, "one")
        joined = await bob.wait_for(lambda l: l.command == "JOIN" and l.nick == "alice[x]" and l.target == CHAN)
        ident = ident_of(joined)
        assert not ident.startswith("~") and ident.startswith("x") and "alice" not in ident

        # a portal user's, answered by the same identd
        await carol.join(f"#portal%net@{prosody.component_jid}", "carol", timeout=15)
        joined = await bob.wait_for(lambda l: l.command == "JOIN" and l.nick == "carol" and l.target == "#portal")
        other = ident_of(joined)
        assert not other.startswith("~") and other.startswith("x") and "carol" not in other and other != ident


@pytest.mark.parametrize("prosody", [{"muc_mam": True}], indirect=True)  # stanza-ids, as most rooms give
async def test_replies_and_reactions_find_lines_said_through_own_connections(prosody, inspircd, xmpp_user,
                                                                              irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob", caps=("message-tags", "echo-message"))
    await bob.join(CHAN)
    alice, carol = await xmpp_user("alice"), await xmpp_user("carol")
    await alice.join(ROOM, "alice")
    await carol.join(ROOM, "carol")
    async with running_bridge(config(prosody, tmp_path, inspircd)):
        await bridge_ready(alice, [bob], CHAN)
        alice.say(ROOM, "one")
        await bob.wait_for(lambda l: l.command == "JOIN" and l.nick == "alice[x]" and l.target == CHAN)
        alice.say(ROOM, "is it you?")
        mine = await alice.wait_for_message(ROOM, "is it you?", nick="alice")
        msgid = (await bob.wait_for(said("alice[x]", "is it you?"))).tags["msgid"]
        await asyncio.sleep(0.3)  # the relay hears alice[x]'s line as bob does

        # bob answers alice[x]'s line, and reacts to it: in the MUC both name alice's message
        mark = alice.messages.mark()
        bob.send_raw(f"@+draft/reply={msgid} PRIVMSG {CHAN} :yes it is")
        answer = await alice.wait_for_message(ROOM, nick="bob", after=mark)
        assert answer.child(NS_REPLY, "reply").get("id") == mine.stanza_id
        assert answer.body == "> alice: is it you?\nyes it is"
        bob.send_raw(f"@+draft/react=👍;+draft/reply={msgid} TAGMSG {CHAN}")
        got = await alice.messages.wait_for(
            lambda m: m.nick == "bob" and m.child(NS_REACTIONS, "reactions") is not None, after=mark)
        assert got.child(NS_REACTIONS, "reactions").get("id") == mine.stanza_id

        # carol (through the relay: the cap is 1) reacts to it: a TAGMSG naming alice[x]'s line
        carol.send(ROOM, None, reactions(mine.stanza_id, "🎉"))
        tag = await bob.wait_for(lambda l: l.command == "TAGMSG" and l.nick == "relay")
        assert (tag.tags.get("+draft/react"), tag.tags.get("+draft/reply")) == ("🎉", msgid)

        # alice reacts to bob's line: from her own connection
        bob.privmsg(CHAN, "cake is ready")
        echo = await bob.wait_for_privmsg(CHAN, "cake is ready", sender="bob")
        cake = await alice.wait_for_message(ROOM, "cake is ready", nick="bob")
        await asyncio.sleep(0.3)  # the room's stanza-id for bob's line reaches the bridge
        alice.send(ROOM, None, reactions(cake.stanza_id, "🍰"))
        mine_too = await bob.wait_for(lambda l: l.command == "TAGMSG" and l.nick == "alice[x]")
        assert mine_too.tags.get("+draft/reply") == echo.tags["msgid"]


@pytest.mark.parametrize("prosody", [{"muc_mam": True}], indirect=True)
async def test_a_retraction_of_a_line_from_an_own_connection_is_its_redact(prosody, xmpp_user, tmp_path):
    """REDACT is the sender's (or an operator's) to send: alice takes her line back from her
    own connection (the scripted ircd offers draft/message-redaction, which InspIRCd 3 lacks)."""
    ircd = await ScriptedIrcd(caps=("message-tags", "echo-message", "draft/message-redaction")).start()
    try:
        async with running_bridge(config(prosody, tmp_path, ircd)):
            alice = await xmpp_user("alice")
            await alice.join(ROOM, "alice")
            await bridge_ready(alice, [], CHAN)
            relay = await ircd.client(0)
            alice.say(ROOM, "one")  # through the relay (echoed as scripted1); her connection is made
            first = await alice.wait_for_message(ROOM, "one", nick="alice")
            await relay.expect(f"PRIVMSG {CHAN} :<alice> one")
            own = await ircd.client(1)
            await own.expect(f"JOIN {CHAN}")
            await asyncio.sleep(0.3)  # in the channel (NAMES came with the JOIN)
            alice.say(ROOM, "oops")
            mine = await alice.wait_for_message(ROOM, "oops", nick="alice")
            await own.expect(f"PRIVMSG {CHAN} :oops")
            relay.send(f"@msgid=o1 :{own.mask} PRIVMSG {CHAN} :oops")  # the relay hears it in the channel
            await asyncio.sleep(0.3)
            alice.send(ROOM, *retraction(mine.stanza_id))
            assert await own.expect("REDACT") == f"REDACT {CHAN} o1"
            assert not relay.lines("REDACT") and not relay.lines("NOTICE")
            # her first line was the relay's: the relay takes it back
            alice.send(ROOM, *retraction(first.stanza_id))
            assert await relay.expect("REDACT") == f"REDACT {CHAN} scripted1"
            assert own.lines("REDACT") == [f"REDACT {CHAN} o1"]
    finally:
        await ircd.stop()
