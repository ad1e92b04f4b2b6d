"""The IRC adapter on real servers: InspIRCd 3 (plain and TLS), and ngIRCd for a smoke test.

An `IrcUser` plays the person on IRC; the adapter's emitted events are what the rest of
the bridge would relay, and `deliver` is how the rest of the bridge speaks on IRC.
"""

from __future__ import annotations

import asyncio
import re
import dataclasses

import pytest
from structlog.testing import capture_logs

from bridge.config_types import FloodConfig, IrcNetworkConfig
from bridge.core.events import (
    Endpoint, Identity, Join, Kick, Message, MessageKind, NickChange, Part, Topic,
)
from bridge.irc.adapter import NICK_KEY, IrcAdapter
from bridge.irc.split import MAX_LINE
from tests.integration.clients import wait_until
from tests.servers.scripted_ircd import Recorder, running

ROOM = "#hackers"
XMPP = Endpoint("xmpp", "hackers@conference.localhost")
ALICE = Identity("xmpp", "alice@localhost", "alice")


def make_adapter(server, *, tls: bool = False, **overrides) -> tuple[IrcAdapter, Recorder]:
    config = IrcNetworkConfig(
        name="testnet", host=server.host, port=server.tls_port if tls else server.port, tls=tls,
        flood=FloodConfig(burst=20, interval=0.05), ping_timeout=30)
    events = Recorder()
    adapter = IrcAdapter(dataclasses.replace(config, **overrides), events)
    adapter.add_endpoint(ROOM, {"topic": "both"})
    return adapter, events


async def relay_joined(user, after: int = 0, nick: str = "xbridge", timeout: float = 10.0) -> None:
    """Wait until `user` sees the relay client in the channel (its JOIN, or NAMES when it
    was there first)."""
    await user.wait_for(
        lambda l: (l.command == "JOIN" and l.nick == nick)
        or (l.command == "353" and nick in l.text.replace("@", "").split()),
        timeout, after=after)


def said(text: str):
    return Message(XMPP, ALICE, text)


