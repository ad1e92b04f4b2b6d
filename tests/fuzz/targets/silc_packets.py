"""SILC packet framing (bridge/silc/packet.py `PacketReader`), in clear and under each kind
of session key: a stream of packets, some with headers no writer would make (lengths that
lie, padding past the end, IDs of the wrong size) sealed and MAC'd so that they get past the
MAC check, the stream sometimes corrupted on the wire, cut into reads as its seed says.
`next` may raise PacketError for a packet it dropped, FramingError when the stream is beyond
repair (and then nothing more is read), nothing else; a stream not corrupted anywhere must
give back every packet, whole.

Input: a byte naming the keys, a byte saying how many packets a clean stream holds (0: not
clean), then the reads' seed and the stream.
"""

from __future__ import annotations

import random

from bridge.silc import crypto
from bridge.silc.buffer import u8, u16, u32
from bridge.silc.client import READ_SIZE
from bridge.silc.packet import (
    HEADER_FIXED, FramingError, Packet, PacketError, PacketFlag, PacketReader, PacketType, PacketWriter,
)
from tests.fuzz.engine import Target, Violation
from tests.fuzz.mutate import mutate, reads, with_reads
from tests.fuzz.targets.silc_payloads import sid

#: (cipher, HMAC) of each key setup; None: in clear (before the key exchange).
SETUPS = [None, ("aes-256-cbc", "hmac-sha256-96"), ("aes-256-ctr", "hmac-sha1-96"),
          ("aes-128-cbc", "hmac-sha1"), ("aes-192-ctr", "hmac-md5-96")]


def keys(setup: int, encrypt: bool):
    """The cipher and HMAC of a setup, the same for the writer and the reader."""
    cipher, hmac = SETUPS[setup]
    spec = crypto.cipher_spec(cipher)
    iv = bytes(range(16))
    prefix = crypto.ctr_prefix("sha256", b"h" * 32, iv)
    return (crypto.packet_cipher(cipher, bytes(range(spec.key_len)), iv, prefix, encrypt),
            crypto.Hmac(hmac, b"mac key"))


def _odd_header(rng: random.Random, payload: bytes) -> bytes:
    """A header with fields no writer would set, padding and payload after it."""
    src = rng.randbytes(rng.choice((0, 8, 16, 3, 255)))
    dst = rng.randbytes(rng.choice((0, 8, 16, 20, 1)))
    length = rng.choice((HEADER_FIXED + len(src) + len(dst) + len(payload), 0, 9, 0xFFFF,
                         rng.randrange(0x10000)))
    pad = rng.choice((0, 8, 16, 255, rng.randrange(256)))
    head = (u16(length) + u8(rng.randrange(256)) + u8(rng.randrange(256)) + u8(pad) + u8(0)
            + u8(len(src)) + u8(len(dst)) + u8(rng.randrange(5)) + src + u8(rng.randrange(5)) + dst)
    return head + bytes(min(pad, 64)) + payload


def _seal_raw(writer: PacketWriter, clear: bytes) -> bytes:
    """`clear` encrypted and MAC'd as the writer would a packet (block-aligned for CBC)."""
    if writer.cipher is None:
        return clear
    clear += bytes(-len(clear) % 16)
    wire = writer.cipher.packet().update(clear)
    mac = writer.hmac.mac(u32(writer.sequence), wire)
    writer.sequence = (writer.sequence + 1) & 0xFFFFFFFF
    return wire + mac


def generate(rng: random.Random) -> bytes:
    setup = rng.randrange(len(SETUPS))
    writer = PacketWriter(random=rng.randbytes)
    if SETUPS[setup]:
        writer.set_keys(*keys(setup, True))
    clean = rng.random() < 0.3
    parts = []
    count = rng.choice((1, 2, 5, 20))
    for _ in range(count):
        ptype = rng.choice(list(PacketType) + [200])
        flags = rng.choice((0, 0, PacketFlag.LIST, PacketFlag.PRIVMSG_KEY, rng.randrange(256)))
        special = ptype == PacketType.CHANNEL_MESSAGE or (ptype == PacketType.PRIVATE_MESSAGE
                                                           and flags & PacketFlag.PRIVMSG_KEY)
        size = rng.choice((0, 1, 15, 16, 100, 1000)) if rng.random() < 0.98 else 60000
        payload = rng.randbytes(size - size % 16 if special else size)
        if clean or rng.random() < 0.7:
            src = sid(rng) if rng.random() < 0.6 else None
            dst = sid(rng) if rng.random() < 0.6 else None
            parts.append(writer.seal(Packet(ptype, payload, flags, src, dst), max_padding=rng.random() < 0.1))
        else:
            parts.append(_seal_raw(writer, _odd_header(rng, payload[:200])))
    stream = b"".join(parts)
    if not clean:
        stream = mutate(rng, stream) if rng.random() < 0.5 else stream
    return bytes([setup, count if clean else 0]) + with_reads(rng, stream)


def check(data: bytes) -> None:
    if len(data) < 2:
        return
    setup, clean = data[0] % len(SETUPS), data[1]
    reader = PacketReader()
    if SETUPS[setup]:
        reader.set_keys(*keys(setup, False))
    packets, dropped = 0, 0
    chunks = [c[i:i + READ_SIZE] for c in reads(data[2:]) for i in range(0, len(c), READ_SIZE)]
    try:
        for chunk in chunks:  # as the client reads: at most READ_SIZE at a time
            reader.feed(chunk)
            while True:
                try:
                    packet = reader.next()
                except FramingError:
                    raise
                except PacketError:
                    dropped += 1
                    continue
                if packet is None:
                    break
                packets += 1
    except FramingError:
        if clean:
            raise Violation("a clean stream broke") from None
        return
    if clean and (dropped or packets != clean or reader._buf):
        raise Violation(f"a clean stream of {clean} packets gave {packets}, dropped {dropped}")


TARGET = Target("silc-packets", "SILC packet stream (clear or keyed) in reads -> PacketReader",
                generate, check, bound=0.25, full=1_000_000)
