"""Key pairs for tests, made once per run (RSA generation is slow)."""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.silc.pubkey import KeyPair, identifier_for, key_pair_from_private


@functools.cache
def key_pair(name: str = "client", bits: int = 1024) -> KeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key_pair_from_private(private, identifier_for(name, "test.example"))
