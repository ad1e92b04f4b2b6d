"""Bad input from a client never takes the SILC test server down."""

from __future__ import annotations

import asyncio
import os
import struct

import pytest

from tests.servers.silc import ChannelMessage, Disconnected, Joined, SignedOff, SilcTestServer, TestUser
from tests.servers.silc.crypto import BLOCK_LEN
from tests.servers.silc.numbers import Cmd, PacketType
from tests.servers.silc.packet import Packet
from tests.servers.silc.wire import ID_CLIENT

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def server():
    async with SilcTestServer() as s:
        yield s


@pytest.fixture
async def pair(server):
    async with TestUser("alice", server.port) as alice, TestUser("bob", server.port) as bob:
        await alice.join("hackers")
        await bob.join("hackers")
        await alice.wait_for(Joined, nick="bob")
        yield alice, bob


async def still_serving(server: SilcTestServer) -> None:
    async with TestUser("carol", server.port) as carol:
        await carol.ping()


@pytest.mark.parametrize(
    "junk",
    [
        os.urandom(64),
        b"\x00\x20\x00\x0d\x00\x00\xff\xff" + os.urandom(40),  # absurd ID lengths
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x00\x0e\x00\x05\x06\x00\x00\x00\x00\x00" + os.urandom(10),  # NOTIFY instead of KEY_EXCHANGE
    ],
    ids=["random", "absurd-id-lengths", "ssh-banner", "notify-first"],  # stable for pytest-xdist
)
async def test_garbage_instead_of_a_key_exchange_only_costs_that_connection(server, junk):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(junk)
    await writer.drain()
    writer.close()
    await server.wait_until(lambda s: s.connections == 0)
    await still_serving(server)


async def test_a_bad_mac_closes_that_connection_and_the_channel_hears_it(server, pair):
    alice, bob = pair
    wire = bytearray(bob.stream.encode(Packet(PacketType.HEARTBEAT, b"", 0, ID_CLIENT, bob.client_id)))
    wire[-1] ^= 0x01
    bob.send_bytes(bytes(wire))
    assert (await alice.wait_for(SignedOff)).nick == "bob"
    await bob.wait_for(Disconnected)
    await alice.say("hackers", "still here")
    await still_serving(server)


async def test_malformed_payloads_are_dropped_and_the_session_goes_on(server, pair):
    alice, bob = pair
    channel = bob.channels["hackers"]
    bob.send_packet(PacketType.COMMAND, b"\x00\x09\x0e\x05\x00\x01\xff")  # 5 arguments promised, none there
    bob.send_packet(PacketType.COMMAND, b"")
    bob.send_packet(PacketType.NOTIFY, os.urandom(20))  # clients must not send NOTIFY
    bob.send_packet(PacketType.NEW_CLIENT, b"\x00\x03bob\x00\x00")  # already registered
    bob.send_packet(PacketType.REKEY_DONE)  # no rekey going on
    bob.send_packet(PacketType.CHANNEL_MESSAGE, os.urandom(64), dst=(3, channel.id))  # relayed, undecryptable
    bob.stream.send(Packet(PacketType.COMMAND, b"\x00\x06\x0c\x00\x00\x01", 0, ID_CLIENT, b"\x01" * 16))  # not bob's ID
    await bob.ping()
    await bob.say("hackers", "after the junk")
    assert (await alice.wait_for(ChannelMessage)).text == "after the junk"
    replies = await bob.command(Cmd.USERS, (2, b"hackers"))
    assert replies[0].status()[0] == 0
    assert server.nicks() == ["alice", "bob"]


async def test_an_encrypted_packet_shorter_than_a_block_closes_the_connection_like_silcd(server, pair):
    alice, bob = pair
    assert bob.session.cipher.endswith("-ctr")
    send = bob.stream.send_dir
    header = struct.pack(">HBBBBBB", 10, 0, PacketType.HEARTBEAT, 0, 0, 0, 0) + b"\x00\x00"
    send.cipher.begin_packet()
    wire = send.cipher.encrypt(header)
    assert len(wire) < BLOCK_LEN
    bob.send_bytes(wire + send.compute_mac(wire))
    await bob.wait_for(Disconnected)
    assert (await alice.wait_for(SignedOff)).nick == "bob"
