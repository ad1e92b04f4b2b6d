"""Algorithms, key material and SILC public keys, on top of `cryptography`.

Names and sizes: silc-spec 3.10; DH groups: silc-ke-auth 2.4; key derivation:
silc-ke-auth 2.3; public key encoding: silc-spec 3.11.
"""

from __future__ import annotations

import hashlib
import hmac as std_hmac
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .wire import DecodeError, Reader, u16_bytes, u32

# --- Registries -------------------------------------------------------------------

HASHES = {"sha256": 32, "sha1": 20, "md5": 16}

# name -> (hash, MAC length); silc-spec 3.10.4.
HMACS = {
    "hmac-sha256-96": ("sha256", 12),
    "hmac-sha1-96": ("sha1", 12),
    "hmac-md5-96": ("md5", 12),
    "hmac-sha256": ("sha256", 32),
    "hmac-sha1": ("sha1", 20),
    "hmac-md5": ("md5", 16),
}

# name -> (key length in bytes, mode); silc-spec 3.10.1.  AES only: `cryptography`
# has no Twofish.
CIPHERS = {
    f"aes-{bits}-{mode}": (bits // 8, mode) for bits in (256, 192, 128) for mode in ("ctr", "cbc")
}
BLOCK_LEN = 16

_MODP_1024 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
    16,
)
_MODP_1536 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA237327FFFFFFFFFFFFFFFF",
    16,
)
# silc-ke-auth 2.4 (group 3 is listed there, but silcd 1.1 does not implement it).
DH_GROUPS = {"diffie-hellman-group1": _MODP_1024, "diffie-hellman-group2": _MODP_1536}
DH_GENERATOR = 2

PKCS = ("rsa",)


def digest(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).digest()


def mac(name: str, key: bytes, data: bytes) -> bytes:
    hash_name, length = HMACS[name]
    return std_hmac.new(key, data, hash_name).digest()[:length]


def mp_bytes(value: int) -> bytes:
    """MP integer: unsigned, exact octet length (silc-spec 3.10.2.1)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


# --- Key material, silc-ke-auth 2.3 ------------------------------------------------


@dataclass(frozen=True)
class KeyMaterial:
    """The six values of silc-ke-auth 2.3, named from the initiator's point of view."""

    send_iv: bytes
    receive_iv: bytes
    send_key: bytes
    receive_key: bytes
    send_mac_key: bytes
    receive_mac_key: bytes


def derive_keys(hash_name: str, data: bytes, key_len: int) -> KeyMaterial:
    """hash(0..5 | data) with the key-stretching rule; `data` is KEY | HASH.

    IVs are one cipher block; MAC keys are the whole hash output (silcd takes
    hash_len bytes, which "as many bytes as needed" leaves open).
    """

    def h(n: int) -> bytes:
        return digest(hash_name, bytes([n]) + data)

    def stretched(n: int) -> bytes:
        parts = [h(n)]
        while sum(map(len, parts)) < key_len:
            parts.append(digest(hash_name, data + b"".join(parts)))
        return b"".join(parts)[:key_len]

    return KeyMaterial(
        send_iv=h(0)[:BLOCK_LEN],
        receive_iv=h(1)[:BLOCK_LEN],
        send_key=stretched(2),
        receive_key=stretched(3),
        send_mac_key=h(4),
        receive_mac_key=h(5),
    )


# --- Session ciphers ---------------------------------------------------------------


class SessionCipher:
    """One direction of packet encryption with a negotiated session cipher.

    CBC (silc-spec 3.10.1.1): one chain for the whole connection, each packet's
    first IV being the previous ciphertext block, so one stateful context serves.

    CTR (silc-spec 3.10.1.2): the counter block is HASH[0:4] | counter | block
    counter, block counter restarting at 1 for every packet.  The draft splits the
    middle into a 4-byte SKE IV and a packet counter from 1; silcd 1.1 (whose
    behaviour decides interoperability) uses the first 8 bytes of the SKE IV as a
    64-bit number incremented once per packet before use.  We do what silcd does.
    """

    def __init__(self, name: str, key: bytes, iv: bytes, ske_hash: bytes) -> None:
        key_len, self.mode = CIPHERS[name]
        if len(key) != key_len:
            raise ValueError("wrong key length")
        self.name = name
        self._algorithm = algorithms.AES(key)
        if self.mode == "cbc":
            self._enc = Cipher(self._algorithm, modes.CBC(iv)).encryptor()
            self._dec = Cipher(self._algorithm, modes.CBC(iv)).decryptor()
        else:
            self._prefix = ske_hash[:4]
            self._counter = int.from_bytes(iv[:8], "big")
        self._packet = None

    @property
    def pads(self) -> bool:
        """CTR packets carry no padding (README: silcd pads them with 0 bytes)."""
        return self.mode == "cbc"

    def begin_packet(self) -> None:
        if self.mode == "ctr":
            self._counter = (self._counter + 1) % 2**64
            block = self._prefix + self._counter.to_bytes(8, "big") + (1).to_bytes(4, "big")
            self._packet = Cipher(self._algorithm, modes.CTR(block)).encryptor()

    def encrypt(self, data: bytes) -> bytes:
        return self._enc.update(data) if self.mode == "cbc" else self._packet.update(data)

    def decrypt(self, data: bytes) -> bytes:
        return self._dec.update(data) if self.mode == "cbc" else self._packet.update(data)


