"""Every SILC payload decoder (bridge/silc: payloads, ids, pubkey, message, auth, ske, packet
header): a valid encoding of random fields, often corrupted, goes to its decoder (and now and
then to another one). Each may raise DecodeError only; an encoding that was not corrupted
must decode to what was encoded. Channel messages are sealed under fixed channel keys and
opened with them; signed ones carry keys and signatures the generator made.

Input: one byte naming the decoder, one byte saying whether the rest was corrupted, the rest.
"""

from __future__ import annotations

import random

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bridge.silc import crypto
from bridge.silc.auth import AuthRequestPayload, ConnectionAuthPayload
from bridge.silc.buffer import DecodeError, lp16, u16
from bridge.silc.ids import IdType, SilcId, decode_id_payload, encode_id_payload, read_id_payload
from bridge.silc.message import (
    MessageFlag, check_signature, decode_plain, decrypt_channel_message, encode_plain,
    encrypt_channel_message,
)
from bridge.silc.packet import Packet, decode_fixed_header, decode_packet, encode_header
from bridge.silc.payloads import (
    Arguments, ChannelKeyPayload, CommandPayload, DisconnectPayload, NewClientPayload, NotifyPayload,
    PublicKeyPayload, decode_id_list, decode_protocol_status, decode_status, decode_u32,
    encode_id_list, read_list,
)
from bridge.silc.pubkey import decode_public_key, encode_public_key
from bridge.silc.ske import KePayload, StartPayload
from tests.fuzz.engine import Target, Violation
from tests.fuzz.mutate import mutate
from tests.fuzz.targets.silc_common import CHANNEL_KEYS, key_pair

SENDER = bytes(range(16))
CHANNEL = bytes(range(8))
_STRINGS = [b"", b"a", b"#chan", b"nick@server", "é€😀".encode(), b"\xff\xfe", b"\x00", b"x" * 300]


def sid(rng: random.Random) -> SilcId:
    kind = rng.choice(list(IdType)[1:])
    from bridge.silc.ids import ID_LENGTHS
    return SilcId(kind, rng.randbytes(rng.choice(ID_LENGTHS[kind])))


def arguments(rng: random.Random) -> Arguments:
    items = []
    for _ in range(rng.choice((0, 1, 2, 3, 5, 14))):
        kind = rng.randrange(5)
        data = (encode_id_payload(sid(rng)) if kind == 0 else rng.randbytes(4) if kind == 1
                else b"\x00\x00" if kind == 2 else rng.choice(_STRINGS))
        items.append((rng.randrange(1, 16), data))
    return Arguments(tuple(items))


def public_key(rng: random.Random) -> tuple[bytes, object]:
    """An encoded public key and its key pair, the identifier sometimes odd or version 2."""
    pair = key_pair(rng.choice(["alice", "bob"]), 1024)
    identifier = rng.choice(["UN=alice, HN=h", "UN=a\\,b, HN=h, V=2", "", "V=2", "é" * 50, "UN=x"])
    return encode_public_key(pair.private.public_key(), identifier), pair


def signature(rng: random.Random, pair, data: bytes, version: int) -> bytes:
    if rng.random() < 0.2:
        return rng.randbytes(rng.choice((0, 1, 128, 129)))
    if version >= 2:
        return pair.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return crypto.rsa_sign_raw(pair.private, crypto.digest("sha1", data))


def message(rng: random.Random) -> tuple[int, bytes]:
    flags = rng.choice([0, MessageFlag.UTF8, MessageFlag.ACTION | MessageFlag.UTF8, MessageFlag.SIGNED,
                        MessageFlag.SIGNED | MessageFlag.UTF8, MessageFlag.PACKET, rng.randrange(0x10000)])
    return flags, rng.choice(_STRINGS) * rng.choice((1, 1, 3))


def signed_trailer(rng: random.Random, start: bytes) -> bytes:
    """Public Key Payload and signature after a SIGNED message's start."""
    encoded, pair = public_key(rng)
    key = encoded if rng.random() < 0.5 else b""
    pk = PublicKeyPayload(rng.choice((1, 1, 1, 2)), key)
    version = 2 if b"V=2" in encoded else 1
    return pk.encode() + lp16(signature(rng, pair, start + pk.encode(), version))


# --- one generator and one decoder per payload ---


def _command(rng):
    return CommandPayload(rng.randrange(1, 28), rng.randrange(0x10000), arguments(rng)).encode()


def _notify(rng):
    return NotifyPayload(rng.randrange(0, 20), arguments(rng)).encode()


def _plain(rng):
    flags, data = message(rng)
    payload = encode_plain(flags, data)
    if flags & MessageFlag.SIGNED:
        payload += signed_trailer(rng, payload)
    return payload


def _channel_message(rng):
    flags, data = message(rng)
    key = rng.choice(CHANNEL_KEYS)
    if not flags & MessageFlag.SIGNED:
        return encrypt_channel_message(key, flags, data, SENDER, CHANNEL, rng.randbytes)
    # A signed one: the trailer goes between the encrypted part and the IV (in clear).
    pad = 16 - (6 + len(data)) % 16
    plain = u16(flags) + lp16(data) + u16(pad) + rng.randbytes(pad)
    iv = rng.randbytes(16)
    body = crypto.cbc_encrypt(key.key, iv, plain) + signed_trailer(rng, plain) + iv
    return body + key.hmac.mac(body, SENDER, CHANNEL)