class Blackholing:
    """A TCP relay on a free loopback port to `host:port`. `blackhole()` makes the
    connections relayed so far drop every byte both ways and stay open, as a link that
    died without a word does; later connections pass."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = 0
        self._dead: list[list[bool]] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> Blackholing:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def blackhole(self) -> None:
        for dead in self._dead:
            dead[0] = True

    async def stop(self) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers += [writer, up_writer]
        dead = [False]
        self._dead.append(dead)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    if not dead[0]:
                        sink.write(data)
            except OSError:
                pass
            if not dead[0]:
                sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


@pytest.fixture
async def bob(inspircd, irc_user):
    """Bob made the channel (so he is its op) and let everyone set the topic."""
    bob = await irc_user(inspircd, "bob")
    await bob.join(ROOM)
    bob.send("MODE", ROOM, "-t")
    await bob.wait_for(lambda l: l.command == "MODE" and l.text == "-t")
    return bob


async def test_irc_people_speak_and_come_and_go(inspircd, irc_user, bob):
    adapter, events = make_adapter(inspircd)
    async with running(adapter):
        await relay_joined(bob)
        bob.privmsg(ROOM, "hello \x02bridge\x02 \x0304in red")
        bob.action(ROOM, "waves")
        bob.notice(ROOM, "a notice")
        bob.send("PRIVMSG", ROOM, "\x01VERSION\x01")  # other CTCP: never relayed
        await bob.set_topic(ROOM, "bridged \x1dtopic\x1d")
        carol = await irc_user(inspircd, "carol")
        await carol.join(ROOM)
        await carol.change_nick("caroline")
        bob.send("KICK", ROOM, "caroline", "too loud")
        await carol.wait_for(lambda l: l.command == "KICK")
        await carol.join(ROOM)
        await carol.part(ROOM, "lunch")
        await carol.join(ROOM)
        await carol.quit("gone home")
        await events.wait_for(lambda e: isinstance(e, Part) and e.quit)

        bob_id = Identity("testnet", NICK_KEY + "bob", "bob")
        msgs = events.of(Message)
        assert [(m.sender, m.text, m.kind) for m in msgs] == [
            (bob_id, "hello *bridge* in red", MessageKind.PLAIN),
            (bob_id, "waves", MessageKind.ACTION),
            (bob_id, "a notice", MessageKind.NOTICE),
        ]
        assert all(m.endpoint == Endpoint("testnet", ROOM) and m.native_id for m in msgs)
        assert [(t.sender, t.text) for t in events.of(Topic)] == [(bob_id, "bridged _topic_")]
        carol_id, caroline = (Identity("testnet", NICK_KEY + n, n) for n in ("carol", "caroline"))
        assert [e.sender for e in events.of(Join)] == [carol_id, caroline, caroline]
        assert [(e.sender, e.new_nick) for e in events.of(NickChange)] == [(carol_id, "caroline")]
        assert [(k.sender, k.target, k.reason) for k in events.of(Kick)] == [(bob_id, caroline, "too loud")]
        assert [(p.reason, p.quit) for p in events.of(Part)] == [("lunch", False), ("gone home", True)]


async def test_line_breaks_from_elsewhere_arrive_as_text_and_the_relay_stays(inspircd, bob):
    adapter, _ = make_adapter(inspircd)
    async with running(adapter):
        await relay_joined(bob)
        mark = bob.lines.mark()
        await adapter.deliver(ROOM, said("hi\r\nQUIT :x"))
        await adapter.deliver(ROOM, said("through Prosody it is an LF\nQUIT :y\x00"))
        await adapter.deliver(ROOM, said("still here"))
        await bob.wait_for_privmsg(ROOM, "<alice> still here", sender="xbridge", after=mark)
        assert [l.text for l in bob.privmsgs(ROOM, after=mark)] == [
            "<alice> hi", "<alice> QUIT :x", "<alice> through Prosody it is an LF",
            "<alice> QUIT :y", "<alice> still here"]
        assert not bob.lines.matching(lambda l: l.command == "QUIT", after=mark)


async def test_long_and_multiline_messages_arrive_as_lines_that_fit(inspircd, bob):
    adapter, _ = make_adapter(inspircd, max_lines=3)
    async with running(adapter):
        await relay_joined(bob)
        mark = bob.lines.mark()
        words = [f"größe{i}✓" for i in range(90)]  # about 1.2 kB of multi-byte text
        await adapter.deliver(ROOM, said(" ".join(words)))
        await adapter.deliver(ROOM, said("\n".join(f"line {i}" for i in range(6))))
        await adapter.deliver(ROOM, Message(XMPP, ALICE, "stretches", MessageKind.ACTION))
        await bob.wait_for_privmsg(ROOM, "* alice stretches", after=mark)
        lines = bob.privmsgs(ROOM, after=mark)
        for line in lines:  # as relayed to bob, with the relay's full prefix
            assert len(line.raw.encode()) + 2 <= MAX_LINE
        long_part, multi, action = lines[:-4], lines[-4:-1], lines[-1]
        shown = [w for l in long_part for w in l.text.removeprefix("<alice> ").split()]
        assert shown == words and len(long_part) == 3
        assert [l.text for l in multi] == ["<alice> line 0", "<alice> line 1", "<alice> [… 4 more lines cut]"]
        assert action.text == "* alice stretches"


async def test_topic_from_elsewhere_becomes_the_channel_topic(inspircd, bob):
    adapter, events = make_adapter(inspircd)
    async with running(adapter):
        await relay_joined(bob)
        await adapter.deliver(ROOM, Topic(XMPP, ALICE, "set from XMPP"))
        line = await bob.wait_for(lambda l: l.command == "TOPIC")
        assert line.nick == "xbridge" and line.text == "set from XMPP"
        await asyncio.sleep(0.2)
        assert events.of(Topic) == []  # our own change is not an event


async def test_tls_with_a_self_signed_certificate_when_verification_is_off(inspircd, bob):
    adapter, events = make_adapter(inspircd, tls=True, tls_verify=False)
    assert adapter.security() == [
        f"IRC testnet: TLS, certificate NOT verified, server {inspircd.host}:{inspircd.tls_port}"]
    async with running(adapter):
        await relay_joined(bob)
        bob.privmsg(ROOM, "over TLS")
        await events.wait_for(lambda e: isinstance(e, Message) and e.text == "over TLS")
        await adapter.deliver(ROOM, said("back over TLS"))
        await bob.wait_for_privmsg(ROOM, "<alice> back over TLS")
        # connected, the report names the protocol version and cipher negotiated
        [line] = adapter.security()
        assert re.fullmatch(rf"IRC testnet: TLS TLSv1\.[23] \([A-Z0-9_-]+\), certificate NOT verified, "
                            rf"server {inspircd.host}:{inspircd.tls_port}", line), line


async def test_tls_verification_is_on_by_default(inspircd, bob):
    adapter, _ = make_adapter(inspircd, tls=True)
    with capture_logs() as logs:
        async with running(adapter):
            await asyncio.sleep(1.5)
    failures = [e for e in logs if e["event"] == "irc_connect_failed"]
    assert failures and "CERTIFICATE_VERIFY_FAILED" in failures[0]["error"]
    assert not any(e["event"] == "irc_registered" for e in logs)
    assert not bob.lines.matching(lambda l: l.command == "JOIN" and l.nick == "xbridge")


async def test_reconnects_and_rejoins_after_a_server_restart(inspircd, irc_user):
    adapter, events = make_adapter(inspircd)
    async with running(adapter):
        dave = await irc_user(inspircd, "dave")
        await dave.join(ROOM)
        await relay_joined(dave)
        await inspircd.stop()
        await inspircd.start()
        erin = await irc_user(inspircd, "erin")
        await erin.join(ROOM)
        await relay_joined(erin, timeout=20)
        erin.privmsg(ROOM, "welcome back")
        await events.wait_for(lambda e: isinstance(e, Message) and e.text == "welcome back")
        await adapter.deliver(ROOM, said("glad to be back"))
        await erin.wait_for_privmsg(ROOM, "<alice> glad to be back")
        assert adapter.client.connections >= 2


@pytest.mark.parametrize("inspircd", [{"password": "letmein"}], indirect=True)
async def test_server_password(inspircd, irc_user):
    adapter, _ = make_adapter(inspircd, password="letmein")
    async with running(adapter):
        frank = await irc_user(inspircd, "frank", password="letmein")
        await frank.join(ROOM)
        await relay_joined(frank)


async def test_ngircd_smoke(ngircd, irc_user):
    adapter, events = make_adapter(ngircd)
    async with running(adapter):
        grace = await irc_user(ngircd, "grace")
        await grace.join(ROOM)
        await relay_joined(grace)
        grace.privmsg(ROOM, "hi from \x02ngIRCd\x02")
        grace.action(ROOM, "nods")
        await events.wait_for(lambda e: isinstance(e, Message) and e.kind is MessageKind.ACTION)
        assert [(m.sender.nick, m.text) for m in events.of(Message)] == [
            ("grace", "hi from *ngIRCd*"), ("grace", "nods")]
        await adapter.deliver(ROOM, said("hello classic IRC\r\nQUIT :x"))
        await grace.wait_for_privmsg(ROOM, "<alice> QUIT :x", sender="xbridge")
        await grace.quit("bye")
        await events.wait_for(lambda e: isinstance(e, Part) and e.quit)


async def test_lines_written_into_a_blackholed_link_arrive_once_after_the_reconnect(inspircd, bob):
    proxy = await Blackholing(inspircd.host, inspircd.port).start()
    try:
        adapter, _ = make_adapter(inspircd, port=proxy.port, ping_timeout=3)
        async with running(adapter):
            await relay_joined(bob)
            await adapter.deliver(ROOM, said("before"))
            await bob.wait_for_privmsg(ROOM, "<alice> before")
            await wait_until(lambda: adapter.client.outbox.unconfirmed == 0)  # InspIRCd has it
            proxy.blackhole()  # InspIRCd keeps the old connection; nothing passes any more
            for i in range(5):
                await adapter.deliver(ROOM, said(f"into the void {i}"))
            await bob.wait_for_privmsg(ROOM, "<alice> into the void 4", timeout=20)
            await adapter.deliver(ROOM, said("after"))
            await bob.wait_for_privmsg(ROOM, "<alice> after")
            assert [line.text for line in bob.privmsgs(ROOM)] == [
                "<alice> before", *(f"<alice> into the void {i}" for i in range(5)), "<alice> after"]
            assert adapter.client.connections == 2
    finally:
        await proxy.stop()
