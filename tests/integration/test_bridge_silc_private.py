"""Private messages between an XMPP user and SILC users, through the whole bridge, as each
of them sees it: the SILC user hears from the relay client, after a hint on how to answer;
what cannot be delivered is answered on either side."""

from __future__ import annotations

import pytest

from tests.integration.bridge_harness import (ROOM, bridge_ready, config_text, irc_network, running_bridge,
                                             silc_network)
from tests.integration.test_bridge_addresses import chat, errors
from tests.servers.silc.numbers import PacketFlag, PacketType
from tests.servers.silc.server import SilcTestServer
from tests.servers.silc.user import ChannelMessage, PrivateMessage, TestUser
from tests.servers.silc.wire import ID_CLIENT

pytestmark = pytest.mark.timeout(90)
BRIDGE = "bridge.localhost"
CHAN = "#room"
HINT = f"alice (xmpp, room {ROOM}) writes to you privately through muc-bridge"


async def test_private_messages_between_xmpp_and_silc_both_ways(prosody, xmpp_user, tmp_path):
    async with SilcTestServer() as silc:
        networks = silc_network("silcnet", silc, tmp_path)
        links = f"  l:\n    - xmpp: {ROOM}\n    - silc: silcnet/hackers\n"
        async with TestUser("sam", silc.port) as sam, TestUser("tess", silc.port) as tess:
            await sam.join("hackers")
            await tess.join("hackers")
            alice = await xmpp_user("alice")
            await alice.join(ROOM, "alice")
            async with running_bridge(config_text(prosody, tmp_path, networks, links)):
                await bridge_ready(alice, [], "")
                await sam.wait_for(ChannelMessage, timeout=15, text=lambda t: "end-to-end" in t)
                await sam.say("hackers", "hello from silc")
                await alice.wait_for_message(ROOM, "hello from silc", nick="sam")
                refused = errors(alice)

                # (a) a MUC private message to sam's occupant: a hint first, then the message
                chat(alice, f"{ROOM}/sam", "psst", "pm-1")
                hint = await sam.wait_for(PrivateMessage, timeout=10, nick="relay",
                                          text=lambda t: t.startswith(HINT))
                assert "/msg relay alice: your text" in hint.text
                await sam.wait_for(PrivateMessage, nick="relay", text="<alice> psst")
                chat(alice, f"{ROOM}/sam", "again", "pm-2")
                await sam.wait_for(PrivateMessage, nick="relay", text="<alice> again")
                assert len(sam.events_of(PrivateMessage, text=lambda t: t.startswith(HINT))) == 1
                # sam's bare answer comes back from his occupant, as a MUC private message
                await sam.msg("relay", "hi alice")
                answer = await alice.chats.wait_for(lambda m: m.body == "hi alice")
                assert (answer.room, answer.nick) == (ROOM, "sam")
                assert sam.events_of(ChannelMessage, text=lambda t: "psst" in t) == []
                assert not alice.messages.matching(lambda m: m.body in ("hi alice", "psst"))

                # (b) tess, who never wrote privately before, names alice
                await tess.msg("relay", "alice: hello from tess")
                fresh = await alice.chats.wait_for(lambda m: m.body == "hello from tess")
                assert (fresh.room, fresh.nick) == (ROOM, "tess")

                # (c) nobody called so: sam is told why, in a private message from the relay
                await sam.msg("relay", "nobody: anyone?")
                why = await sam.wait_for(PrivateMessage, timeout=10, nick="relay",
                                         text=lambda t: "not delivered" in t)
                assert why.text == ("muc-bridge: your message to nobody was not delivered: nobody called "
                                    "nobody is in the rooms linked to hackers")
                # under a private message key (silc-spec 4.6) it cannot be read: sam is told so
                relay = await sam.client_id_of("relay")
                sam.send_packet(PacketType.PRIVATE_MESSAGE, bytes(48), dst=(ID_CLIENT, relay),
                                flags=PacketFlag.PRIVMSG_KEY)
                told = await sam.wait_for(PrivateMessage, timeout=10, nick="relay",
                                          text=lambda t: "private message key" in t)
                assert "not delivered" in told.text
                # tess has left SILC: a chat to her puppet gets an error saying so
                await tess.quit("bye")
                await alice.presences.wait_for(lambda p: p.nick == "tess" and not p.available)
                chat(alice, f"tess%silcnet@{BRIDGE}", "are you there?", "direct-1")
                got = await refused.wait_for(lambda e: e[5] == "direct-1")
                assert got[:3] == ("message", f"tess%silcnet@{BRIDGE}", "recipient-unavailable")
                assert "nobody called tess" in got[3]
                assert not refused.matching(lambda e: e[5] in ("pm-1", "pm-2"))


async def test_a_silc_user_silent_since_the_relay_client_reconnected_is_still_reachable(
        prosody, xmpp_user, tmp_path):
    """The relay client's new session knows the channel's members only by Client ID: it asks
    who they are when it joins, not only when they speak."""
    async with SilcTestServer() as silc:
        networks = silc_network("silcnet", silc, tmp_path)
        links = f"  l:\n    - xmpp: {ROOM}\n    - silc: silcnet/hackers\n"
        async with TestUser("sam", silc.port) as sam:
            await sam.join("hackers")
            alice = await xmpp_user("alice")
            await alice.join(ROOM, "alice")
            async with running_bridge(config_text(prosody, tmp_path, networks, links)):
                await bridge_ready(alice, [], "")
                await sam.wait_for(ChannelMessage, timeout=15, text=lambda t: "end-to-end" in t)
                await sam.say("hackers", "hello from silc")
                await alice.wait_for_message(ROOM, "hello from silc", nick="sam")
                await silc.drop("relay")
                # back in the channel: the room is told what it may have missed
                await alice.messages.wait_for(
                    lambda m: m.nick == "bridge" and "may be missing" in (m.body or ""), timeout=20)
                chat(alice, f"{ROOM}/sam", "still there?", "pm-1")
                await sam.wait_for(PrivateMessage, timeout=10, nick="relay", text="<alice> still there?")


async def test_private_messages_between_irc_and_silc(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    async with SilcTestServer() as silc:
        networks = irc_network("irc", inspircd) + silc_network("silcnet", silc, tmp_path)
        links = f"  l:\n    - xmpp: {ROOM}\n    - irc: irc/{CHAN}\n    - silc: silcnet/hackers\n"
        bob = await irc_user(inspircd, "bob")
        await bob.join(CHAN)
        async with TestUser("sam", silc.port) as sam:
            await sam.join("hackers")
            alice = await xmpp_user("alice")
            await alice.join(ROOM, "alice")
            async with running_bridge(config_text(prosody, tmp_path, networks, links)):
                await bridge_ready(alice, [bob], CHAN)
                await sam.wait_for(ChannelMessage, timeout=15, text=lambda t: "end-to-end" in t)
                bob.privmsg("relay", "sam: hello from irc")
                hint = await sam.wait_for(PrivateMessage, timeout=10, nick="relay",
                                          text=lambda t: "writes to you privately" in t)
                assert hint.text.startswith(f"bob (irc, room {CHAN})")
                await sam.wait_for(PrivateMessage, nick="relay", text="<bob> hello from irc")
                await sam.msg("relay", "hi bob", action=True)
                await bob.wait_for_privmsg("bob", "* sam hi bob", sender="relay")