# --- SILC public keys, silc-spec 3.11 ----------------------------------------------

PK_TYPE_SILC = 1  # Key Exchange Payload public key type, silc-ke-auth 2.1.2


@dataclass(frozen=True)
class SilcPublicKey:
    identifier: str
    e: int
    n: int

    def encode(self) -> bytes:
        public_data = u32(len(mp_bytes(self.e))) + mp_bytes(self.e)
        public_data += u32(len(mp_bytes(self.n))) + mp_bytes(self.n)
        body = u16_bytes(b"rsa") + u16_bytes(self.identifier.encode()) + public_data
        return u32(len(body)) + body

    @classmethod
    def decode(cls, data: bytes) -> SilcPublicKey:
        r = Reader(data)
        if r.u32() != len(data) - 4:
            raise DecodeError("public key length mismatch")
        algorithm = r.u16_bytes()
        identifier = r.u16_bytes().decode("utf-8")
        if algorithm != b"rsa":
            raise DecodeError(f"unsupported public key algorithm {algorithm!r}")
        e = int.from_bytes(r.u32_bytes(), "big")
        n = int.from_bytes(r.u32_bytes(), "big")
        if r.remaining or e < 3 or n.bit_length() < 512:
            raise DecodeError("bad RSA public data")
        return cls(identifier, e, n)

    @property
    def version(self) -> int:
        """2 when the identifier has V=2, else 1 (silc-spec 3.11)."""
        for part in self.identifier.split(","):
            key, _, value = part.strip().partition("=")
            if key == "V" and value.isdigit():
                return int(value)
        return 1

    @property
    def fingerprint(self) -> str:
        """SHA-1 of the whole encoded key (silc-spec 3.11), as lowercase hex."""
        return hashlib.sha1(self.encode()).hexdigest()

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Version 1: PKCS #1 v1.5 block type 1 over `data` itself, no OID
        (silc-spec 3.10.2).  Version 2: standard PKCS #1 v1.5 with the hash OID."""
        k = (self.n.bit_length() + 7) // 8
        if len(signature) != k:
            return False
        if self.version >= 2:
            key = rsa.RSAPublicNumbers(self.e, self.n).public_key()
            for algorithm in (hashes.SHA1(), hashes.SHA256(), hashes.MD5()):
                try:
                    key.verify(signature, data, padding.PKCS1v15(), algorithm)
                    return True
                except InvalidSignature:
                    continue
            return False
        block = pow(int.from_bytes(signature, "big"), self.e, self.n).to_bytes(k, "big")
        return std_hmac.compare_digest(block, _pkcs1_type1(data, k))


def _pkcs1_type1(data: bytes, k: int) -> bytes:
    if len(data) > k - 11:
        raise ValueError("data too long for key")
    return b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + data


class KeyPair:
    """An RSA key pair presented as a version-1 SILC key, like silcd's own keys."""

    def __init__(self, private_key: rsa.RSAPrivateKey, identifier: str) -> None:
        self.private_key = private_key
        numbers = private_key.public_key().public_numbers()
        self.public = SilcPublicKey(identifier, numbers.e, numbers.n)

    def sign(self, data: bytes) -> bytes:
        """PKCS #1 v1.5 block type 1 over `data` itself (no DigestInfo)."""
        numbers = self.private_key.private_numbers()
        n = self.public.n
        k = (n.bit_length() + 7) // 8
        m = int.from_bytes(_pkcs1_type1(data, k), "big")
        return pow(m, numbers.d, n).to_bytes(k, "big")

    @classmethod
    def generate(cls, identifier: str, bits: int = 2048) -> KeyPair:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=bits), identifier)


_KEY_DIR = Path(tempfile.gettempdir()) / "muc-bridge-silc-test-keys"


def cached_key_pair(name: str, identifier: str | None = None) -> KeyPair:
    """A 2048-bit key pair kept across test runs under the temp dir, by name.

    Generating RSA keys is the slow part of a test; a name gives a stable
    identity (and fingerprint) to a test user or server.
    """
    identifier = identifier or f"UN={name}, HN=localhost"
    path = _KEY_DIR / f"{name}.pem"
    try:
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError):
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _KEY_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(
            private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        os.replace(tmp, path)
    return KeyPair(private_key, identifier)
