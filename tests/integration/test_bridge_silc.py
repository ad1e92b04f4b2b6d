"""MUC + IRC + SILC in one link, through the whole bridge: exactly once everywhere."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.bridge_harness import (ROOM, bridge_ready, config_text, irc_network, running_bridge,
                                             silc_network)
from tests.servers.silc.numbers import CMODE_PRIVKEY
from tests.servers.silc.server import SilcTestServer
from tests.servers.silc.user import ChannelMessage, TestUser

pytestmark = pytest.mark.timeout(90)
CHAN = "#room"


async def test_three_networks_each_message_once_everywhere(prosody, inspircd, xmpp_user, irc_user,
                                                           tmp_path):
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
                # the bridge says, in SILC and in the MUC, that E2E encryption ends here
                notice = await sam.wait_for(ChannelMessage, timeout=15,
                                            text=lambda t: "end-to-end" in t)
                assert "xmpp/" + ROOM in notice.text
                await alice.wait_for_message(ROOM, nick="bridge", timeout=10)

                alice.say(ROOM, "from xmpp")
                bob.privmsg(CHAN, "from irc")
                await sam.say("hackers", "from silc")
                await sam.say("hackers", "waves", action=True)

                await bob.wait_for_privmsg(CHAN, "<alice> from xmpp", sender="relay")
                await bob.wait_for_privmsg(CHAN, "<sam> from silc", sender="relay")
                await bob.wait_for_privmsg(CHAN, "* sam waves", sender="relay")
                await alice.wait_for_message(ROOM, "from irc", nick="bob")
                await alice.wait_for_message(ROOM, "from silc", nick="sam")
                await alice.wait_for_message(ROOM, "/me waves", nick="sam")
                await sam.wait_for(ChannelMessage, text="<alice> from xmpp")
                await sam.wait_for(ChannelMessage, text="<bob> from irc")

                await asyncio.sleep(1.0)  # a duplicate or an echo would be here by now
                irc_seen = sorted(l.text for l in bob.privmsgs(CHAN) if l.nick == "relay")
                assert irc_seen == ["* sam waves", "<alice> from xmpp", "<sam> from silc"]
                xmpp_seen = sorted(m.body for m in alice.messages
                                   if m.body and m.nick not in ("alice", "bridge"))
                assert xmpp_seen == ["/me waves", "from irc", "from silc"]
                silc_seen = sorted(m.text for m in sam.events_of(ChannelMessage)
                                   if "end-to-end" not in m.text)
                assert silc_seen == ["<alice> from xmpp", "<bob> from irc"]

                # a SILC nick change renames sam's occupant; the JID stays
                await sam.set_nick("samuel")
                await sam.say("hackers", "renamed")
                await alice.wait_for_message(ROOM, "renamed", nick="samuel")


async def test_a_private_key_channel_without_its_mode_is_paused_and_the_room_told(prosody, xmpp_user,
                                                                                  tmp_path):
    """Nothing crosses under the SILC server's key; the MUC hears why, and
    again when it resumes."""
    secret = tmp_path / "hackers.key"
    secret.write_text("open sesame\n")
    secret.chmod(0o600)
    async with SilcTestServer() as silc, TestUser("sam", silc.port) as sam:
        await sam.join("hackers")  # sam founds the channel
        await sam.set_mode("hackers", CMODE_PRIVKEY)
        sam.set_private_key("hackers", "open sesame")
        networks = silc_network("silcnet", silc, tmp_path)
        links = (f"  l:\n    - xmpp: {ROOM}\n    - silc: silcnet/hackers\n"
                 f"      passphrase_file: {secret}\n")
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        async with running_bridge(config_text(prosody, tmp_path, networks, links)):
            await bridge_ready(alice, [], "")
            await sam.wait_for(ChannelMessage, timeout=15, text=lambda t: "end-to-end" in t)
            await sam.say("hackers", "under the private key")
            await alice.wait_for_message(ROOM, "under the private key", nick="sam")

            await sam.set_mode("hackers", 0)
            sam.set_private_key("hackers", None)
            paused = await alice.wait_for_message(ROOM, nick="bridge", timeout=10,
                                                  after=len(alice.messages))
            assert "SILC channel hackers on silcnet is paused" in paused.body
            await sam.say("hackers", "under the server key")
            alice.say(ROOM, "not for the SILC servers")
            await asyncio.sleep(1.0)  # it would have reached SILC by now
            assert not sam.events_of(ChannelMessage, text="<alice> not for the SILC servers")

            await sam.set_mode("hackers", CMODE_PRIVKEY)
            sam.set_private_key("hackers", "open sesame")
            resumed = await alice.wait_for_message(ROOM, nick="bridge", timeout=10,
                                                   after=len(alice.messages))
            assert "has resumed" in resumed.body
            alice.say(ROOM, "private again")
            await sam.wait_for(ChannelMessage, text="<alice> private again")
            assert not [m for m in alice.messages if m.body == "under the server key"]