def _start(rng):
    return StartPayload(rng.randrange(256), rng.randbytes(16), "SILC-1.2-1.1.0 x", "diffie-hellman-group1",
                        "rsa", "aes-256-cbc", "sha256", "hmac-sha256-96", rng.choice(["", "none"])).encode()


def _header(rng):
    src = sid(rng) if rng.random() < 0.7 else None
    dst = sid(rng) if rng.random() < 0.7 else None
    payload = rng.randbytes(rng.choice((0, 1, 16, 100)))
    pad = rng.randrange(0, 40)
    packet = Packet(rng.randrange(30), payload, rng.randrange(32), src, dst)
    return encode_header(packet, pad) + rng.randbytes(pad) + payload


def _ids(rng):
    ids = [sid(rng) for _ in range(rng.randrange(1, 6))]
    return bytes([len(ids)]) + encode_id_list(ids)


GENERATORS = [
    _command, _command, _notify, _notify,
    lambda rng: ChannelKeyPayload(rng.randbytes(8), rng.choice(["aes-256-cbc", "aes-128-ctr", "x", "~"]),
                                  rng.randbytes(rng.choice((16, 32, 0, 7)))).encode(),
    lambda rng: NewClientPayload("user", "Real Name é").encode() + rng.choice([b"", b"nick"]),
    lambda rng: DisconnectPayload(rng.randrange(256), rng.choice(["", "bye", "é"])).encode(),
    lambda rng: rng.randbytes(rng.choice((0, 3, 4, 8))),
    lambda rng: PublicKeyPayload(rng.randrange(4), public_key(rng)[0]).encode(),
    lambda rng: encode_id_payload(sid(rng)),
    _ids, lambda rng: _ids(rng)[1:],
    lambda rng: public_key(rng)[0],
    _plain, _channel_message,
    lambda rng: AuthRequestPayload(rng.randrange(1, 4), rng.randrange(3)).encode(),
    lambda rng: ConnectionAuthPayload(1, rng.choice(_STRINGS)).encode(),
    _start,
    lambda rng: KePayload(1, public_key(rng)[0], rng.randbytes(rng.choice((0, 1, 128, 192))),
                          rng.randbytes(rng.choice((0, 128)))).encode(),
    lambda rng: rng.randbytes(rng.choice((2, 4))),
    _header,
]


def _decode_command(data):
    reply = CommandPayload.decode(data)
    for read in (lambda: reply.status, lambda: reply.error):
        try:
            read()
        except DecodeError:
            pass
    return reply.encode()


def _decode_public_key(data):
    key = decode_public_key(data)
    key.verify(b"\x00" * 128, b"data")
    return key.encoded, key.fingerprint, key.version


def _decode_signed(msg):
    for fingerprint in (None, "00" * 20):
        check_signature(msg.signed, fingerprint, key_pair("alice", 1024).public)
    return msg.flags, msg.data


def _decode_header(data):
    return decode_packet(data, decode_fixed_header(data))


DECODERS = [
    _decode_command,
    lambda data: [c.encode() for c in read_list(CommandPayload.read, data, True)],
    lambda data: NotifyPayload.decode(data).encode(),
    lambda data: [n.encode() for n in read_list(NotifyPayload.read, data, True)],
    lambda data: ChannelKeyPayload.decode(data),
    lambda data: NewClientPayload.decode(data),
    lambda data: DisconnectPayload.decode(data),
    lambda data: decode_protocol_status(data),
    lambda data: PublicKeyPayload.decode(data).encode(),
    lambda data: encode_id_payload(decode_id_payload(data)),
    lambda data: decode_id_list(data[1:], data[0]) if data else None,
    lambda data: read_list(read_id_payload, data, True),
    _decode_public_key,
    lambda data: _decode_signed(decode_plain(data)),
    lambda data: _decode_signed(decrypt_channel_message(CHANNEL_KEYS, data, SENDER, CHANNEL)[0]),
    lambda data: AuthRequestPayload.decode(data).encode(),
    lambda data: ConnectionAuthPayload.decode(data).encode(),
    lambda data: StartPayload.decode(data).encode(),
    lambda data: KePayload.decode(data).encode(),
    lambda data: decode_status(data) if len(data) == 2 else decode_u32(data),
    _decode_header,
]
assert len(GENERATORS) == len(DECODERS)
#: Decoders that give back the encoding itself: an uncorrupted input must come back whole.
_ROUND_TRIP = {0: True, 2: True, 8: True, 9: True, 15: True, 16: True, 18: True}


def generate(rng: random.Random) -> bytes:
    kind = rng.randrange(len(GENERATORS))
    data = GENERATORS[kind](rng)
    corrupt = rng.random() < 0.6
    if corrupt:
        data = mutate(rng, data)
    if rng.random() < 0.05:  # the wrong decoder
        kind, corrupt = rng.randrange(len(DECODERS)), True
    return bytes([kind, corrupt]) + data


def check(data: bytes) -> None:
    if len(data) < 2:
        return
    kind, corrupt, payload = data[0] % len(DECODERS), data[1], data[2:]
    try:
        result = DECODERS[kind](payload)
    except DecodeError:
        if not corrupt:
            raise Violation("a valid encoding did not decode") from None
        return
    if not corrupt and _ROUND_TRIP.get(kind) and result != payload:
        raise Violation("decoding and encoding again changed the payload")


TARGET = Target("silc-payloads", "one SILC payload encoding, often corrupted -> its decoder: DecodeError only",
                generate, check, bound=0.25, full=1_000_000)
