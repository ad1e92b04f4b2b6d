"""The SILC adapter against the spec-written test server: what a user of a
linked room would see, as bridge events one way and SILC messages the other."""

from __future__ import annotations

import asyncio
import contextlib
import stat

import pytest
from structlog.testing import capture_logs

from bridge.config_types import SilcNetworkConfig
from bridge.core.events import (
    BRIDGE,
    Endpoint,
    Identity,
    Join,
    Kick,
    Message,
    MessageKind,
    NickChange,
    Part,
    Topic,
)
from bridge.silc.adapter import SilcAdapter
from bridge.silc.channel import CMODE_PRIVKEY
from bridge.store.sqlite import SqliteStore
from tests.servers.silc import user as tu
from tests.servers.silc.user import TestUser

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TUNING = {"tick": 0.1, "backoff_base": 0.05, "backoff_max": 0.2, "rejoin_delay": 0.1}
IRC_BOB = Identity("libera", "bob", "bob")


class Running:
    """An adapter running as a task, with what it emitted."""

    def __init__(self, port: int, key_dir, store=None, options=None, **config):
        self.emitted: list = []
        cfg = SilcNetworkConfig(name="silcnet", host="127.0.0.1", port=port, key_dir=str(key_dir), **config)
        self.adapter = SilcAdapter(cfg, self.emitted.append, store or SqliteStore(":memory:"), tuning=TUNING)
        self.adapter.add_endpoint("hackers", options or {})
        self.task = asyncio.create_task(self.adapter.run())

    async def until(self, predicate, timeout=5.0):
        async def poll():
            while not predicate():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout)

    async def joined(self):
        await self.until(lambda: self.adapter._client and self.adapter._client.channel("hackers"))
        return self

    async def emitted_of(self, kind, timeout=5.0, bridge=False):
        """The first event of `kind` emitted by someone, or (`bridge`) by the bridge itself
        (gap notices aside: a reconnect may give one at any moment)."""
        found = []

        def check():
            for e in self.emitted:
                if (isinstance(e, kind) and (e.sender == BRIDGE) == bridge
                        and not (bridge and "may be missing" in e.text)):
                    self.emitted.remove(e)
                    found.append(e)
                    return True
            return False

        await self.until(check, timeout)
        return found[0]

    async def stop(self):
        await self.adapter.close()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self.task, 5)


@pytest.fixture
async def running(silc_server, tmp_path):
    made = []

    def make(**kwargs):
        kwargs.setdefault("key_dir", tmp_path / "keys")
        made.append(Running(silc_server.port, **kwargs))
        return made[-1]

    yield make
    for r in made:
        await r.stop()


HACKERS = Endpoint("silcnet", "hackers")


async def test_silc_users_appear_with_key_identities(silc_server, running):
    bridge = await running().joined()
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        me = Identity("silcnet", alice.fingerprint.upper(), "alice")
        assert await bridge.emitted_of(Join) == Join(HACKERS, me)
        await alice.say("hackers", "hello from SILC")
        await alice.say("hackers", "waves", action=True)
        hello, wave = await bridge.emitted_of(Message), await bridge.emitted_of(Message)
        assert hello == Message(HACKERS, me, "hello from SILC", native_id=hello.native_id)
        assert wave == Message(HACKERS, me, "waves", MessageKind.ACTION, native_id=wave.native_id)
        assert hello.native_id != wave.native_id  # minted by the bridge: SILC has none
        await alice.set_nick("alicia")
        assert await bridge.emitted_of(NickChange) == NickChange(HACKERS, me, "alicia")
        await alice.set_topic("hackers", "bridged")
        topic = await bridge.emitted_of(Topic)
        assert (topic.text, topic.sender.native_id, topic.sender.nick) == ("bridged", me.native_id, "alicia")
        await alice.quit("later")
        part = await bridge.emitted_of(Part)
        assert (part.sender.native_id, part.quit, part.reason) == (me.native_id, True, "later")


