"""SILC Key Exchange, initiator side (silc-ke-auth 2), as pure functions of
payload bytes: no sockets, no packets.

    start()   -> Key Exchange Start Payload   (KEY_EXCHANGE, 13)
    ke1(...)  -> Key Exchange Payload         (KEY_EXCHANGE_1, 14)
    finish(.) <- Key Exchange Payload         (KEY_EXCHANGE_2, 15) -> SkeResult

HASH   = hash(initiator's start payload | responder's public key |
              initiator's public key | e | f | KEY)
HASH_i = hash(initiator's start payload | initiator's public key | e)
with e, f and KEY as MP integers (silc-spec 3.10.2.1). The reference server
forces mutual authentication, so the client always sends its key and SIGN_i
when the responder's flags ask for it.

Rekey (silc-spec 4.8) is here too: without PFS the new keys come from the
current sending key alone; with PFS a fresh Diffie-Hellman exchange of bare
Key Exchange Payloads, whose KEY is then processed without HASH.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from bridge.silc import crypto
from bridge.silc.buffer import DecodeError, Reader, lp16, u8, u16
from bridge.silc.crypto import CryptoError, KeyMaterial
from bridge.silc.pubkey import PK_TYPE_SILC, KeyPair, PublicKey, decode_public_key

COOKIE_LEN = 16
VERSION = "SILC-1.2-1.1.0 muc-bridge"


class SkeFlag(enum.IntFlag):
    NONE = 0
    IV_INCLUDED = 0x01
    PFS = 0x02
    MUTUAL = 0x04


class SkeStatus(enum.IntEnum):
    """silc-ke-auth 2.5, sent as a 32-bit value in FAILURE."""

    OK = 0
    ERROR = 1
    BAD_PAYLOAD = 2
    UNSUPPORTED_GROUP = 3
    UNSUPPORTED_CIPHER = 4
    UNSUPPORTED_PKCS = 5
    UNSUPPORTED_HASH_FUNCTION = 6
    UNSUPPORTED_HMAC = 7
    UNSUPPORTED_PUBLIC_KEY = 8
    INCORRECT_SIGNATURE = 9
    BAD_VERSION = 10
    INVALID_COOKIE = 11


class SkeError(Exception):
    def __init__(self, status: SkeStatus, message: str) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status


@dataclass(frozen=True, slots=True)
class StartPayload:
    """Key Exchange Start Payload, silc-ke-auth 2.1.1."""

    flags: int
    cookie: bytes
    version: str
    groups: str
    pkcs: str
    ciphers: str
    hashes: str
    hmacs: str
    compression: str = ""

    def encode(self) -> bytes:
        body = self.cookie + b"".join(
            lp16(s.encode("utf-8"))
            for s in (
                self.version,
                self.groups,
                self.pkcs,
                self.ciphers,
                self.hashes,
                self.hmacs,
                self.compression,
            )
        )
        # Payload Length counts the whole payload, these 4 bytes included.
        return u8(0) + u8(self.flags) + u16(4 + len(body)) + body

    @classmethod
    def decode(cls, data: bytes) -> StartPayload:
        r = Reader(data)
        r.u8()
        flags, length = r.u8(), r.u16()
        if not 4 + COOKIE_LEN <= length <= len(data):
            raise DecodeError(f"start payload length {length} of {len(data)}")
        body = Reader(data[4:length])
        cookie = body.take(COOKIE_LEN)
        fields = [body.lp16().decode("utf-8", "replace") for _ in range(6)]
        compression = body.lp16().decode("utf-8", "replace") if body.remaining else ""
        body.end()
        return cls(flags, cookie, *fields, compression)


@dataclass(frozen=True, slots=True)
class KePayload:
    """Key Exchange Payload, silc-ke-auth 2.1.2."""

    pk_type: int
    public_key: bytes
    public_data: bytes
    signature: bytes = b""

    def encode(self) -> bytes:
        return (
            u16(len(self.public_key))
            + u16(self.pk_type)
            + self.public_key
            + lp16(self.public_data)
            + lp16(self.signature)
        )

    @classmethod
    def decode(cls, data: bytes) -> KePayload:
        r = Reader(data)
        pk_len, pk_type = r.u16(), r.u16()
        public_key = r.take(pk_len)
        public_data, signature = r.lp16(), r.lp16()
        r.end()
        return cls(pk_type, public_key, public_data, signature)


@dataclass(frozen=True, slots=True)
class Proposal:
    """What the client offers, best first; the responder takes the first item
    of each list it supports. CBC leads the ciphers: its IVs after a rekey
    are defined by the drafts, the CTR counter block's are not."""

    groups: tuple[str, ...] = ("diffie-hellman-group2", "diffie-hellman-group1")
    pkcs: tuple[str, ...] = ("rsa",)
    ciphers: tuple[str, ...] = (
        "aes-256-cbc",
        "aes-256-ctr",
        "aes-192-cbc",
        "aes-192-ctr",
        "aes-128-cbc",
        "aes-128-ctr",
    )
    hashes: tuple[str, ...] = ("sha256", "sha1")
    hmacs: tuple[str, ...] = ("hmac-sha256-96", "hmac-sha1-96", "hmac-sha1", "hmac-md5-96")
    pfs: bool = False
    mutual: bool = True  # silc-ke-auth 2.1.2: SHOULD without signature-based auth


