"""Byte-level corruption of valid encodings, and how a stream is cut into reads."""

from __future__ import annotations

import random

#: Values that break length fields and counters.
INTERESTING = (0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 63, 64, 127, 128, 255, 256, 511, 512,
               1023, 1024, 4095, 4096, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF, 0x10000, 0x7FFFFFFF,
               0xFFFFFFFF)


def mutate(rng: random.Random, data: bytes, rounds: int | None = None) -> bytes:
    """`data` with a few random corruptions: bits flipped, bytes set, chunks inserted,
    deleted, repeated or moved, length-like values written, the end cut off."""
    buf = bytearray(data)
    for _ in range(rounds or rng.choice((1, 1, 1, 2, 2, 3, 5))):
        op = rng.randrange(10)
        size = len(buf)
        at = rng.randrange(size + 1)
        if op == 0 and size:
            buf[min(at, size - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and size:
            buf[min(at, size - 1)] = rng.choice((0, 0xFF, 0x7F, 0x80, 0x20, 0x3C, 0x3E, rng.randrange(256)))
        elif op == 2:
            buf[at:at] = rng.randbytes(rng.choice((1, 1, 2, 4, rng.randrange(64))))
        elif op == 3 and size:
            buf[at:at + rng.choice((1, 2, 4, rng.randrange(1, 64)))] = b""
        elif op == 4 and size:
            start = rng.randrange(size)
            chunk = buf[start:start + rng.randrange(1, 128)]
            buf[at:at] = chunk * rng.choice((1, 1, 2, 8))
        elif op == 5:
            width = rng.choice((1, 2, 2, 4))
            value = rng.choice(INTERESTING) + rng.choice((-1, 0, 0, 1))
            buf[at:at + width] = (value % (1 << (8 * width))).to_bytes(width, "big")
        elif op == 6 and size:
            del buf[rng.randrange(size):]
        elif op == 7 and size > 2:
            a, b = sorted(rng.sample(range(size), 2))
            buf[a:b] = buf[a:b][::-1] if rng.random() < 0.2 else bytes(buf[b:b + (b - a)]) or buf[a:b]
        elif op == 8:
            buf[at:at] = rng.choice((b"\x00", b"\xff\xff", b"\xc3", b"\xed\xa0\x80", b"\r\n", b"\n"))
        else:
            if size:
                start = rng.randrange(size)
                buf[start:start + 1] = bytes([buf[start] ^ 0x20])
    return bytes(buf)


def with_reads(rng: random.Random, stream: bytes) -> bytes:
    """An input that carries how to cut `stream` into reads: 4 bytes of seed, then it."""
    return rng.randbytes(4) + stream


def reads(data: bytes) -> list[bytes]:
    """The reads of a `with_reads` input, as its seed says: all at once, a few bytes at a
    time, a few hundred at a time, or cut at a few random places."""
    seed, stream = data[:4], data[4:]
    rng = random.Random(seed)
    style = rng.randrange(4)
    if style == 0 or len(stream) < 2:
        return [stream]
    if style == 3:
        cuts = sorted({rng.randrange(1, len(stream)) for _ in range(rng.randint(1, 16))})
        return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    # A few bytes, or a few hundred, at a time; a long stream in reads as a socket gives them.
    small = len(stream) <= (4096 if style == 1 else 16384)
    size = rng.randint(*{(1, True): (1, 8), (2, True): (1, 600)}.get((style, small), (512, 8192)))
    return [stream[i:i + size] for i in range(0, len(stream), size)]


def text(rng: random.Random, alphabet: str, size: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(size))