async def test_a_burst_larger_than_one_read_arrives_whole_and_in_order(silc_server, running):
    bridge = await running().joined()
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await bridge.emitted_of(Join)
        for n in range(3000):
            await alice.say("hackers", f"line {n}")
        await bridge.until(lambda: len(bridge.emitted) >= 3000, timeout=30)
        await asyncio.sleep(0.2)  # and nothing more arrives
        assert [e.text for e in bridge.emitted] == [f"line {n}" for n in range(3000)]


async def test_kicks_and_leaves(silc_server, running):
    bridge = await running().joined()
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await bridge.emitted_of(Join)
        await silc_server.kick("alice", "hackers", "rules")
        kick = await bridge.emitted_of(Kick)
        assert (kick.target.nick, kick.sender.native_id, kick.reason) == ("alice", "silc-server", "rules")
        await alice.join("hackers")
        await bridge.emitted_of(Join)
        await alice.leave("hackers")
        part = await bridge.emitted_of(Part)
        assert (part.sender.nick, part.quit) == ("alice", False)


async def test_others_reach_silc_through_the_relay_client(silc_server, running):
    bridge = await running(format="<{nick}> {text}", action_format="* {nick} {text}").joined()
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await bridge.adapter.deliver("hackers", Message(HACKERS, IRC_BOB, "hi SILC"))
        await bridge.adapter.deliver("hackers", Message(HACKERS, IRC_BOB, "dances", MessageKind.ACTION))
        notice = bridge.adapter.e2e_notice("hackers", ["xmpp", "libera"])
        await bridge.adapter.deliver("hackers", Message(HACKERS, BRIDGE, notice, MessageKind.NOTICE))
        plain = await alice.wait_for(tu.ChannelMessage, text="<bob> hi SILC")
        action = await alice.wait_for(tu.ChannelMessage, text="* bob dances")
        told = await alice.wait_for(tu.ChannelMessage, text=notice)
        assert plain.nick == "xbridge" and not plain.action and action.action and told.notice
        await bridge.adapter.deliver("hackers", Topic(HACKERS, IRC_BOB, "from IRC"))
        await silc_server.wait_until(lambda s: s.topic("hackers") == "from IRC")
        # the bridge's own traffic is never reported back as events
        await asyncio.sleep(0.2)
        assert not [e for e in bridge.emitted if not isinstance(e, Join)]


async def test_own_identity_and_key_file(silc_server, running, tmp_path):
    bridge = await running().joined()
    key_file = tmp_path / "keys" / "silc.prv.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    me = silc_server.client("xbridge")
    assert bridge.adapter.is_own(Identity("silcnet", me.fingerprint.upper(), "xbridge"))


async def test_security_report(silc_server, running):
    bridge = await running().joined()
    lines = bridge.adapter.security()
    assert lines[0].startswith(
        f"SILC silcnet (127.0.0.1:{silc_server.port}): session aes-256-cbc with hmac-sha256-96"
    )
    assert "perfect forward secrecy on" in lines[0] and "pinned on first use" in lines[0]
    assert (
        lines[1]
        == "SILC silcnet/hackers: server-distributed channel key (aes-256-cbc, hmac-sha1-96): SILC servers can read it"
    )
    assert "end-to-end encryption ends at the bridge" in lines[2]


async def test_a_changed_server_key_is_refused(silc_server, running):
    store = SqliteStore(":memory:")
    first = await running(store=store).joined()
    await first.stop()
    old = silc_server.fingerprint
    new = silc_server.change_key()
    second = running(store=store)
    await second.until(lambda: second.adapter._client and second.adapter._client.last_error)
    error = second.adapter._client.last_error
    assert old[:4].upper() in error and new[:4].upper() in error and "refusing" in error
    assert "xbridge" not in silc_server.nicks()
    assert "last error" in second.adapter.security()[0]


async def test_configured_fingerprint(silc_server, running):
    spaced = " ".join(silc_server.fingerprint[i : i + 4] for i in range(0, 40, 4))
    bridge = await running(server_fingerprint=spaced).joined()
    assert "as configured" in bridge.adapter.security()[0]
    wrong = running(server_fingerprint="00" * 20, key_dir=bridge.adapter.config.key_dir)
    await wrong.until(lambda: wrong.adapter._client and wrong.adapter._client.last_error)
    assert "server_fingerprint" in wrong.adapter._client.last_error


