"""Portal mode against real Prosody and InspIRCd: an XMPP user joins `#chan%ircnet@bridge...`
with their own IRC connection and sees the channel as a MUC."""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET

import pytest

from tests.integration.bridge_harness import config_text, irc_network, running_bridge
from tests.integration.clients import NS_MUC, NS_MUC_USER, wait_until

pytestmark = pytest.mark.asyncio

T = 20.0  # the machine is shared: generous waits, never speed asserted


def portal_config(prosody, inspircd, tmp_path, users: str = "[localhost]", extra: str = "") -> str:
    return config_text(prosody, tmp_path, irc_network("ircnet", inspircd), "  {}\n") + \
        f"portal: {{networks: [ircnet], users: {users}{extra}}}\n"


def room(prosody, channel: str = "#chan") -> str:
    return f"{channel}%ircnet@{prosody.component_jid}"


@contextlib.asynccontextmanager
async def portal_bridge(prosody, inspircd, tmp_path, **options):
    async with running_bridge(portal_config(prosody, inspircd, tmp_path, **options)) as bridge:
        yield bridge


def irc_nicks(line_text: str) -> set[str]:
    return {name.lstrip("~&@%+") for name in line_text.split()}


async def names(user, channel: str) -> set[str]:
    mark = user.lines.mark()
    user.send("NAMES", channel)
    line = await user.wait_for(lambda l: l.command == "353" and l.params[2].lower() == channel.lower(), T,
                               after=mark)
    return irc_nicks(line.text)


async def test_a_user_joins_a_channel_and_sees_its_occupants_with_roles(prosody, inspircd, xmpp_user,
                                                                       irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")  # the channel's creator: an operator
    carol = await irc_user(inspircd, "carol")
    await carol.join("#chan")
    bob.send("MODE", "#chan", "+v", "carol")
    await bob.set_topic("#chan", "the topic")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        await alice.join(room(prosody), "alice", timeout=T)
        jid = room(prosody)
        seen = {p.nick: p for p in alice.presences if p.room == jid}
        assert seen["bob"].role == "moderator" and seen["bob"].jid == f"bob%ircnet@{prosody.component_jid}"
        assert seen["carol"].role == "participant"
        mine = [p for p in alice.presences if p.room == jid]
        assert 110 in mine[-1].codes and mine[-1].nick == "alice"  # own presence last (7.2.3)
        assert all(110 not in p.codes for p in mine[:-1])
        assert 210 not in mine[-1].codes
        assert [m.subject for m in alice.messages if m.room == jid] == ["the topic"]
        assert "alice" in await names(bob, "#chan")  # her own connection, her own nick


async def test_messages_and_actions_both_ways_and_reflected(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        msg_id = alice.send(jid, "hello *bob*")
        line = await bob.wait_for_privmsg("#chan", "hello \x02bob\x02", sender="alice", timeout=T)
        assert line.source.startswith("alice!")
        echo = await alice.wait_for_message(jid, "hello *bob*", nick="alice", timeout=T)
        assert echo.id == msg_id  # the reflection keeps the client's id (7.4)
        alice.me(jid, "waves")
        line = await bob.wait_for(lambda l: l.action == "waves" and l.nick == "alice", T)
        bob.privmsg("#chan", "hi \x1dalice\x1d")
        await alice.wait_for_message(jid, "hi _alice_", nick="bob", timeout=T)
        bob.action("#chan", "smiles")
        await alice.wait_for_message(jid, "/me smiles", nick="bob", timeout=T)