@dataclass(frozen=True, slots=True)
class Negotiated:
    group: str
    pkcs: str
    cipher: str
    hash: str
    hmac: str
    flags: int
    remote_version: str

    @property
    def pfs(self) -> bool:
        return bool(self.flags & SkeFlag.PFS)

    @property
    def key_len(self) -> int:
        return crypto.cipher_spec(self.cipher).key_len


@dataclass(frozen=True, slots=True)
class SkeResult:
    negotiated: Negotiated
    material: KeyMaterial  # initiator's view
    ske_hash: bytes
    start_payload: bytes  # as sent; connection auth signs it (silc-ke-auth 3.2.2)
    server_key: PublicKey


_VERSION_RE = re.compile(r"^SILC-(\d+)\.(\d+)-[\x21-\x7e]+( [\x20-\x7e]*)?$")


def check_version(version: str) -> None:
    """silc-spec 3.12: SILC-<major>.<minor>-<software version>, printable ASCII."""
    m = _VERSION_RE.match(version)
    if not m or m.group(1) != "1":
        raise SkeError(SkeStatus.BAD_VERSION, f"unacceptable version {version!r}")


def _choose(chosen: str, offered: tuple[str, ...], status: SkeStatus, what: str) -> str:
    if chosen not in offered:
        raise SkeError(status, f"responder chose {what} {chosen!r}, not offered")
    return chosen


