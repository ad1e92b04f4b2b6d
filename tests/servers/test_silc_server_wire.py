"""Byte layouts of the SILC test server's codec: round trips, draft rules, random input."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.servers.silc.crypto import KeyPair, SessionCipher, SilcPublicKey, cached_key_pair, derive_keys
from tests.servers.silc.message import (
    ChannelKey,
    decode_channel_message,
    encode_channel_message,
)
from tests.servers.silc.numbers import PacketFlag, PacketType
from tests.servers.silc.packet import MalformedPacket, Packet, PacketError, PacketStream, pad_length
from tests.servers.silc.ske import KePayload, StartPayload
from tests.servers.silc.wire import (
    ArgMap,
    ChannelKeyPayload,
    Command,
    ConnectionAuth,
    DecodeError,
    NewClient,
    Notify,
    SilcId,
    decode_id_list,
)

DECODE_ERRORS = (DecodeError, UnicodeDecodeError)


def test_padding_follows_silc_pp_2_7():
    assert pad_length(10, 16) == 22  # 16 - 10 = 6 is under 8: add a block
    assert pad_length(8, 16) == 8
    assert pad_length(32, 16) == 16
    assert all((n + pad_length(n, 16)) % 16 == 0 for n in range(200))


def test_key_stretching_concatenates_hashes_of_the_material_and_earlier_parts():
    data = os.urandom(40)
    keys = derive_keys("sha1", data, 32)  # SHA-1 gives 20 bytes: needs K1 | K2
    k1 = hashlib.sha1(b"\x02" + data).digest()
    k2 = hashlib.sha1(data + k1).digest()
    assert keys.send_key == (k1 + k2)[:32]
    assert keys.send_iv == hashlib.sha1(b"\x00" + data).digest()[:16]
    assert keys.receive_mac_key == hashlib.sha1(b"\x05" + data).digest()


def test_public_key_encoding_and_fingerprint():
    pair = cached_key_pair("user-alice")
    encoded = pair.public.encode()
    assert int.from_bytes(encoded[:4], "big") == len(encoded) - 4
    assert encoded[4:9] == b"\x00\x03rsa"
    assert SilcPublicKey.decode(encoded) == pair.public
    assert pair.public.fingerprint == hashlib.sha1(encoded).hexdigest()
    assert pair.public.version == 1


def test_version_1_signatures_are_pkcs1_over_the_data_itself():
    pair = cached_key_pair("user-alice")
    data = hashlib.sha256(b"HASH input").digest()
    signature = pair.sign(data)
    block = pow(int.from_bytes(signature, "big"), pair.public.e, pair.public.n).to_bytes(256, "big")
    assert block.startswith(b"\x00\x01\xff") and block.endswith(b"\x00" + data)
    assert pair.public.verify(signature, data)
    assert not pair.public.verify(signature, data[:-1] + b"x")
    assert not cached_key_pair("user-bob").public.verify(signature, data)


def test_payload_round_trips():
    args = ArgMap([(1, b"hackers"), (2, SilcId(2, b"c" * 16).payload()), (5, b"")])
    command = Command(14, 0xBEEF, args)
    assert Command.decode(command.encode()) == command
    notify = Notify(2, ArgMap([(1, b"x"), (2, b"yy")]))
    assert Notify.decode(notify.encode()) == notify
    key = ChannelKeyPayload(b"\x7f\0\0\1\0\0\0\1", "aes-256-cbc", os.urandom(32))
    assert ChannelKeyPayload.decode(key.encode()) == key
    assert NewClient.decode(NewClient("u", "Real Name").encode()) == NewClient("u", "Real Name")
    assert NewClient.decode(NewClient("u", "r", "nick").encode()).nickname == "nick"
    assert ConnectionAuth.decode(ConnectionAuth(1, b"pw").encode()) == ConnectionAuth(1, b"pw")
    ids = [SilcId(2, os.urandom(16)), SilcId(2, os.urandom(16))]
    assert decode_id_list(b"".join(i.payload() for i in ids), 2) == ids
    start = StartPayload(4, os.urandom(16), "SILC-1.2-1.0 x", "diffie-hellman-group1", "rsa",
                         "aes-256-cbc", "sha1", "hmac-sha1-96", "none")
    assert StartPayload.decode(start.encode()) == start
    ke = KePayload(1, b"key", 2**1000 + 7, b"sig")
    assert KePayload.decode(ke.encode()) == ke


def test_channel_message_mac_covers_the_ids_and_the_old_form_is_accepted():
    key = ChannelKey("aes-256-cbc", os.urandom(32), "hmac-sha1-96")
    sender, channel = os.urandom(16), os.urandom(8)
    payload = encode_channel_message(key, 0x100, "héllo".encode(), sender, channel)
    assert len(payload) == 16 + 16 + 12  # one encrypted block, IV, MAC
    assert decode_channel_message([key], payload, sender, channel).data == "héllo".encode()
    with pytest.raises(DecodeError):
        decode_channel_message([key], payload, os.urandom(16), channel)  # other sender: MAC fails
    old_key = ChannelKey("aes-256-cbc", os.urandom(32), "hmac-sha1-96")
    assert decode_channel_message([key, old_key], payload, sender, channel).flags == 0x100


def _pair(cipher: str) -> tuple[PacketStream, PacketStream, asyncio.StreamReader]:
    """A sending and a receiving stream sharing one direction's keys."""
    key, iv, prefix, mac_key = os.urandom(32 if "256" in cipher else 16), os.urandom(16), os.urandom(4), os.urandom(20)
    reader = asyncio.StreamReader()
    sender, receiver = PacketStream(None, None), PacketStream(reader, None)
    sender.send_dir.set_keys(SessionCipher(cipher, key, iv, prefix), "hmac-sha1-96", mac_key)
    receiver.recv_dir.set_keys(SessionCipher(cipher, key, iv, prefix), "hmac-sha1-96", mac_key)
    return sender, receiver, reader


