"""A minimal SKE responder for unit tests, computed from silc-ke-auth 2.2.

It is the test's own reading of the draft, kept apart from bridge.silc.ske's
state machine: it shares only the payload codecs and crypto primitives.
"""

from __future__ import annotations

import hashlib
import os

from bridge.silc import crypto
from bridge.silc.pubkey import KeyPair, decode_public_key
from bridge.silc.ske import KePayload, StartPayload

SUPPORTED = {
    "groups": ["diffie-hellman-group1", "diffie-hellman-group2"],
    "pkcs": ["rsa"],
    "ciphers": [f"aes-{bits}-{mode}" for bits in (256, 192, 128) for mode in ("cbc", "ctr")],
    "hashes": ["sha256", "sha1"],
    "hmacs": ["hmac-sha256-96", "hmac-sha1-96"],
}


class Responder:
    def __init__(self, keypair: KeyPair, force_mutual: bool = True, prefer: dict | None = None) -> None:
        self.keypair = keypair
        self.force_mutual = force_mutual
        self.prefer = prefer or {}
        self.client_key = None

    def reply_start(self, data: bytes) -> bytes:
        self.start_bytes = data
        start = StartPayload.decode(data)

        def pick(field):
            offered = getattr(start, field).split(",")
            if field in self.prefer:
                return self.prefer[field]
            return next(i for i in offered if i in SUPPORTED[field])

        self.choice = {f: pick(f) for f in SUPPORTED}
        flags = start.flags | (0x04 if self.force_mutual else 0)
        self.flags = flags
        return StartPayload(
            flags,
            start.cookie,
            "SILC-1.2-1.1.18 test",
            self.choice["groups"],
            self.choice["pkcs"],
            self.choice["ciphers"],
            self.choice["hashes"],
            self.choice["hmacs"],
            "none",
        ).encode()

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.choice["hashes"], data).digest()

    def ke2(self, data: bytes, tamper_signature: bool = False) -> bytes:
        ke1 = KePayload.decode(data)
        p = crypto.dh_prime(self.choice["groups"])
        e = ke1.public_data
        self.client_key = decode_public_key(ke1.public_key)
        if self.flags & 0x04:
            hash_i = self.hash(self.start_bytes + ke1.public_key + e)
            assert self.client_key.verify(ke1.signature, hash_i), "SIGN_i does not verify"
        y = 2 + int.from_bytes(os.urandom(40), "big") % ((p - 1) // 2 - 2)
        f = crypto.mp_encode(pow(2, y, p))
        key = crypto.mp_encode(pow(int.from_bytes(e, "big"), y, p))
        own = self.keypair.public.encoded
        self.ske_hash = self.hash(self.start_bytes + own + ke1.public_key + e + f + key)
        signature = self.keypair.sign(self.ske_hash)
        if tamper_signature:
            signature = signature[:-1] + bytes([signature[-1] ^ 1])
        key_len = crypto.cipher_spec(self.choice["ciphers"]).key_len
        self.material = crypto.process_key_material(self.choice["hashes"], key, self.ske_hash, key_len)
        return KePayload(1, own, f, signature).encode()