class Initiator:
    """One key exchange from the client's side; call the steps in order."""

    def __init__(
        self,
        keypair: KeyPair,
        proposal: Proposal = Proposal(),
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.keypair = keypair
        self.proposal = proposal
        self._random = random
        self._start: StartPayload | None = None
        self._start_bytes = b""
        self._negotiated: Negotiated | None = None
        self._x = 0
        self._e = b""

    def start(self) -> bytes:
        p = self.proposal
        flags = (SkeFlag.PFS if p.pfs else 0) | (SkeFlag.MUTUAL if p.mutual else 0)
        self._start = StartPayload(
            flags=int(flags),
            cookie=self._random(COOKIE_LEN),
            version=VERSION,
            groups=",".join(p.groups),
            pkcs=",".join(p.pkcs),
            ciphers=",".join(p.ciphers),
            hashes=",".join(p.hashes),
            hmacs=",".join(p.hmacs),
            compression="none",
        )
        self._start_bytes = self._start.encode()
        return self._start_bytes

    def ke1(self, reply_data: bytes) -> bytes:
        """Check the responder's choices, then send e (and SIGN_i if mutual)."""
        assert self._start is not None, "start() first"
        try:
            reply = StartPayload.decode(reply_data)
        except DecodeError as exc:
            raise SkeError(SkeStatus.BAD_PAYLOAD, str(exc)) from None
        if reply.cookie != self._start.cookie:
            raise SkeError(SkeStatus.INVALID_COOKIE, "responder changed the cookie")
        check_version(reply.version)
        if reply.flags & SkeFlag.IV_INCLUDED:
            raise SkeError(SkeStatus.ERROR, "IV Included (UDP mode) is not supported")
        p = self.proposal
        self._negotiated = Negotiated(
            group=_choose(reply.groups, p.groups, SkeStatus.UNSUPPORTED_GROUP, "group"),
            pkcs=_choose(reply.pkcs, p.pkcs, SkeStatus.UNSUPPORTED_PKCS, "PKCS"),
            cipher=_choose(reply.ciphers, p.ciphers, SkeStatus.UNSUPPORTED_CIPHER, "cipher"),
            hash=_choose(reply.hashes, p.hashes, SkeStatus.UNSUPPORTED_HASH_FUNCTION, "hash"),
            hmac=_choose(reply.hmacs, p.hmacs, SkeStatus.UNSUPPORTED_HMAC, "HMAC"),
            flags=reply.flags,
            remote_version=reply.version,
        )
        prime = crypto.dh_prime(self._negotiated.group)
        self._x = crypto.dh_private(prime)
        self._e = crypto.mp_encode(pow(crypto.DH_GENERATOR, self._x, prime))
        own_key = self.keypair.public.encoded
        signature = b""
        if reply.flags & SkeFlag.MUTUAL:
            hash_i = crypto.digest(self._negotiated.hash, self._start_bytes + own_key + self._e)
            signature = self.keypair.sign(hash_i)
        return KePayload(PK_TYPE_SILC, own_key, self._e, signature).encode()

    def finish(self, ke2_data: bytes) -> SkeResult:
        """Verify the responder's key and SIGN over HASH; derive the keys."""
        negotiated = self._negotiated
        assert negotiated is not None, "ke1() first"
        try:
            ke2 = KePayload.decode(ke2_data)
        except DecodeError as exc:
            raise SkeError(SkeStatus.BAD_PAYLOAD, str(exc)) from None
        if ke2.pk_type != PK_TYPE_SILC:
            raise SkeError(SkeStatus.UNSUPPORTED_PUBLIC_KEY, f"public key type {ke2.pk_type}")
        try:
            server_key = decode_public_key(ke2.public_key)
        except DecodeError as exc:
            raise SkeError(SkeStatus.UNSUPPORTED_PUBLIC_KEY, str(exc)) from None
        prime = crypto.dh_prime(negotiated.group)
        f = crypto.mp_decode(ke2.public_data)
        try:
            crypto.dh_check_public(prime, f)
        except CryptoError as exc:
            raise SkeError(SkeStatus.BAD_PAYLOAD, str(exc)) from None
        key = crypto.mp_encode(pow(f, self._x, prime))
        ske_hash = crypto.digest(
            negotiated.hash,
            self._start_bytes
            + ke2.public_key
            + self.keypair.public.encoded
            + self._e
            + ke2.public_data
            + key,
        )
        if not server_key.verify(ke2.signature, ske_hash):
            raise SkeError(SkeStatus.INCORRECT_SIGNATURE, "server signature does not verify")
        material = crypto.process_key_material(negotiated.hash, key, ske_hash, negotiated.key_len)
        return SkeResult(negotiated, material, ske_hash, self._start_bytes, server_key)


# --- rekey (silc-spec 4.8) ---


def rekey_material(negotiated: Negotiated, sending_key: bytes) -> KeyMaterial:
    """Without PFS: the rekey initiator's current sending key is the key
    material, processed without HASH. The rekey initiator uses the result as
    is, the other side swapped."""
    return crypto.process_key_material(negotiated.hash, sending_key, b"", negotiated.key_len)


class PfsRekey:
    """With PFS: a new Diffie-Hellman exchange of Key Exchange Payloads that
    carry only the public value, encrypted under the old keys."""

    def __init__(self, negotiated: Negotiated) -> None:
        self.negotiated = negotiated
        self._prime = crypto.dh_prime(negotiated.group)
        self._x = crypto.dh_private(self._prime)
        self._public = crypto.mp_encode(pow(crypto.DH_GENERATOR, self._x, self._prime))

    def payload(self) -> bytes:
        """Our Key Exchange Payload: KEY_EXCHANGE_1 as initiator, _2 as responder."""
        return KePayload(0, b"", self._public).encode()

    def material(self, peer_payload: bytes) -> KeyMaterial:
        """The new key material (initiator's view) from the peer's payload."""
        try:
            peer = crypto.mp_decode(KePayload.decode(peer_payload).public_data)
            crypto.dh_check_public(self._prime, peer)
        except (DecodeError, CryptoError) as exc:
            raise SkeError(SkeStatus.BAD_PAYLOAD, str(exc)) from None
        key = crypto.mp_encode(pow(peer, self._x, self._prime))
        return crypto.process_key_material(self.negotiated.hash, key, b"", self.negotiated.key_len)
