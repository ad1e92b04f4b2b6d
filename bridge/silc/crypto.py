"""SILC algorithms: hashes, HMACs, AES ciphers, Diffie-Hellman groups, RSA
signatures and the key material processing of silc-ke-auth 2.3.

Names are SILC's (silc-spec 3.10). Symmetric crypto comes from `cryptography`;
the raw PKCS#1 v1.5 signature that SILC version-1 keys use (no DigestInfo,
silc-spec 3.10.2) is not offered there, so it is computed here.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes


class CryptoError(Exception):
    """Unsupported algorithm or failed cryptographic check."""


# --- hashes and HMACs (silc-spec 3.10.3, 3.10.4) ---

HASHES = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "md5": hashlib.md5}

#: name -> (hash name, MAC length in bytes)
HMACS = {
    "hmac-sha256-96": ("sha256", 12),
    "hmac-sha1-96": ("sha1", 12),
    "hmac-md5-96": ("md5", 12),
    "hmac-sha256": ("sha256", 32),
    "hmac-sha1": ("sha1", 20),
    "hmac-md5": ("md5", 16),
}


def digest(hash_name: str, data: bytes) -> bytes:
    try:
        return HASHES[hash_name](data).digest()
    except KeyError:
        raise CryptoError(f"unsupported hash {hash_name!r}") from None


class Hmac:
    """A keyed HMAC with SILC's truncation (hmac-sha1-96 keeps 12 bytes)."""

    def __init__(self, name: str, key: bytes) -> None:
        try:
            self.hash_name, self.length = HMACS[name]
        except KeyError:
            raise CryptoError(f"unsupported HMAC {name!r}") from None
        self.name = name
        self._key = key

    def mac(self, *parts: bytes) -> bytes:
        h = _hmac.new(self._key, digestmod=HASHES[self.hash_name])
        for part in parts:
            h.update(part)
        return h.digest()[: self.length]

    def verify(self, mac: bytes, *parts: bytes) -> bool:
        return _hmac.compare_digest(self.mac(*parts), mac)


def hmac_hash(name: str) -> str:
    """The hash an HMAC is built on (a channel's MAC key is that hash of its key)."""
    try:
        return HMACS[name][0]
    except KeyError:
        raise CryptoError(f"unsupported HMAC {name!r}") from None


# --- ciphers (silc-spec 3.10.1) ---

BLOCK = 16  # AES block size


@dataclass(frozen=True, slots=True)
class CipherSpec:
    name: str
    key_len: int
    mode: str  # "cbc" | "ctr"