async def test_reconnect_and_rejoin(silc_server, running):
    bridge = await running().joined()
    await silc_server.drop_all()
    await silc_server.wait_until(lambda s: "xbridge" in s.channel_nicks("hackers"), 10)
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await bridge.until(lambda: bridge.adapter._client.channel("hackers"))
        await alice.say("hackers", "are you back?")
        assert (await bridge.emitted_of(Message)).text == "are you back?"


async def test_a_link_gone_silent_is_replaced_within_ping_timeout(silc_server, running):
    """The server stops answering with the TCP connection open: after
    `ping_timeout` the bridge gives up on it, reconnects and relays again."""
    bridge = await running(ping_timeout=1.0).joined()
    dead = silc_server.client("xbridge")
    silc_server.blackhole("xbridge")
    await bridge.until(lambda: bridge.adapter._client.last_error, timeout=10)
    assert "nothing from the server" in bridge.adapter._client.last_error
    await silc_server.wait_until(lambda s: dead not in s.cell.clients, 5)  # it closed the dead one
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await bridge.until(lambda: bridge.adapter._client.channel("hackers"), timeout=10)
        await alice.say("hackers", "still there?")
        assert (await bridge.emitted_of(Message)).text == "still there?"


async def test_rejoining_after_a_dead_link_says_once_that_messages_meanwhile_may_be_missing(
        silc_server, running):
    bridge = await running(ping_timeout=1.0).joined()
    silc_server.blackhole("xbridge")
    await bridge.until(lambda: bridge.adapter._client.last_error, timeout=10)
    await bridge.until(lambda: bridge.adapter._client.channel("hackers"), timeout=10)
    notices = [e for e in bridge.emitted if isinstance(e, Message) and e.sender == BRIDGE]
    assert len(notices) == 1 and notices[0].endpoint == HACKERS
    assert "messages from silcnet/hackers between" in notices[0].text and "may be missing" in notices[0].text


async def test_messages_sent_into_a_dead_link_reach_silc_once_after_the_reconnect(silc_server, running):
    bridge = await running(ping_timeout=1.0).joined()
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await bridge.adapter.deliver("hackers", Message(HACKERS, IRC_BOB, "before"))
        await alice.wait_for(tu.ChannelMessage, text="<bob> before")
        await bridge.until(lambda: len(bridge.adapter._client.outbox) == 0)  # confirmed
        silc_server.blackhole("xbridge")
        lost = [f"<bob> into the blackhole {n}" for n in range(3)]
        for text in lost:
            await bridge.adapter.deliver("hackers", Message(HACKERS, IRC_BOB, text.removeprefix("<bob> ")))
        for text in lost:
            await alice.wait_for(tu.ChannelMessage, timeout=15, text=text)
        await asyncio.sleep(0.5)  # a duplicate would be here by now
        assert [m.text for m in alice.events_of(tu.ChannelMessage, nick="xbridge")] == ["<bob> before", *lost]


async def test_private_key_channel(silc_server, running):
    bridge = await running(options={"passphrase": "open sesame"}).joined()
    assert "channel private key from a passphrase" in bridge.adapter.security()[1]
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        alice.set_private_key("hackers", "open sesame")
        await alice.say("hackers", "only for us")
        assert (await bridge.emitted_of(Message)).text == "only for us"
        await bridge.adapter.deliver("hackers", Message(HACKERS, IRC_BOB, "relayed back"))
        assert (await alice.wait_for(tu.ChannelMessage, nick="xbridge")).text == "<bob> relayed back"