@pytest.mark.parametrize("cipher", ["aes-256-cbc", "aes-128-ctr"])
async def test_packets_survive_encryption_in_sequence(cipher):
    sender, receiver, reader = _pair(cipher)
    packets = [
        Packet(PacketType.COMMAND, os.urandom(n), 0, 2, os.urandom(16), 1, os.urandom(8))
        for n in (0, 1, 5, 16, 100, 1000)
    ]
    # A channel message payload stays as the sender encrypted it (a special packet).
    packets.append(Packet(PacketType.CHANNEL_MESSAGE, os.urandom(64), 0, 2, b"c" * 16, 3, b"h" * 8))
    packets.append(Packet(PacketType.PRIVATE_MESSAGE, os.urandom(48), PacketFlag.PRIVMSG_KEY, 2, b"c" * 16, 2, b"d" * 16))
    wire = b"".join(sender.encode(p) for p in packets)
    special = sender.encode(packets[-2])
    assert packets[-2].data in special  # not re-encrypted with the session key
    reader.feed_data(wire)
    for packet in packets:
        assert await receiver.receive() == packet


async def test_a_flipped_bit_fails_the_mac():
    sender, receiver, reader = _pair("aes-256-cbc")
    wire = bytearray(sender.encode(Packet(PacketType.HEARTBEAT, b"", 0, 2, b"c" * 16)))
    wire[3] ^= 0x80
    reader.feed_data(bytes(wire))
    with pytest.raises(PacketError):
        await receiver.receive()


DECODERS = [
    Command.decode, Notify.decode, ChannelKeyPayload.decode, NewClient.decode, ConnectionAuth.decode,
    SilcId.from_payload, StartPayload.decode, KePayload.decode, SilcPublicKey.decode,
    lambda b: decode_id_list(b, 3),
    lambda b: decode_channel_message([ChannelKey("aes-128-cbc", b"k" * 16, "hmac-sha1-96")], b, b"s", b"c"),
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), which=st.integers(0, len(DECODERS) - 1))
def test_decoders_reject_random_bytes_cleanly(data, which):
    try:
        DECODERS[which](data)
    except DECODE_ERRORS:
        pass


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=0, max_size=400), cipher=st.sampled_from(["aes-256-cbc", "aes-128-ctr", None]))
def test_packet_reception_of_random_bytes_fails_cleanly(data, cipher):
    async def receive():
        if cipher is None:
            reader = asyncio.StreamReader()
            receiver = PacketStream(reader, None)
        else:
            _, receiver, reader = _pair(cipher)
        reader.feed_data(data)
        reader.feed_eof()
        try:
            while True:
                await receiver.receive()
        except (PacketError, MalformedPacket, asyncio.IncompleteReadError):
            pass

    asyncio.run(receive())


def test_generated_keys_sign_and_verify():
    pair = KeyPair.generate("UN=x, HN=y", bits=1024)
    assert pair.public.verify(pair.sign(b"data"), b"data")
