import asyncio
import pytest

from bridge.silc import events as ev
from bridge.silc.client import ClientConfig, SilcClient
from bridge.silc.ids import encode_id_payload
from bridge.silc.message import ChannelKey, MessageFlag, decrypt_channel_message
from bridge.silc.packet import PacketType
from bridge.silc.payloads import Command, Notify
from bridge.silc.session import SessionConfig

from .fakeserver import FakeServer
from .keys import key_pair


class Servers:
    """A listening socket that gives each connection its own FakeServer."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.instances: list[FakeServer] = []
        self.writers = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        for w in self.writers:
            w.close()

    async def _accept(self, reader, writer):
        fake = FakeServer(**self.kwargs)
        self.instances.append(fake)
        self.writers.append(writer)
        await fake.serve(reader, writer)

    async def wait_for(self, predicate, timeout=5.0):
        async def poll():
            while not predicate():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout)


def client_for(servers, events, **overrides):
    cfg = ClientConfig(
        host="127.0.0.1",
        port=servers.port,
        nick="xbridge",
        session=SessionConfig(username="xb", realname="relay", auth_request_timeout=0.05),
        tick=0.05,
        backoff_base=0.01,
        backoff_max=0.05,
        rejoin_delay=0.05,
        **overrides,
    )
    client = SilcClient("silcnet", cfg, key_pair("client"), lambda key: None, events.append)
    client.add_channel("hackers")
    return client


def commands(fake, command):
    return [c for c in fake.commands if c.command == command]


async def test_connects_sets_nick_joins_and_relays_events():
    events = []
    async with Servers() as servers:
        client = client_for(servers, events)
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: client.channel("HACKERS") is not None)
        fake = servers.instances[0]
        assert commands(fake, Command.NICK)[0].args.get(1) == b"xbridge"
        alice = fake.add_user(5, "alice")
        fake.notify(Notify.JOIN, (1, encode_id_payload(alice)), (2, encode_id_payload(fake.channel_id)))
        await servers.wait_for(lambda: events)
        assert isinstance(events[0], ev.Joined) and events[0].user.nick == "alice"
        await client.close("bye")
        await servers.wait_for(lambda: commands(fake, Command.QUIT))
        await asyncio.wait_for(task, 2)
        assert commands(fake, Command.QUIT)[0].args.get(1) == b"bye"


async def test_reconnects_and_rejoins_after_the_server_drops_it():
    async with Servers() as servers:
        client = client_for(servers, [])
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: client.channel("hackers") is not None)
        servers.writers[0].close()  # the server goes away
        await servers.wait_for(lambda: len(servers.instances) == 2 and client.channel("hackers") is not None)
        assert commands(servers.instances[1], Command.JOIN)
        await client.close()
        await asyncio.wait_for(task, 2)


async def test_unanswered_ping_means_reconnect():
    async with Servers() as servers:
        client = client_for(servers, [], heartbeat=0.05, ping_timeout=0.1)
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: servers.instances and servers.instances[0].registered)
        servers.instances[0].silent_commands.add(Command.PING)
        await servers.wait_for(lambda: len(servers.instances) == 2)
        assert servers.instances[0].packets(PacketType.HEARTBEAT)
        await client.close()
        await asyncio.wait_for(task, 2)


async def test_a_server_gone_silent_is_left_within_ping_timeout():
    async with Servers() as servers:
        client = client_for(servers, [], ping_timeout=0.3)
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: client.channel("hackers") is not None)
        servers.instances[0].muted = True  # the socket stays open
        await servers.wait_for(lambda: len(servers.instances) == 2 and client.channel("hackers") is not None)
        assert "nothing from the server" in client.last_error
        await client.close()
        await asyncio.wait_for(task, 2)


async def test_a_quiet_link_is_pinged_and_kept():
    async with Servers() as servers:
        client = client_for(servers, [], ping_timeout=0.3)
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: client.channel("hackers") is not None)
        fake = servers.instances[0]
        await servers.wait_for(lambda: len(commands(fake, Command.PING)) >= 3)
        assert len(servers.instances) == 1 and client.connected
        await client.close()
        await asyncio.wait_for(task, 2)


async def test_any_bytes_from_the_server_prove_the_link_alive():
    async with Servers() as servers:
        client = client_for(servers, [], ping_timeout=0.3)
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: client.channel("hackers") is not None)
        fake = servers.instances[0]
        fake.silent_commands.add(Command.PING)
        for _ in range(20):  # 1 s of notices, no PING answered
            fake.notify(Notify.NONE, (1, b"still here"))
            await asyncio.sleep(0.05)
        assert len(servers.instances) == 1 and client.connected
        await client.close()
        await asyncio.wait_for(task, 2)


async def test_the_socket_fails_on_its_own_after_ping_timeout(monkeypatch):
    """TCP keepalive and TCP_USER_TIMEOUT: a write into a dead route fails too."""
    import bridge.silc.client as client_module

    bounded = []
    monkeypatch.setattr(client_module, "bound_silence", lambda sock, timeout: bounded.append((sock, timeout)))
    async with Servers() as servers:
        client = client_for(servers, [], ping_timeout=7.0)
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: client.channel("hackers") is not None)
        assert [t for _, t in bounded] == [7.0] and bounded[0][0].fileno() >= 0
        await client.close()
        await asyncio.wait_for(task, 2)


async def test_a_private_key_channel_the_bridge_founds_gets_the_private_key_mode():
    """After a server restart the bridge may be first to join and re-create
    the channel, without the mode: it sets it before relaying anything."""
    events = []
    async with Servers(client_founds=True) as servers:
        client = client_for(servers, events)
        client.add_channel("hackers", ChannelKey.from_passphrase("open sesame"))
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: client.channel("hackers") is not None)
        fake = servers.instances[0]
        assert [c.args.get(2) for c in commands(fake, Command.CMODE)] == [b"\x00\x00\x00\x04"]
        assert client.channel("hackers").secured
        await asyncio.sleep(0.2)
        assert not [e for e in events if isinstance(e, ev.RelayState)]  # nothing was paused
        await client.close()
        await asyncio.wait_for(task, 2)


async def test_relaying_pauses_while_a_private_key_channel_lacks_the_mode():
    events = []
    async with Servers() as servers:  # someone else founded the channel, without the mode
        client = client_for(servers, events)
        client.add_channel("hackers", ChannelKey.from_passphrase("open sesame"))
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: [e for e in events if isinstance(e, ev.RelayState)])
        fake = servers.instances[0]
        assert not commands(fake, Command.CMODE)  # only the founder may set it
        paused = [e for e in events if isinstance(e, ev.RelayState)]
        assert paused == [ev.RelayState("hackers", paused[0].paused)] and "founder" in paused[0].paused
        alice = fake.add_user(5, "alice")
        fake.notify(Notify.CMODE_CHANGE, (1, encode_id_payload(alice)), (2, b"\x00\x00\x00\x04"),
                    dst=fake.channel_id)
        await servers.wait_for(lambda: events[-1] == ev.RelayState("hackers", None))
        assert len([e for e in events if isinstance(e, ev.RelayState)]) == 2
        await client.close()
        await asyncio.wait_for(task, 2)


async def test_sent_messages_are_confirmed_by_a_ping_and_the_unconfirmed_resent_after_a_reconnect():
    async with Servers() as servers:
        client = client_for(servers, [], ping_timeout=2.0, barrier_gap=0.0)
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: client.channel("hackers") is not None)
        first = servers.instances[0]
        for text in (b"one", b"two"):
            client.send(client.channel("hackers"), text, MessageFlag.UTF8)
        await servers.wait_for(lambda: len(client.outbox) == 0)
        assert len(commands(first, Command.PING)) == 1  # one barrier for the batch
        first.muted = True  # it reads on, but confirms nothing
        client.send(client.channel("hackers"), b"three", MessageFlag.UTF8)
        await servers.wait_for(lambda: len(servers.instances) == 2 and client.channel("hackers") is not None)
        second = servers.instances[1]
        await servers.wait_for(lambda: second.packets(PacketType.CHANNEL_MESSAGE))
        await asyncio.sleep(0.1)
        sent = [decrypt_channel_message([second.channel_key], p.payload, p.src.data, p.dst.data)[0].data
                for p in second.packets(PacketType.CHANNEL_MESSAGE)]
        assert sent == [b"three"]
        await servers.wait_for(lambda: len(client.outbox) == 0)
        await client.close()
        await asyncio.wait_for(task, 2)


async def test_rejoins_after_being_kicked():
    events = []
    async with Servers() as servers:
        client = client_for(servers, events)
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: client.channel("hackers") is not None)
        fake = servers.instances[0]
        fake.notify(Notify.KICKED, (1, encode_id_payload(fake.client)), (2, b"go"), dst=fake.channel_id)
        await servers.wait_for(lambda: len(commands(fake, Command.JOIN)) == 2)
        await servers.wait_for(lambda: client.channel("hackers") is not None)
        removed, gap = events[-2:]  # out of the channel, then back: what was missed is said
        assert isinstance(removed, ev.SelfRemoved) and isinstance(gap, ev.Gap)
        assert gap.channel == "hackers" and gap.since <= gap.until
        await client.close()
        await asyncio.wait_for(task, 2)


async def test_rekey_after_the_configured_amount_of_data():
    async with Servers() as servers:
        client = client_for(servers, [], rekey_bytes=1)
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: servers.instances and servers.instances[0].rekeys >= 1)
        await client.session.ping()  # both sides switched to the same new keys
        assert servers.instances[0].packets(PacketType.REKEY_DONE)
        await client.close()
        await asyncio.wait_for(task, 2)


async def test_close_waits_for_the_server_to_hang_up_after_quit():
    """silcd may run QUIT 2 s late; closing first would let it close a newer
    connection that reuses the socket."""
    async with Servers() as servers:
        client = client_for(servers, [])
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: client.channel("hackers") is not None)
        fake = servers.instances[0]
        fake.closes_on_quit = False
        closing = asyncio.create_task(client.close("bye"))
        await servers.wait_for(lambda: commands(fake, Command.QUIT))
        await asyncio.sleep(0.2)
        assert not closing.done() and fake.client_hung_up is None
        fake.hang_up()
        await asyncio.wait_for(closing, 2)
        await servers.wait_for(lambda: fake.client_hung_up is not None)
        assert fake.client_hung_up is False
        await asyncio.wait_for(task, 2)


async def test_close_is_bounded_when_the_server_never_hangs_up():
    async with Servers() as servers:
        client = client_for(servers, [], quit_timeout=0.3)
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: client.channel("hackers") is not None)
        fake = servers.instances[0]
        fake.closes_on_quit = False
        await asyncio.wait_for(client.close("bye"), 2)
        assert commands(fake, Command.QUIT)
        await servers.wait_for(lambda: fake.client_hung_up is True)
        await asyncio.wait_for(task, 2)


async def test_quit_waits_for_unanswered_commands():
    async with Servers() as servers:
        client = client_for(servers, [])
        task = asyncio.create_task(client.run())
        await servers.wait_for(lambda: client.channel("hackers") is not None)
        fake = servers.instances[0]
        fake.silent_commands.add(Command.PING)
        ping = asyncio.create_task(client.session.ping())
        await servers.wait_for(lambda: commands(fake, Command.PING))
        closing = asyncio.create_task(client.close("bye"))
        await asyncio.sleep(0.2)
        assert not commands(fake, Command.QUIT)
        fake.reply(commands(fake, Command.PING)[-1])
        await asyncio.wait_for(ping, 2)
        await asyncio.wait_for(closing, 2)
        assert commands(fake, Command.QUIT) and fake.client_hung_up is not True
        await asyncio.wait_for(task, 2)


async def test_backoff_grows_while_the_server_is_down():
    async with Servers() as servers:
        pass  # closed again: every connection attempt is refused
    client = client_for(servers, [], connect_timeout=0.2)
    sleeps = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay):
        sleeps.append(delay)
        if len(sleeps) >= 5:
            await client.close()
        await real_sleep(0)

    import bridge.silc.client as client_module

    client_module.asyncio.sleep = fake_sleep
    try:
        await asyncio.wait_for(client.run(), 5)
    finally:
        client_module.asyncio.sleep = real_sleep
    assert len(sleeps) == 5
    assert all(0 < s <= 0.05 for s in sleeps)
    assert sleeps[0] <= 0.01  # base delay, halved at most by jitter


pytestmark = pytest.mark.timeout(30)
