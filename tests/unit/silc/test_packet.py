import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.silc import crypto
from bridge.silc.ids import IdType, SilcId
from bridge.silc.packet import (
    FramingError,
    Packet,
    PacketError,
    PacketReader,
    PacketType,
    PacketWriter,
    padding_length,
)

SERVER = SilcId(IdType.SERVER, bytes.fromhex("7f0000011b940001"))
CLIENT = SilcId(IdType.CLIENT, bytes(range(16)))
CHANNEL = SilcId(IdType.CHANNEL, bytes.fromhex("7f0000011b940002"))


def zeros(n):
    return b"\x00" * n


def test_padding_rules_of_section_2_7():
    assert padding_length(13) == 19  # 16 - 13 = 3 < 8, so + 16
    assert padding_length(16) == 16
    assert padding_length(24) == 8
    assert padding_length(25) == 23
    assert padding_length(10, maximum=True) == 118


def test_plain_packet_bytes_from_the_draft_diagram():
    # KEY_EXCHANGE before any ID: lengths 0, types 0; 13 bytes -> 19 padding
    wire = PacketWriter(random=zeros).seal(Packet(PacketType.KEY_EXCHANGE, b"abc"))
    assert wire == bytes.fromhex("000d 00 0d 13 00 00 00 00 00") + zeros(19) + b"abc"


def test_header_with_ids():
    p = Packet(PacketType.COMMAND, b"\x01", src=CLIENT, dst=SERVER)
    wire = PacketWriter(random=zeros).seal(p)
    header_len = 10 + 16 + 8
    assert wire[:8] == bytes([0, header_len + 1, 0, 11, padding_length(header_len + 1), 0, 16, 8])
    assert wire[8] == 2 and wire[9:25] == CLIENT.data
    assert wire[25] == 1 and wire[26:34] == SERVER.data


def pair(cipher="aes-256-cbc", hmac="hmac-sha256-96"):
    key, iv, h, mkey = os.urandom(32), os.urandom(16), os.urandom(32), os.urandom(32)
    writer, reader = PacketWriter(), PacketReader()
    writer.set_keys(crypto.packet_cipher(cipher, key, iv, h, True), crypto.Hmac(hmac, mkey))
    reader.set_keys(crypto.packet_cipher(cipher, key, iv, h, False), crypto.Hmac(hmac, mkey))
    return writer, reader


def read_all(reader):
    out = []
    while (p := reader.next()) is not None:
        out.append(p)
    return out


@pytest.mark.parametrize("cipher", ["aes-256-cbc", "aes-128-ctr", "aes-192-cbc", "aes-256-ctr"])
def test_encrypted_round_trip_in_pieces(cipher):
    writer, reader = pair(cipher)
    packets = [
        Packet(PacketType.COMMAND, b"x" * n, src=CLIENT, dst=SERVER) for n in (0, 1, 15, 16, 17, 300)
    ] + [Packet(PacketType.CHANNEL_MESSAGE, b"m" * 48, src=CLIENT, dst=CHANNEL)]
    stream = b"".join(writer.seal(p) for p in packets)
    assert writer.sequence == len(packets)
    got = []
    for i in range(0, len(stream), 7):  # arbitrary TCP segmentation
        reader.feed(stream[i : i + 7])
        got += read_all(reader)
    assert got == packets
    assert reader.sequence == len(packets)


@pytest.mark.parametrize("cipher", ["aes-128-ctr", "aes-256-ctr"])
@pytest.mark.parametrize(
    "packet",
    [
        Packet(PacketType.CONNECTION_AUTH_REQUEST, bytes.fromhex("0001 0000")),
        Packet(PacketType.CONNECTION_AUTH, bytes.fromhex("0004 0001")),  # method none, no IDs yet
        Packet(PacketType.HEARTBEAT),
    ],
)
def test_short_ctr_packets_still_fill_a_cipher_block(cipher, packet):
    """CTR needs no padding (silc-spec 3.10.1.2), but silcd decrypts a whole
    first block and closes the connection ("Bad ID lengths in packet") on a
    packet shorter than 16 bytes. Padding as for CBC keeps every one longer."""
    writer, reader = pair(cipher)
    wire = writer.seal(packet)
    encrypted = wire[: -writer.hmac.length]
    assert len(encrypted) >= 16 and len(encrypted) % 16 == 0
    reader.feed(wire)
    assert reader.next() == packet


def test_mac_covers_the_sequence_number():
    writer, reader = pair()
    writer.sequence = 5
    reader.feed(writer.seal(Packet(PacketType.HEARTBEAT, src=CLIENT, dst=SERVER)))
    with pytest.raises(PacketError):
        reader.next()


def test_bad_mac_drops_only_that_packet():
    writer, reader = pair()
    a = bytearray(writer.seal(Packet(PacketType.COMMAND, b"first", src=CLIENT, dst=SERVER)))
    b = writer.seal(Packet(PacketType.COMMAND, b"second", src=CLIENT, dst=SERVER))
    a[-1] ^= 1
    reader.feed(bytes(a) + b)
    with pytest.raises(PacketError):
        reader.next()
    assert reader.next().payload == b"second"


def test_channel_message_payload_is_not_session_encrypted():
    writer, _ = pair()
    payload = b"P" * 32
    wire = writer.seal(Packet(PacketType.CHANNEL_MESSAGE, payload, src=CLIENT, dst=CHANNEL))
    assert payload in wire  # only header + padding went through the session cipher
    header_len = 10 + 16 + 8
    assert len(wire) == header_len + padding_length(header_len) + 32 + 12


def test_truncated_stream_waits_for_more():
    writer, reader = pair()
    wire = writer.seal(Packet(PacketType.COMMAND, b"abc", src=CLIENT, dst=SERVER))
    reader.feed(wire[:-1])
    assert reader.next() is None
    reader.feed(wire[-1:])
    assert reader.next().payload == b"abc"


def test_garbage_header_is_a_framing_error():
    reader = PacketReader()
    reader.feed(bytes.fromhex("0003 00 02 00 00 00 00"))  # length 3 < header
    with pytest.raises(FramingError):
        reader.next()


def test_misaligned_cbc_packet_is_a_framing_error():
    writer, reader = pair()
    # a header claiming 20 bytes and no padding cannot be a CBC packet
    block = bytes.fromhex("0014 00 0b 00 00 00 00") + bytes(8)
    reader.feed(writer.cipher.packet().update(block))
    with pytest.raises(FramingError):
        reader.next()


def test_unknown_id_type_drops_the_packet():
    wire = bytearray(PacketWriter(random=zeros).seal(Packet(PacketType.COMMAND, b"", src=CLIENT)))
    wire[8] = 9
    reader = PacketReader()
    reader.feed(bytes(wire))
    with pytest.raises(PacketError):
        reader.next()


@settings(max_examples=300)
@given(st.binary(max_size=400), st.sampled_from([None, "aes-256-cbc", "aes-128-ctr"]))
def test_reader_survives_random_bytes(data, cipher):
    if cipher is None:
        reader = PacketReader()
    else:
        _, reader = pair(cipher)
    reader.feed(data)
    for _ in range(50):
        try:
            if reader.next() is None:
                break
        except FramingError:
            break
        except PacketError:
            continue
