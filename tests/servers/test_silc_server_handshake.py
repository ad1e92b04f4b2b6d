"""Key exchange and connection authentication of the SILC test server."""

from __future__ import annotations

import asyncio

import pytest

from tests.servers.silc import (
    ChannelMessage,
    Refused,
    ServerKeyMismatch,
    SilcTestServer,
    TestUser,
    cached_key_pair,
)
from tests.servers.silc.crypto import DH_GENERATOR, DH_GROUPS, PK_TYPE_SILC, digest, mp_bytes
from tests.servers.silc.numbers import SKE_MUTUAL, PacketType, SkeStatus
from tests.servers.silc.packet import Packet, PacketStream
from tests.servers.silc.ske import VERSION, KePayload, StartPayload

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def server():
    async with SilcTestServer() as s:
        yield s


async def open_stream(port: int) -> PacketStream:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return PacketStream(reader, writer)


def proposal(**changes) -> StartPayload:
    fields = dict(flags=0, cookie=bytes(range(16)), version=VERSION,
                  groups="diffie-hellman-group1,diffie-hellman-group2", pkcs="rsa,dss",
                  ciphers="twofish-256-cbc,aes-128-cbc,aes-256-cbc", hashes="sha1,sha256",
                  hmacs="hmac-sha1-96,hmac-sha256-96")
    fields.update(changes)
    return StartPayload(**fields)


async def start(port: int, offer: StartPayload) -> tuple[PacketStream, bytes, Packet]:
    stream = await open_stream(port)
    sent = offer.encode()
    stream.send(Packet(PacketType.KEY_EXCHANGE, sent))
    return stream, sent, await asyncio.wait_for(stream.receive(), 5)


def ke1(sent_start: bytes, shown_key: str = "user-alice", signing_key: str = "user-alice") -> KePayload:
    """A KE payload presenting one key and signed (maybe) by another."""
    e = pow(DH_GENERATOR, 12345, DH_GROUPS["diffie-hellman-group1"])
    shown = cached_key_pair(shown_key).public.encode()
    hash_i = digest("sha1", sent_start + shown + mp_bytes(e))
    return KePayload(PK_TYPE_SILC, shown, e, cached_key_pair(signing_key).sign(hash_i))


def failure_status(packet: Packet) -> int:
    assert packet.type == PacketType.FAILURE, packet
    return int.from_bytes(packet.data, "big")


async def test_reply_takes_the_first_supported_item_of_each_list_and_forces_mutual_auth(server):
    stream, _, reply = await start(server.port, proposal())
    assert reply.type == PacketType.KEY_EXCHANGE
    assert (reply.src_type, reply.src_id) == (1, server.server_id)  # the Server ID as source
    chosen = StartPayload.decode(reply.data)
    assert chosen.cookie == bytes(range(16))
    assert chosen.flags & SKE_MUTUAL
    assert (chosen.groups, chosen.pkcs, chosen.ciphers, chosen.hashes, chosen.hmacs) == (
        "diffie-hellman-group1", "rsa", "aes-128-cbc", "sha1", "hmac-sha1-96")
    stream.writer.close()


async def test_a_list_with_nothing_supported_fails_at_once(server):
    _, _, reply = await start(server.port, proposal(ciphers="twofish-256-cbc,cast-256-cbc"))
    assert failure_status(reply) == SkeStatus.UNSUPPORTED_CIPHER


async def test_a_one_item_list_is_echoed_unchecked_and_fails_later_like_silcd(server):
    stream, sent, reply = await start(server.port, proposal(ciphers="twofish-256-cbc"))
    assert StartPayload.decode(reply.data).ciphers == "twofish-256-cbc"
    stream.send(Packet(PacketType.KEY_EXCHANGE_1, ke1(sent).encode()))
    assert failure_status(await stream.receive()) == SkeStatus.UNSUPPORTED_CIPHER


async def test_a_start_payload_without_a_silc_version_is_refused(server):
    _, _, reply = await start(server.port, proposal(version="muc-bridge 1.0"))
    assert failure_status(reply) == SkeStatus.BAD_VERSION


async def test_the_client_must_sign_with_the_key_it_shows(server):
    stream, sent, _ = await start(server.port, proposal())
    stream.send(Packet(PacketType.KEY_EXCHANGE_1, ke1(sent, signing_key="user-mallory").encode()))
    assert failure_status(await stream.receive()) == SkeStatus.INCORRECT_SIGNATURE


async def test_the_client_must_show_a_silc_public_key(server):
    stream, sent, _ = await start(server.port, proposal())
    unsigned = ke1(sent)
    unsigned.pk_type, unsigned.public_key, unsigned.signature = 0, b"", b""
    stream.send(Packet(PacketType.KEY_EXCHANGE_1, unsigned.encode()))
    assert failure_status(await stream.receive()) == SkeStatus.UNSUPPORTED_PUBLIC_KEY


async def test_the_server_signs_with_the_key_whose_fingerprint_it_publishes(server):
    async with TestUser("alice", server.port, server_fingerprint=server.fingerprint) as alice:
        assert alice.server_key == server.public_key


async def test_a_changed_server_key_is_refused_by_a_pinned_user_but_old_sessions_go_on(server):
    pinned = server.fingerprint
    async with TestUser("alice", server.port, server_fingerprint=pinned) as alice:
        await alice.join("hackers")
        new = server.change_key()
        assert new != pinned
        with pytest.raises(ServerKeyMismatch) as mismatch:
            await TestUser("bob", server.port, server_fingerprint=pinned).connect()
        assert (mismatch.value.expected, mismatch.value.got) == (pinned, new)
        async with TestUser("carol", server.port, server_fingerprint=new) as carol:
            await carol.join("hackers")
            await carol.say("hackers", "hi")
            assert (await alice.wait_for(ChannelMessage)).text == "hi"


async def test_passphrase_authentication():
    async with SilcTestServer(auth="passphrase", passphrase="sesame") as server:
        async with TestUser("alice", server.port, passphrase="sesame"):
            assert server.nicks() == ["alice"]
        with pytest.raises(Refused):
            await TestUser("bob", server.port, passphrase="wrong").connect()
        await server.wait_until(lambda s: s.connections == 0)


async def test_public_key_authentication_accepts_only_known_keys():
    alice_key = cached_key_pair("user-alice")
    async with SilcTestServer(auth="publickey", client_keys=(alice_key.public.fingerprint,)) as server:
        async with TestUser("alice", server.port, key_pair=alice_key):
            assert server.nicks() == ["alice"]
        with pytest.raises(Refused):
            await TestUser("bob", server.port).connect()