def cipher_spec(name: str) -> CipherSpec:
    parts = name.split("-")
    if len(parts) != 3 or parts[0] != "aes" or parts[1] not in ("128", "192", "256"):
        raise CryptoError(f"unsupported cipher {name!r}")
    if parts[2] not in ("cbc", "ctr"):
        raise CryptoError(f"unsupported cipher mode {name!r}")
    return CipherSpec(name, int(parts[1]) // 8, parts[2])


class PacketCipher:
    """One direction of a session cipher; `packet()` gives the context that
    transforms the next packet (header first, then the rest, in order)."""

    name: str
    mode: str

    def packet(self) -> CipherContext:
        raise NotImplementedError


class CbcPacketCipher(PacketCipher):
    """silc-spec 3.10.1.1: the first IV comes from SKE, then each packet
    continues the chain from the previous ciphertext block."""

    mode = "cbc"

    def __init__(self, name: str, key: bytes, iv: bytes, encrypt: bool) -> None:
        self.name = name
        cipher = Cipher(algorithms.AES(key), modes.CBC(iv[:BLOCK]))
        self._ctx = cipher.encryptor() if encrypt else cipher.decryptor()

    def packet(self) -> CipherContext:
        return self._ctx


class CtrPacketCipher(PacketCipher):
    """silc-spec 3.10.1.2 draws the counter block as HASH[0:4] | IV[0:4] |
    32-bit packet counter from 1 | block counter from 1. silcd 1.1 instead
    takes IV[0:8] as a 64-bit packet counter that it increments before each
    packet (so the first packet uses IV[0:8] + 1), and the block counter
    restarts at 1 in every packet. The two agree only when IV[4:8] is zero,
    never in practice; this follows silcd, which decides interoperability
    (the test server does the same). Encryption and decryption are the same."""

    mode = "ctr"

    def __init__(self, name: str, key: bytes, iv: bytes, prefix: bytes) -> None:
        self.name = name
        self._key = key
        self._prefix = prefix[:4]
        self._counter = int.from_bytes(iv[:8], "big")

    def packet(self) -> CipherContext:
        self._counter = (self._counter + 1) % 2**64
        block = self._prefix + self._counter.to_bytes(8, "big") + (1).to_bytes(4, "big")
        return Cipher(algorithms.AES(self._key), modes.CTR(block)).encryptor()


def ctr_prefix(hash_name: str, ske_hash: bytes | None, iv: bytes) -> bytes:
    """The first 4 bytes of the counter block: from the SKE HASH, or after a
    rekey, where there is no HASH, from hash(IV[0:8]) as silcd does."""
    return ske_hash[:4] if ske_hash else digest(hash_name, iv[:8])[:4]


def packet_cipher(name: str, key: bytes, iv: bytes, prefix: bytes, encrypt: bool) -> PacketCipher:
    """`prefix` matters for CTR only (see `ctr_prefix`)."""
    spec = cipher_spec(name)
    key = key[: spec.key_len]
    if spec.mode == "cbc":
        return CbcPacketCipher(name, key, iv, encrypt)
    return CtrPacketCipher(name, key, iv, prefix)


def cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    ctx = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return ctx.update(data) + ctx.finalize()


def cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    ctx = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return ctx.update(data) + ctx.finalize()


# --- key material (silc-ke-auth 2.3) ---


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """Initiator's view: send_* for sending, receive_* for receiving."""

    send_iv: bytes
    receive_iv: bytes
    send_key: bytes
    receive_key: bytes
    send_hmac_key: bytes
    receive_hmac_key: bytes

    def swapped(self) -> KeyMaterial:
        """The responder's view of the same material."""
        return KeyMaterial(
            self.receive_iv,
            self.send_iv,
            self.receive_key,
            self.send_key,
            self.receive_hmac_key,
            self.send_hmac_key,
        )


def stretch(
    hash_name: str, label: int, key: bytes, ske_hash: bytes, length: int, part: int | None = None
) -> bytes:
    """K1 = hash(label | KEY | HASH), Kn = hash(KEY | HASH | K1 | ... | Kn-1),
    each K cut to `part` bytes if given (see ChannelKey.from_passphrase)."""
    out = digest(hash_name, bytes([label]) + key + ske_hash)[:part]
    while len(out) < length:
        out += digest(hash_name, key + ske_hash + out)[:part]
    return out[:length]


def process_key_material(hash_name: str, key: bytes, ske_hash: bytes, key_len: int) -> KeyMaterial:
    """silc-ke-auth 2.3. IVs and HMAC keys are whole hash outputs (users take
    what they need from the start); encryption keys are stretched to `key_len`.
    With a pre-shared key or a rekey, `ske_hash` is empty (silc-spec 4.6, 4.8)."""

    def one(label: int) -> bytes:
        return digest(hash_name, bytes([label]) + key + ske_hash)

    return KeyMaterial(
        send_iv=one(0),
        receive_iv=one(1),
        send_key=stretch(hash_name, 2, key, ske_hash, key_len),
        receive_key=stretch(hash_name, 3, key, ske_hash, key_len),
        send_hmac_key=one(4),
        receive_hmac_key=one(5),
    )


# --- Diffie-Hellman groups (silc-ke-auth 2.4) ---

_OAKLEY_HEAD = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651"
)
DH_GROUPS = {
    # RFC 2412 / RFC 2409 Oakley group 2, 1024 bits (the REQUIRED group)
    "diffie-hellman-group1": int(_OAKLEY_HEAD + "ECE65381FFFFFFFFFFFFFFFF", 16),
    # RFC 3526 group 5, 1536 bits
    "diffie-hellman-group2": int(
        _OAKLEY_HEAD + "ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD96"
        "1C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
        16,
    ),
}
DH_GENERATOR = 2


def dh_prime(group: str) -> int:
    try:
        return DH_GROUPS[group]
    except KeyError:
        raise CryptoError(f"unsupported DH group {group!r}") from None


def dh_private(p: int) -> int:
    """x with 1 < x < q, q = (p - 1) / 2."""
    return 2 + secrets.randbelow((p - 1) // 2 - 2)


def dh_check_public(p: int, value: int) -> None:
    if not 1 < value < p - 1:
        raise CryptoError("Diffie-Hellman public value out of range")


def mp_encode(value: int) -> bytes:
    """silc-spec 3.10.2.1: unsigned, exact octet length, no leading zeros."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def mp_decode(data: bytes) -> int:
    return int.from_bytes(data, "big")


# --- RSA signatures (silc-spec 3.10.2) ---

_DIGEST_INFO = {  # DER DigestInfo prefixes (RFC 8017 9.2 note 1)
    "md5": bytes.fromhex("3020300c06082a864886f70d020505000410"),
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
}


def _pkcs1_type1(data: bytes, k: int) -> int:
    if len(data) > k - 11:
        raise CryptoError("data too long for the RSA key")
    block = b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + data
    return int.from_bytes(block, "big")


def rsa_sign_raw(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """PKCS#1 v1.5 block type 1 over `data` itself, no DigestInfo: the
    signature of SILC version-1 keys (silc-spec 3.10.2)."""
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    k = (n.bit_length() + 7) // 8
    m = _pkcs1_type1(data, k)
    m1 = pow(m, numbers.dmp1, numbers.p)
    m2 = pow(m, numbers.dmq1, numbers.q)
    s = m2 + (numbers.iqmp * (m1 - m2) % numbers.p) * numbers.q
    if pow(s, numbers.public_numbers.e, n) != m:  # guard against CRT faults
        raise CryptoError("RSA signature self-check failed")
    return s.to_bytes(k, "big")


def rsa_verify(key: rsa.RSAPublicKey, signature: bytes, data: bytes, version: int) -> bool:
    """Version 1: the signed block is `data` itself. Version 2: a DigestInfo
    naming the hash, and that hash of `data` (silc-spec 3.10.2)."""
    try:
        recovered = key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
    except (InvalidSignature, ValueError):
        return False
    if version < 2:
        return _hmac.compare_digest(recovered, data)
    for name, prefix in _DIGEST_INFO.items():
        if recovered.startswith(prefix):
            return _hmac.compare_digest(recovered[len(prefix) :], digest(name, data))
    return False
