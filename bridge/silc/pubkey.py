"""SILC public keys (silc-spec 3.11), fingerprints, and the bridge's key pair.

The key pair is made on first start and kept in `key_dir` (private key file
mode 0600). The bridge makes version-1 keys (no `V=` in the identifier), as
silc and silcd 1.1 do; its signatures are then raw PKCS#1 v1.5 blocks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.silc import crypto
from bridge.silc.buffer import DecodeError, Reader, lp16, lp32, u32

log = structlog.get_logger(__name__)

PK_TYPE_SILC = 1  # silc-ke-auth 2.1.2: SILC style public key
MIN_BITS, MAX_BITS = 1024, 8192
KEY_BITS = 2048
PRIVATE_FILE = "silc.prv.pem"


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A decoded SILC public key; `encoded` is the exact wire form."""

    encoded: bytes
    algorithm: str
    identifier: str
    rsa: rsa.RSAPublicKey

    @property
    def version(self) -> int:
        """2 if the identifier says `V=2`, else 1 (silc-spec 3.11)."""
        fields = [f.strip() for f in self.identifier.split(",")]
        return 2 if "V=2" in fields else 1

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.encoded)

    def verify(self, signature: bytes, data: bytes) -> bool:
        return crypto.rsa_verify(self.rsa, signature, data, self.version)


def fingerprint(encoded: bytes) -> str:
    """SHA-1 over the whole encoded key (silc-spec 3.11), as 40 hex digits."""
    return crypto.digest("sha1", encoded).hex().upper()


def pretty_fingerprint(fp: str) -> str:
    """`ABCD 1234 ...`, the way SILC clients show fingerprints."""
    fp = normalize_fingerprint(fp)
    return " ".join(fp[i : i + 4] for i in range(0, len(fp), 4))


def normalize_fingerprint(fp: str) -> str:
    """Accept `AB:CD…`, `abcd …` or `ABCD…`; return upper-case hex digits."""
    return "".join(c for c in fp if c not in " :\t").upper()


def encode_public_key(key: rsa.RSAPublicKey, identifier: str) -> bytes:
    numbers = key.public_numbers()
    body = (
        lp16(b"rsa")
        + lp16(identifier.encode("utf-8"))
        + lp32(crypto.mp_encode(numbers.e))
        + lp32(crypto.mp_encode(numbers.n))
    )
    return u32(len(body)) + body


def decode_public_key(data: bytes) -> PublicKey:
    reader = Reader(data)
    body = Reader(reader.lp32())
    reader.end()
    algorithm = body.lp16().decode("ascii", errors="replace")
    identifier = body.lp16().decode("utf-8", errors="replace")
    if algorithm != "rsa":
        raise DecodeError(f"unsupported public key algorithm {algorithm!r}")
    e = crypto.mp_decode(body.lp32())
    n = crypto.mp_decode(body.lp32())
    body.end()
    if not MIN_BITS <= n.bit_length() <= MAX_BITS or e < 3 or e % 2 == 0:
        raise DecodeError("unacceptable RSA public key")
    try:
        key = rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise DecodeError(f"invalid RSA public key: {exc}") from None
    return PublicKey(bytes(data), algorithm, identifier, key)


@dataclass(frozen=True, slots=True)
class KeyPair:
    private: rsa.RSAPrivateKey
    public: PublicKey

    def sign(self, data: bytes) -> bytes:
        """sign() of silc-spec 3.10.2 for this (version-1) key."""
        return crypto.rsa_sign_raw(self.private, data)


def identifier_for(username: str, host: str = "muc-bridge") -> str:
    """`UN=…, HN=…` (both required, silc-spec 3.11), commas escaped."""

    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace(",", "\\,")

    return f"UN={esc(username)}, HN={esc(host)}"


def key_pair_from_private(private: rsa.RSAPrivateKey, identifier: str) -> KeyPair:
    encoded = encode_public_key(private.public_key(), identifier)
    return KeyPair(private, decode_public_key(encoded))


def load_or_create_key_pair(key_dir: str | os.PathLike[str], username: str, name: str = PRIVATE_FILE) -> KeyPair:
    """The key pair in file `name` of `key_dir` (the bridge's own by default), made (mode
    0600, the directory 0700) if missing."""
    directory = Path(key_dir)
    path = directory / name
    identifier = identifier_for(username)
    if path.exists():
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        if path.stat().st_mode & 0o077:
            log.warning("silc_key_file_permissions", path=str(path), mode=oct(path.stat().st_mode & 0o777))
        return key_pair_from_private(private, identifier)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pair = key_pair_from_private(private, identifier)
    log.info("silc_key_created", path=str(path), fingerprint=pretty_fingerprint(pair.public.fingerprint))
    return pair
