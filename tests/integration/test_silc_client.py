"""The SILC client (bridge/silc) against the spec-following test server in
tests/servers/silc, with TestUser playing real SILC users. Each side was
written from the drafts on its own, so a shared misreading cannot hide in a
fake written together with the client."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bridge.silc import events as ev
from bridge.silc.client import ClientConfig, SilcClient
from bridge.silc.message import ChannelKey, MessageFlag
from bridge.silc.session import SessionConfig
from bridge.silc.ske import Proposal
from tests.servers.silc import user as tu
from tests.servers.silc.server import SilcTestServer
from tests.servers.silc.user import TestUser
from tests.unit.silc.keys import key_pair

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class Bridge:
    """A SilcClient with its events in a list."""

    def __init__(
        self,
        port: int,
        nick: str = "xbridge",
        password: str | None = None,
        proposal: Proposal = Proposal(),
        **tuning,
    ):
        self.events: list = []
        session = SessionConfig(username="xb", realname="relay", password=password, proposal=proposal)
        config = ClientConfig(
            host="127.0.0.1",
            port=port,
            nick=nick,
            session=session,
            tick=0.1,
            backoff_base=0.05,
            backoff_max=0.2,
            rejoin_delay=0.1,
            **tuning,
        )
        self.client = SilcClient(
            "silcnet", config, key_pair("bridge", 2048), lambda key: None, self.events.append
        )
        self.task: asyncio.Task | None = None

    async def start(self, *channels: str, passphrase: str | None = None) -> Bridge:
        for name in channels:
            self.client.add_channel(name, ChannelKey.from_passphrase(passphrase) if passphrase else None)
        self.task = asyncio.create_task(self.client.run())
        await self.until(lambda: all(self.client.channel(c) for c in channels) and self.client.connected)
        return self

    async def until(self, predicate, timeout: float = 5.0) -> None:
        async def poll():
            while not predicate():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout)

    async def event(self, kind, timeout: float = 5.0, **match):
        found: list = []

        def check():
            for e in self.events:
                if isinstance(e, kind) and all(getattr(e, k) == v for k, v in match.items()):
                    self.events.remove(e)
                    found.append(e)
                    return True
            return False

        await self.until(check, timeout)
        return found[0]

    def say(self, channel: str, text: str, flags: int = MessageFlag.UTF8) -> None:
        self.client.session.send_channel_message(self.client.channel(channel), text.encode(), flags)

    async def stop(self) -> None:
        await self.client.close("bye")
        if self.task:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.task, 5)


@pytest.fixture
async def make_bridge():
    """Bridge(...) factory; every bridge made is stopped at teardown."""
    made: list[Bridge] = []

    def make(*args, **kwargs) -> Bridge:
        made.append(Bridge(*args, **kwargs))
        return made[-1]

    yield make
    for b in made:
        await b.stop()


@pytest.fixture
async def bridge(silc_server, make_bridge):
    return await make_bridge(silc_server.port).start("hackers")


@pytest.mark.parametrize(
    "proposal,negotiated",
    [
        (Proposal(), ("aes-256-cbc", "hmac-sha256-96", "diffie-hellman-group2")),
        (
            Proposal(ciphers=("aes-256-ctr", "aes-256-cbc")),
            ("aes-256-ctr", "hmac-sha256-96", "diffie-hellman-group2"),
        ),
        (
            Proposal(
                groups=("diffie-hellman-group1", "diffie-hellman-group2"),
                ciphers=("aes-128-cbc", "aes-256-cbc"),
                hashes=("sha1", "sha256"),
                hmacs=("hmac-sha1-96", "hmac-sha256-96"),
            ),
            ("aes-128-cbc", "hmac-sha1-96", "diffie-hellman-group1"),
        ),
        (
            Proposal(ciphers=("aes-192-ctr", "aes-256-cbc"), pfs=True),
            ("aes-192-ctr", "hmac-sha256-96", "diffie-hellman-group2"),
        ),
        # HMAC keys are whole SKE hash outputs (silc-ke-auth 2.3), whatever the HMAC's own hash
        (
            Proposal(hashes=("sha256",), hmacs=("hmac-sha1-96", "hmac-sha256-96")),
            ("aes-256-cbc", "hmac-sha1-96", "diffie-hellman-group2"),
        ),
        (
            Proposal(hashes=("sha1", "sha256"), hmacs=("hmac-sha256-96",)),
            ("aes-256-cbc", "hmac-sha256-96", "diffie-hellman-group2"),
        ),
    ],
)
async def test_key_exchange_variants_then_messages_both_ways(silc_server, make_bridge, proposal, negotiated):
    b = await make_bridge(silc_server.port, proposal=proposal).start("hackers")
    n = b.client.session.ske.negotiated
    assert (n.cipher, n.hmac, n.group) == negotiated
    assert b.client.session.ske.server_key.fingerprint == silc_server.fingerprint.upper()
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await alice.say("hackers", "hello bridge")
        msg = await b.event(ev.ChannelMessage)
        assert (msg.user.nick, msg.data, msg.channel) == ("alice", b"hello bridge", "hackers")
        assert msg.user.fingerprint == alice.fingerprint.upper()
        b.say("hackers", "<bob> hi alice")
        got = await alice.wait_for(tu.ChannelMessage, nick="xbridge")
        assert got.text == "<bob> hi alice" and not got.action


async def test_action_and_notice_flags_both_ways(bridge, silc_server):
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await alice.say("hackers", "waves", action=True)
        await alice.say("hackers", "fyi", notice=True)
        action = await bridge.event(ev.ChannelMessage, data=b"waves")
        notice = await bridge.event(ev.ChannelMessage, data=b"fyi")
        assert action.flags & MessageFlag.ACTION and notice.flags & MessageFlag.NOTICE
        bridge.say("hackers", "bob dances", MessageFlag.UTF8 | MessageFlag.ACTION)
        assert (await alice.wait_for(tu.ChannelMessage, text="bob dances")).action


async def test_second_client_sees_everything_relayed_under_rotating_channel_keys(bridge, silc_server):
    """Every join and leave makes a new channel key (silc-spec 4.3, 4.4)."""
    async with TestUser("alice", silc_server.port) as alice, TestUser("carol", silc_server.port) as carol:
        await alice.join("hackers")
        await carol.join("hackers")
        await carol.leave("hackers")
        await alice.say("hackers", "after two key changes")
        assert (await bridge.event(ev.ChannelMessage)).data == b"after two key changes"
        bridge.say("hackers", "still readable")
        await alice.wait_for(tu.ChannelMessage, text="still readable")


async def test_join_leave_nick_topic_kick_and_quit_notifies(bridge, silc_server):
    async with TestUser("alice", silc_server.port) as alice, TestUser("dave", silc_server.port) as dave:
        await alice.join("hackers")
        joined = await bridge.event(ev.Joined)
        assert joined.user.nick == "alice" and joined.user.fingerprint == alice.fingerprint.upper()

        await alice.set_nick("alicia")
        nick = await bridge.event(ev.NickChanged)
        assert (nick.user.nick, nick.new_nick, nick.channels) == ("alice", "alicia", ("hackers",))

        await alice.set_topic("hackers", "SILC and XMPP")
        topic = await bridge.event(ev.TopicSet)
        assert (topic.topic, topic.user.nick) == ("SILC and XMPP", "alicia")

        await dave.join("hackers")
        await bridge.event(ev.Joined, channel="hackers")
        await silc_server.kick("dave", "hackers", "bye dave")  # alice is no operator there
        kick = await bridge.event(ev.Kicked)
        assert (kick.target.nick, kick.kicker, kick.reason) == ("dave", None, "bye dave")

        await alice.leave("hackers")
        left = await bridge.event(ev.Left)
        assert (left.user.nick, left.quit) == ("alicia", False)
        await alice.join("hackers")
        await bridge.event(ev.Joined)
        await alice.quit("gone home")
        quit_ = await bridge.event(ev.Left)
        assert (quit_.user.nick, quit_.quit, quit_.reason) == ("alicia", True, "gone home")
        assert quit_.user.fingerprint == alice.fingerprint.upper()  # same key, same identity


async def test_own_messages_and_joins_produce_no_events(bridge, silc_server):
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await bridge.event(ev.Joined)
        bridge.say("hackers", "echo?")
        await alice.wait_for(tu.ChannelMessage, text="echo?")
        await asyncio.sleep(0.2)
        assert not [e for e in bridge.events if not isinstance(e, ev.Joined)]


async def test_private_message_reaches_the_session(bridge, silc_server):
    async with TestUser("alice", silc_server.port) as alice:
        await alice.msg("xbridge", "psst")
        pm = await bridge.event(ev.PrivateMessage)
        assert (pm.user.nick, pm.data) == ("alice", b"psst")


async def test_commands_against_the_server(bridge, silc_server):
    session = bridge.client.session
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        found = await session.identify("alice")
        assert [n for _, n in found] == ["alice"]
        user = await session.whois(found[0][0].data)
        assert user.fingerprint == alice.fingerprint.upper()
        channel = bridge.client.channel("hackers")
        assert len(await session.users(channel)) == 2
        await session.set_topic(channel, "from the bridge")
        assert silc_server.topic("hackers") == "from the bridge"
        await session.ping()


@pytest.mark.parametrize("cipher", ["aes-256-cbc", "aes-128-ctr"])
@pytest.mark.parametrize("pfs", [False, True])
async def test_rekey_keeps_the_connection_working(silc_server, make_bridge, pfs, cipher):
    proposal = Proposal(pfs=pfs, ciphers=(cipher, "aes-256-cbc"))
    b = await make_bridge(silc_server.port, proposal=proposal).start("hackers")
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        old = b.client.session._send_key
        b.client.session.start_rekey()
        await b.until(lambda: b.client.session._rekey is None)
        assert b.client.session._send_key != old
        await b.client.session.ping()
        await alice.say("hackers", "after rekey")
        assert (await b.event(ev.ChannelMessage)).data == b"after rekey"
        b.client.session.start_rekey()  # a second rekey starts from the first one's keys
        await b.until(lambda: b.client.session._rekey is None)
        await b.client.session.ping()


async def test_rekey_after_the_configured_amount_of_data(silc_server, make_bridge):
    b = await make_bridge(silc_server.port, rekey_bytes=2000).start("hackers")
    old = b.client.session._send_key
    for _ in range(20):
        b.say("hackers", "x" * 100)
    await b.until(lambda: b.client.session._send_key != old and b.client.session._rekey is None, 5)
    await b.client.session.ping()


@pytest.mark.parametrize("auth", ["passphrase", "publickey"])
async def test_connection_authentication(make_bridge, auth):
    fp = key_pair("bridge", 2048).public.fingerprint
    async with SilcTestServer(
        auth=auth, passphrase="sesame" if auth == "passphrase" else None, client_keys=(fp,)
    ) as server:
        b = await make_bridge(server.port, password="sesame" if auth == "passphrase" else None).start(
            "hackers"
        )
        assert "xbridge" in server.nicks()
        await b.stop()


async def test_wrong_passphrase_is_refused(make_bridge):
    async with SilcTestServer(auth="passphrase", passphrase="sesame") as server:
        b = make_bridge(server.port, password="wrong")
        b.task = asyncio.create_task(b.client.run())
        await b.until(lambda: b.client.last_error is not None)
        assert "authentication" in b.client.last_error and not server.nicks()
        await b.stop()


async def test_reconnects_and_rejoins_after_the_server_drops_everyone(bridge, silc_server):
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await silc_server.drop_all()
    await silc_server.wait_until(lambda s: "xbridge" in s.channel_nicks("hackers"), 10)
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await bridge.until(lambda: bridge.client.channel("hackers") is not None)
        await alice.say("hackers", "welcome back")
        assert (await bridge.event(ev.ChannelMessage, data=b"welcome back")).user.nick == "alice"


async def test_rejoins_after_a_kick(bridge, silc_server):
    await silc_server.kick("xbridge", "hackers", "out")
    await bridge.event(ev.SelfRemoved)
    await silc_server.wait_until(lambda s: "xbridge" in s.channel_nicks("hackers"), 5)


async def test_killed_users_leave_as_quits(bridge, silc_server):
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await bridge.event(ev.Joined)
        await silc_server.kill("alice", "flooding")
        left = await bridge.event(ev.Left)
        assert left.quit and "flooding" in left.reason


async def test_channel_private_key_from_a_passphrase(silc_server, make_bridge):
    """silc-commands CMODE PRIVKEY: only clients with the passphrase read the
    channel; the servers cannot."""
    b = await make_bridge(silc_server.port).start("secret", passphrase="open sesame")
    async with TestUser("alice", silc_server.port) as alice, TestUser("eve", silc_server.port) as eve:
        await alice.join("secret")
        await eve.join("secret")
        alice.set_private_key("secret", "open sesame")
        eve.set_private_key("secret", "wrong guess")
        await alice.say("secret", "for key holders")
        await eve.say("secret", "eve under another key")
        assert (await b.event(ev.ChannelMessage)).data == b"for key holders"
        b.say("secret", "<bob> private reply")
        assert (await alice.wait_for(tu.ChannelMessage, nick="xbridge")).text == "<bob> private reply"
        await asyncio.sleep(0.2)
        assert not [e for e in b.events if isinstance(e, ev.ChannelMessage)]  # eve's stayed unreadable
        assert not eve.events_of(tu.ChannelMessage, nick="xbridge")


async def test_close_returns_once_the_server_has_taken_the_quit(bridge, silc_server):
    """The socket stays open until the server closes it after QUIT (silcd
    runs a late QUIT on whatever connection has reused a closed socket)."""
    async with TestUser("alice", silc_server.port) as alice:
        await alice.join("hackers")
        await bridge.client.close("see you")
        assert "xbridge" not in silc_server.nicks()
        assert (await alice.wait_for(tu.SignedOff, nick="xbridge")).message == "see you"