async def test_a_private_key_channel_recreated_by_the_bridge_gets_its_mode_back(silc_server, running):
    """Found against silcd: after a server restart the bridge rejoins first and
    re-creates the channel without the private-key mode; the reference client
    then refuses the private key and talks under the server's key. The bridge
    sets the mode again before it relays anything."""
    bridge = await running(options={"passphrase": "open sesame"}).joined()
    assert silc_server.channel_mode("hackers") & CMODE_PRIVKEY
    await silc_server.drop_all()  # every channel is gone, as after a restart
    await silc_server.wait_until(lambda s: "xbridge" in s.channel_nicks("hackers"), 10)
    await silc_server.wait_until(lambda s: (s.channel_mode("hackers") or 0) & CMODE_PRIVKEY, 5)
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        alice.set_private_key("hackers", "open sesame")
        await bridge.until(lambda: bridge.adapter._client.channel("hackers"))
        await alice.say("hackers", "after the restart")
        assert (await bridge.emitted_of(Message)).text == "after the restart"
        await bridge.adapter.deliver("hackers", Message(HACKERS, IRC_BOB, "welcome back"))
        assert (await alice.wait_for(tu.ChannelMessage, nick="xbridge")).text == "<bob> welcome back"


async def test_relaying_pauses_while_the_channel_lacks_the_private_key_mode(silc_server, running):
    """Neither direction goes under the server's key; the linked rooms are told
    once when relaying pauses and once when it resumes."""
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")  # alice founds the channel: only she may set the mode
        await alice.set_mode("hackers", CMODE_PRIVKEY)
        alice.set_private_key("hackers", "open sesame")
        bridge = await running(options={"passphrase": "open sesame"}).joined()

        await alice.set_mode("hackers", 0)  # as a client that refuses the key without the mode
        alice.set_private_key("hackers", None)
        paused = await bridge.emitted_of(Message, bridge=True)
        assert paused.sender == BRIDGE and paused.kind is MessageKind.NOTICE and paused.endpoint == HACKERS
        assert "relaying with SILC channel hackers on silcnet is paused" in paused.text
        assert "only its founder may set" in paused.text
        assert "relaying is paused" in bridge.adapter.security()[1]
        await alice.say("hackers", "readable by the server")
        await bridge.adapter.deliver("hackers", Message(HACKERS, IRC_BOB, "not for the server"))

        await alice.set_mode("hackers", CMODE_PRIVKEY)
        alice.set_private_key("hackers", "open sesame")
        resumed = await bridge.emitted_of(Message, bridge=True)
        assert resumed.sender == BRIDGE and "has resumed" in resumed.text
        assert "2 messages were not relayed meanwhile" in resumed.text
        await bridge.adapter.deliver("hackers", Message(HACKERS, IRC_BOB, "private again"))
        await alice.say("hackers", "private here too")
        assert (await alice.wait_for(tu.ChannelMessage, nick="xbridge")).text == "<bob> private again"
        assert (await bridge.emitted_of(Message)).text == "private here too"
        await asyncio.sleep(0.2)
        assert [m.text for m in alice.events_of(tu.ChannelMessage, nick="xbridge")] == ["<bob> private again"]
        assert not [e for e in bridge.emitted if isinstance(e, Message)]


async def test_a_wrong_passphrase_is_said_once_and_logged_without_content(silc_server, running):
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await alice.set_mode("hackers", CMODE_PRIVKEY)
        alice.set_private_key("hackers", "the real one")
        with capture_logs() as logs:
            bridge = await running(options={"passphrase": "a wrong one"}).joined()
            await alice.say("hackers", "secret one")
            await alice.say("hackers", "secret two")
            told = await bridge.emitted_of(Message, bridge=True)
            await asyncio.sleep(0.3)
        assert told.sender == BRIDGE and told.endpoint == HACKERS
        assert "messages in SILC channel hackers on silcnet cannot be read with the configured" in told.text
        assert not [e for e in bridge.emitted if isinstance(e, Message)]  # said once
        unreadable = [e for e in logs if e["event"] == "silc_message_unreadable"]
        assert [(e["log_level"], e["total"]) for e in unreadable] == [("warning", 1)]  # rate-limited
        assert not [e for e in logs if "secret" in repr(e)]


async def test_delivery_waits_for_the_join(silc_server, running):
    """The notice a link posts when it starts comes before the SILC client
    has finished its key exchange and JOIN: it must wait, not be dropped."""
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        bridge = running()
        await bridge.adapter.deliver("hackers", Message(HACKERS, BRIDGE, "linked", MessageKind.NOTICE))
        assert (await alice.wait_for(tu.ChannelMessage, nick="xbridge")).text == "linked"
