"""What the SILC targets share: key pairs made from fixed seeds (so a saved input means
the same on every run), channel keys, an event loop, and Diffie-Hellman exponents the
generator chooses (64 bits: the exchange is what is fuzzed, not its strength)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import random
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.silc import crypto
from bridge.silc.message import ChannelKey
from bridge.silc.pubkey import KeyPair, identifier_for, key_pair_from_private

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p ** 0.5) + 1))]


def _prime(rng: random.Random, bits: int) -> int:
    while True:
        n = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        if any(n % p == 0 for p in _SMALL_PRIMES) or (n - 1) % 65537 == 0:
            continue
        d, s = n - 1, 0
        while d % 2 == 0:
            d, s = d // 2, s + 1
        for _ in range(24):
            x = pow(rng.randrange(2, n - 1), d, n)
            if x in (1, n - 1):
                continue
            for _ in range(s - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                break
        else:
            return n


@functools.cache
def key_pair(name: str, bits: int = 1024, identifier: str | None = None) -> KeyPair:
    """An RSA key pair that is the same on every run (primes drawn from a seeded PRNG)."""
    rng = random.Random(hashlib.sha256(f"{name}:{bits}".encode()).digest())
    e = 65537
    while True:
        p, q = _prime(rng, bits // 2), _prime(rng, bits // 2)
        if p != q and (p * q).bit_length() == bits:
            break
    n, phi = p * q, (p - 1) * (q - 1)
    d = pow(e, -1, phi)
    private = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                    rsa.RSAPublicNumbers(e, n)).private_key()
    return key_pair_from_private(private, identifier or identifier_for(name, "fuzz.example"))


CHANNEL_KEYS = [ChannelKey.from_server("aes-256-cbc", bytes(range(32)), "hmac-sha1-96"),
                ChannelKey.from_server("aes-128-cbc", bytes(range(16, 32)), "hmac-sha256-96"),
                ChannelKey.from_passphrase("sekrit")]


@contextlib.contextmanager
def event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


@contextlib.contextmanager
def small_exponents(rng: random.Random) -> Iterator[None]:
    """Diffie-Hellman private values from `rng`, 64 bits (the real ones take milliseconds)."""
    real = crypto.dh_private
    crypto.dh_private = lambda p: 2 + rng.getrandbits(64)
    try:
        yield
    finally:
        crypto.dh_private = real
