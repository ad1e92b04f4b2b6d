"""`xmpp_users: connect` on an IRC endpoint, through the whole bridge (real Prosody and
InspIRCd): an XMPP occupant who speaks appears in the IRC channel as an IRC connection of
their own (`alice[x]`); over the cap, or until their connection is in, the relay speaks
for them."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.bridge_harness import (ROOM, bridge_ready, config_text, heard_once, irc_network,
                                             running_bridge)
from tests.integration.test_bridge_addresses import CHAN, chat

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
