"""`xmpp_users: connect` on a SILC endpoint, through the whole bridge: an XMPP occupant who
speaks appears in the SILC channel as a SILC client of their own, under a key the bridge
keeps for them; over the cap, or until their client is in, the relay speaks for them."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from tests.integration.bridge_harness import (ROOM, bridge_ready, config_text, heard_once, running_bridge,
                                             silc_network)
from tests.integration.test_bridge_addresses import chat
from tests.servers.silc.server import SilcTestServer
from tests.servers.silc.user import ChannelMessage, Joined, NickChanged, PrivateMessage, SignedOff, TestUser

pytestmark = pytest.mark.timeout(90)
IDLE = 4.0


def config(prosody, tmp_path, silc) -> str:
    networks = silc_network("silcnet", silc, tmp_path).replace(
        "}\n", f", xmpp_user_clients: 1, xmpp_user_idle: {IDLE}}}\n")
    links = f"  l:\n    - xmpp: {ROOM}\n    - silc: silcnet/hackers\n      xmpp_users: connect\n"
    return config_text(prosody, tmp_path, networks, links)


async def test_xmpp_users_speak_in_silc_through_clients_of_their_own(prosody, xmpp_user, tmp_path):
    async with SilcTestServer() as silc, TestUser("sam", silc.port) as sam:
        await sam.join("hackers")
        alice, bob = await xmpp_user("alice"), await xmpp_user("bob")
        await alice.join(ROOM, "alice")
        await bob.join(ROOM, "bob")
        async with running_bridge(config(prosody, tmp_path, silc)):
            await bridge_ready(alice, [], "")
            await sam.wait_for(ChannelMessage, timeout=15, text=lambda t: "end-to-end" in t)

            # the first line goes through the relay at once; alice's own client comes in for the next
            alice.say(ROOM, "one")
            await sam.wait_for(ChannelMessage, timeout=10, nick="relay", text="<alice> one")
            await sam.wait_for(Joined, timeout=15, nick="alice")
            alice.say(ROOM, "two")
            await sam.wait_for(ChannelMessage, timeout=10, nick="alice", text="two")
            alice.me(ROOM, "waves")
            waved = await sam.wait_for(ChannelMessage, timeout=10, nick="alice", text="waves")
            assert waved.action
            fingerprint = (await sam.getkey("alice")).fingerprint
            assert fingerprint != (await sam.getkey("relay")).fingerprint
            whois = await sam.whois("alice")
            assert "XMPP user" in whois.get(5).decode() and "alice" not in whois.get(4).decode()

            # the cap is 1: bob speaks through the relay, and goes on doing so
            bob.say(ROOM, "from bob")
            await sam.wait_for(ChannelMessage, timeout=10, nick="relay", text="<bob> from bob")
            await asyncio.sleep(1.0)  # his client would be in by now
            bob.say(ROOM, "bob again")
            await sam.wait_for(ChannelMessage, timeout=10, nick="relay", text="<bob> bob again")
            assert not sam.events_of(Joined, nick="bob")

            # sam reaches the MUC once; nothing of alice's client comes back
            await sam.say("hackers", "from silc")
            await heard_once([alice, bob], "sam", "from silc", ["one", "two", "/me waves", "from bob", "bob again"])
            assert alice.occupants(ROOM) == {"alice", "bob", "bridge", "sam"}

            # a nick change in the MUC is alice's client's own
            await alice.change_nick(ROOM, "alicia")
            renamed = await sam.wait_for(NickChanged, timeout=10, old="alice")
            assert renamed.new == "alicia"
            alice.say(ROOM, "renamed")
            await sam.wait_for(ChannelMessage, timeout=10, nick="alicia", text="renamed")
            assert not sam.events_of(ChannelMessage, nick="relay", text=lambda t: "known as" in t)

            # private messages both ways between sam and alice's client
            await sam.msg("alicia", "psst")
            got = await alice.chats.wait_for(lambda m: m.body == "psst", timeout=10)
            assert (got.room, got.nick) == (ROOM, "sam")
            chat(alice, f"{ROOM}/sam", "hi sam", "pm-1")
            await sam.wait_for(PrivateMessage, timeout=10, nick="alicia", text="hi sam")
            assert not sam.events_of(PrivateMessage, nick="relay")

            # alice leaves the MUC: her client leaves SILC
            await alice.leave(ROOM, "gone fishing")
            await sam.wait_for(SignedOff, timeout=10, nick="alicia")
            await alice.join(ROOM, "alice")

        # after a restart alice's client has the same key
        async with running_bridge(config(prosody, tmp_path, silc)):
            await bridge_ready(alice, [], "", after=(len(alice.presences), 0))
            await asyncio.sleep(0.5)  # the bot's join is reflected before the relay client is in
            alice.say(ROOM, "back")
            await sam.wait_for(ChannelMessage, timeout=15, nick="relay", text="<alice> back")
            await sam.wait_for(Joined, timeout=15, nick="alice")
            assert (await sam.getkey("alice")).fingerprint == fingerprint

            # her client's connection drops: nothing is lost meanwhile, and it comes back
            await silc.drop("alice")
            await sam.wait_for(SignedOff, nick="alice")
            alice.say(ROOM, "while down")
            await sam.wait_for(ChannelMessage, timeout=10,
                               text=lambda t: t in ("<alice> while down", "while down"))
            await sam.wait_for(Joined, timeout=15, nick="alice")
            alice.say(ROOM, "up again")
            await sam.wait_for(ChannelMessage, timeout=10, nick="alice", text="up again")

            # idle: the client quits on its own
            await sam.wait_for(SignedOff, timeout=IDLE + 6, nick="alice")
            assert "alice" not in silc.channel_nicks("hackers")


async def own_client_in(alice, sam, text: str = "first") -> None:
    """Alice speaks (through the relay at first) until her own client is in the channel."""
    alice.say(ROOM, text)
    await sam.wait_for(ChannelMessage, timeout=10, nick="relay", text=f"<alice> {text}")
    await sam.wait_for(Joined, timeout=15, nick="alice")


async def test_a_client_kicked_from_silc_leaves_its_user_to_the_relay_and_its_user_is_told(prosody, xmpp_user,
                                                                                          tmp_path):
    async with SilcTestServer() as silc, TestUser("sam", silc.port) as sam:
        await sam.join("hackers")  # first in: its operator
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        async with running_bridge(config(prosody, tmp_path, silc)):
            await bridge_ready(alice, [], "")
            await sam.wait_for(ChannelMessage, timeout=15, text=lambda t: "end-to-end" in t)
            await own_client_in(alice, sam)

            await sam.kick("hackers", "alice", "behave")
            told = await alice.messages.wait_for(lambda m: m.body and "kicked" in m.body, timeout=10)
            assert "alice" in told.body and "sam" in told.body and "behave" in told.body
            alice.say(ROOM, "after the kick")
            await sam.wait_for(ChannelMessage, timeout=10, nick="relay", text="<alice> after the kick")
            await asyncio.sleep(1.0)  # a new client would be in by now
            alice.say(ROOM, "still out")
            await sam.wait_for(ChannelMessage, timeout=10, nick="relay", text="<alice> still out")
            assert "alice" not in silc.channel_nicks("hackers") and len(sam.events_of(Joined, nick="alice")) == 1
            said = [e.text for e in sam.events_of(ChannelMessage) if "alice" in e.text or e.nick == "alice"]
            assert said == ["<alice> first", "<alice> after the kick", "<alice> still out"]


@pytest.mark.parametrize("why", ["refused", "unreachable"])
async def test_a_client_that_cannot_connect_is_given_up_once_and_the_relay_speaks(prosody, xmpp_user, tmp_path,
                                                                                 monkeypatch, why):
    monkeypatch.setattr("bridge.core.users.GIVE_UP", 2.0)
    monkeypatch.setattr("bridge.core.users.SWEEP", 0.5)
    async with SilcTestServer() as silc, TestUser("sam", silc.port) as sam:
        await sam.join("hackers")
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        with capture_logs() as logs:
            async with running_bridge(config(prosody, tmp_path, silc)):
                await bridge_ready(alice, [], "")
                await sam.wait_for(ChannelMessage, timeout=15, text=lambda t: "end-to-end" in t)
                if why == "refused":  # the server lets in the keys it knows: the relay's, not alice's
                    silc.auth, silc.client_keys = "public-key", {silc.client("relay").fingerprint.lower()}
                else:  # nothing listens any more where the relay connected
                    silc._server.close()
                alice.say(ROOM, "one")
                await sam.wait_for(ChannelMessage, timeout=10, nick="relay", text="<alice> one")
                gave_up = lambda: [e for e in logs if e["event"] == "xmpp_user_client_closed"]  # noqa: E731
                for _ in range(100):
                    if gave_up():
                        break
                    await asyncio.sleep(0.1)
                attempts = len([e for e in logs if e["event"] == "silc_connecting"])
                alice.say(ROOM, "two")
                await sam.wait_for(ChannelMessage, timeout=10, nick="relay", text="<alice> two")
                await asyncio.sleep(2.0)  # held: no new client, no new attempt
                alice.say(ROOM, "three")
                await sam.wait_for(ChannelMessage, timeout=10, nick="relay", text="<alice> three")
        assert [e["reason"] for e in gave_up()] == ["could not connect"]
        assert len([e for e in logs if e["event"] == "silc_connecting"]) == attempts
        assert not sam.events_of(Joined, nick="alice")
        assert [e.text for e in sam.events_of(ChannelMessage) if "alice" in e.text] == [
            "<alice> one", "<alice> two", "<alice> three"]
        problems = [e for e in logs if e["log_level"] in ("warning", "error") and e.get("user_hash")]
        assert len(problems) == 1, problems  # one line says why; not one per attempt


async def test_a_users_key_is_kept_private_and_a_corrupt_one_is_said_and_never_replaced(prosody, xmpp_user,
                                                                                        tmp_path):
    keys = tmp_path / "silc-keys" / "users"
    async with SilcTestServer() as silc, TestUser("sam", silc.port) as sam:
        await sam.join("hackers")
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        async with running_bridge(config(prosody, tmp_path, silc)):
            await bridge_ready(alice, [], "")
            await sam.wait_for(ChannelMessage, timeout=15, text=lambda t: "end-to-end" in t)
            await own_client_in(alice, sam)
        [key] = keys.iterdir()
        assert key.stat().st_mode & 0o777 == 0o600 and keys.stat().st_mode & 0o777 == 0o700
        assert b"alice" not in key.read_bytes() and "alice" not in key.name

        corrupt = b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
        key.write_bytes(corrupt)
        await alice.join(ROOM, "alice")
        with capture_logs() as logs:
            async with running_bridge(config(prosody, tmp_path, silc)):
                await bridge_ready(alice, [], "", after=(len(alice.presences), 0))
                await asyncio.sleep(0.5)  # the bot's join is reflected before the relay client is in
                for text in ("with a broken key", "again", "and again"):
                    alice.say(ROOM, text)
                    await sam.wait_for(ChannelMessage, timeout=15, nick="relay", text=f"<alice> {text}")
                    await asyncio.sleep(0.5)  # a client would be in by now
        assert key.read_bytes() == corrupt and [key] == list(keys.iterdir())  # her identity is not replaced
        assert not [e for e in sam.events_of(Joined, nick="alice")][1:]  # only the first run's client
        said = [e for e in logs if e["event"] == "silc_user_key_unreadable" and e["log_level"] == "error"]
        assert len(said) == 1 and said[0]["path"] == str(key) and said[0]["error"]
