"""SILC Key Exchange (silc-ke-auth 2), both sides, and rekey (silc-spec 4.8)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from .crypto import (
    CIPHERS,
    DH_GENERATOR,
    DH_GROUPS,
    HASHES,
    HMACS,
    PK_TYPE_SILC,
    PKCS,
    KeyMaterial,
    KeyPair,
    SessionCipher,
    SilcPublicKey,
    derive_keys,
    digest,
    mp_bytes,
)
from .numbers import SKE_IV_INCLUDED, SKE_MUTUAL, SKE_PFS, PacketType, SkeStatus
from .packet import Packet, PacketStream
from .wire import DecodeError, Reader, u16, u16_bytes, u32

VERSION = "SILC-1.2-1.1.0 muc-bridge-test"
_VERSION_RE = re.compile(r"^SILC-(\d+)\.(\d+)-\S+")


class SkeError(Exception):
    """Key exchange failed; `status` is what went (or would go) in FAILURE."""

    def __init__(self, status: SkeStatus, detail: str = "") -> None:
        super().__init__(f"{status.name}: {detail}" if detail else status.name)
        self.status = status


@dataclass
class Algorithms:
    """Algorithm names in preference order, one tuple per start-payload list.

    The defaults are what silcd 1.1.18 registers (README), less Twofish: a
    server accepts these, a user proposes them in this order.
    """

    groups: tuple[str, ...] = ("diffie-hellman-group2", "diffie-hellman-group1")
    pkcs: tuple[str, ...] = PKCS
    ciphers: tuple[str, ...] = (
        "aes-256-ctr", "aes-256-cbc", "aes-192-ctr", "aes-192-cbc", "aes-128-ctr", "aes-128-cbc",
    )
    hashes: tuple[str, ...] = ("sha256", "sha1", "md5")
    hmacs: tuple[str, ...] = ("hmac-sha256-96", "hmac-sha1-96", "hmac-md5-96", "hmac-sha1", "hmac-md5")

    def __post_init__(self) -> None:
        for names, known in (
            (self.groups, DH_GROUPS), (self.pkcs, PKCS), (self.ciphers, CIPHERS),
            (self.hashes, HASHES), (self.hmacs, HMACS),
        ):
            unknown = [n for n in names if n not in known]
            if unknown or not names:
                raise ValueError(f"unsupported or empty algorithm list: {names}")


@dataclass
class StartPayload:
    """Key Exchange Start Payload, silc-ke-auth 2.1.1; lists stay comma-joined."""

    flags: int
    cookie: bytes
    version: str
    groups: str
    pkcs: str
    ciphers: str
    hashes: str
    hmacs: str
    compression: str = "none"

    def encode(self) -> bytes:
        body = self.cookie + b"".join(
            u16_bytes(s.encode())
            for s in (self.version, self.groups, self.pkcs, self.ciphers, self.hashes,
                      self.hmacs, self.compression)
        )
        return bytes([0, self.flags]) + u16(4 + len(body)) + body

    @classmethod
    def decode(cls, data: bytes) -> StartPayload:
        r = Reader(data)
        r.u8()  # RESERVED
        flags = r.u8()
        if r.u16() != len(data):
            raise DecodeError("start payload length mismatch")
        cookie = r.take(16)
        fields = [r.u16_bytes().decode("utf-8") for _ in range(6)]
        compression = r.u16_bytes().decode("utf-8") if r.remaining else ""
        if r.remaining:
            raise DecodeError("trailing bytes after start payload")
        return cls(flags, cookie, *fields, compression)

    @classmethod
    def proposal(cls, algorithms: Algorithms, flags: int = 0) -> StartPayload:
        return cls(
            flags, os.urandom(16), VERSION, ",".join(algorithms.groups),
            ",".join(algorithms.pkcs), ",".join(algorithms.ciphers),
            ",".join(algorithms.hashes), ",".join(algorithms.hmacs), "none",
        )


@dataclass
class KePayload:
    """Key Exchange Payload, silc-ke-auth 2.1.2."""

    pk_type: int
    public_key: bytes
    public_data: int
    signature: bytes = b""

    def encode(self) -> bytes:
        return (
            u16(len(self.public_key)) + u16(self.pk_type) + self.public_key
            + u16_bytes(mp_bytes(self.public_data)) + u16_bytes(self.signature)
        )

    @classmethod
    def decode(cls, data: bytes) -> KePayload:
        r = Reader(data)
        pk_len = r.u16()
        pk_type = r.u16()
        public_key = r.take(pk_len)
        public_data = int.from_bytes(r.u16_bytes(), "big")
        signature = r.u16_bytes()
        if r.remaining:
            raise DecodeError("trailing bytes after KE payload")
        return cls(pk_type, public_key, public_data, signature)


@dataclass
class Session:
    """What a finished key exchange leaves behind, for keys and later rekeys."""

    group: str
    cipher: str
    hash: str
    hmac: str
    flags: int
    ske_hash: bytes
    keys: KeyMaterial
    initiator_start: bytes
    peer_key: SilcPublicKey | None
    rekeys: int = field(default=0)

    @property
    def pfs(self) -> bool:
        return bool(self.flags & SKE_PFS)


_STATUS_FOR_LIST = {
    "groups": SkeStatus.UNSUPPORTED_GROUP,
    "pkcs": SkeStatus.UNSUPPORTED_PKCS,
    "ciphers": SkeStatus.UNSUPPORTED_CIPHER,
    "hashes": SkeStatus.UNSUPPORTED_HASH_FUNCTION,
    "hmacs": SkeStatus.UNSUPPORTED_HMAC,
}


def select(remote: StartPayload, ours: Algorithms) -> StartPayload:
    """The responder's choice: the first item of each list that it supports,
    as silcd does.  Like silcd, a one-item list is echoed without a check
    (README); the key exchange then fails when the item is used."""
    chosen = {}
    for name, status in _STATUS_FOR_LIST.items():
        items = getattr(remote, name).split(",")
        if len(items) == 1:
            chosen[name] = items[0]
            continue
        supported = [i for i in items if i in getattr(ours, name)]
        if not supported:
            raise SkeError(status, getattr(remote, name))
        chosen[name] = supported[0]
    flags = (remote.flags & ~SKE_IV_INCLUDED) | SKE_MUTUAL  # silcd forces mutual auth
    return StartPayload(flags, remote.cookie, VERSION, **chosen, compression="none")


def check_version(version: str) -> None:
    """silc-spec 3.12: a parseable SILC-<major>.<minor>-<software> of protocol 1.x."""
    m = _VERSION_RE.match(version)
    if not m or m.group(1) != "1":
        raise SkeError(SkeStatus.BAD_VERSION, version)


def _check_known(session_names: dict[str, str]) -> None:
    for kind, name, table, status in (
        ("group", session_names["group"], DH_GROUPS, SkeStatus.UNSUPPORTED_GROUP),
        ("pkcs", session_names["pkcs"], PKCS, SkeStatus.UNSUPPORTED_PKCS),
        ("cipher", session_names["cipher"], CIPHERS, SkeStatus.UNSUPPORTED_CIPHER),
        ("hash", session_names["hash"], HASHES, SkeStatus.UNSUPPORTED_HASH_FUNCTION),
        ("hmac", session_names["hmac"], HMACS, SkeStatus.UNSUPPORTED_HMAC),
    ):
        if name not in table:
            raise SkeError(status, f"{kind} {name}")


def _dh_value(peer: int, p: int) -> None:
    if not 1 < peer < p - 1:
        raise SkeError(SkeStatus.BAD_PAYLOAD, "Diffie-Hellman value out of range")


def _random_exponent(p: int) -> int:
    q = (p - 1) // 2  # group order, silc-ke-auth 2.4
    return 2 + secrets.randbelow(q - 3)  # 1 < x < q


async def _expect(stream: PacketStream, wanted: PacketType, timeout: float) -> Packet:
    """The next packet, which must be `wanted`; FAILURE and anything else abort
    (silc-ke-auth 2.2: only KE packets, SUCCESS and FAILURE are allowed)."""
    packet = await asyncio.wait_for(stream.receive(), timeout)
    if packet.type == wanted:
        return packet
    if packet.type == PacketType.FAILURE:
        code = int.from_bytes(packet.data[:4], "big") if len(packet.data) >= 4 else 1
        try:
            status = SkeStatus(code)
        except ValueError:
            status = SkeStatus.ERROR
        raise SkeError(status, "peer sent FAILURE")
    raise SkeError(SkeStatus.ERROR, f"unexpected {packet!r} during key exchange")


def _status(code: int) -> bytes:
    return u32(code)


def send_failure(stream: PacketStream, status: SkeStatus, **ids) -> None:
    stream.send(Packet(PacketType.FAILURE, _status(status), **ids))


def _decode_peer_key(ke: KePayload) -> SilcPublicKey:
    if ke.pk_type != PK_TYPE_SILC or not ke.public_key:
        raise SkeError(SkeStatus.UNSUPPORTED_PUBLIC_KEY, f"public key type {ke.pk_type}")
    try:
        return SilcPublicKey.decode(ke.public_key)
    except (DecodeError, UnicodeDecodeError) as exc:
        raise SkeError(SkeStatus.UNSUPPORTED_PUBLIC_KEY, str(exc)) from exc


async def respond(
    stream: PacketStream,
    key_pair: Callable[[], KeyPair],
    algorithms: Algorithms,
    ids: dict,
    timeout: float = 30.0,
) -> Session:
    """Run SKE as responder (silc-ke-auth 2.2 steps 2 and 3).

    `key_pair` is called when the key is needed, so a key change between
    connections takes effect at once.  `ids` are the header IDs to send with.
    On failure, FAILURE is sent and SkeError raised.
    """
    try:
        return await _respond(stream, key_pair, algorithms, ids, timeout)
    except SkeError as exc:
        send_failure(stream, exc.status, **ids)
        raise
    except DecodeError as exc:
        send_failure(stream, SkeStatus.BAD_PAYLOAD, **ids)
        raise SkeError(SkeStatus.BAD_PAYLOAD, str(exc)) from exc


async def _respond(stream, key_pair, algorithms, ids, timeout) -> Session:
    start_packet = await _expect(stream, PacketType.KEY_EXCHANGE, timeout)
    initiator_start = start_packet.data
    remote = StartPayload.decode(initiator_start)
    check_version(remote.version)
    reply = select(remote, algorithms)
    stream.send(Packet(PacketType.KEY_EXCHANGE, reply.encode(), **ids))

    ke1 = KePayload.decode((await _expect(stream, PacketType.KEY_EXCHANGE_1, timeout)).data)
    names = dict(group=reply.groups, pkcs=reply.pkcs, cipher=reply.ciphers,
                 hash=reply.hashes, hmac=reply.hmacs)
    _check_known(names)
    peer_key = _decode_peer_key(ke1)
    p = DH_GROUPS[reply.groups]
    _dh_value(ke1.public_data, p)
    e = mp_bytes(ke1.public_data)
    hash_i = digest(reply.hashes, initiator_start + ke1.public_key + e)
    if not peer_key.verify(ke1.signature, hash_i):
        raise SkeError(SkeStatus.INCORRECT_SIGNATURE, "SIGN_i does not verify")

    own = key_pair()
    own_pk = own.public.encode()
    y = _random_exponent(p)
    f = pow(DH_GENERATOR, y, p)
    shared = mp_bytes(pow(ke1.public_data, y, p))
    ske_hash = digest(reply.hashes, initiator_start + own_pk + ke1.public_key + e + mp_bytes(f) + shared)
    ke2 = KePayload(PK_TYPE_SILC, own_pk, f, own.sign(ske_hash))
    stream.send(Packet(PacketType.KEY_EXCHANGE_2, ke2.encode(), **ids))

    await _expect(stream, PacketType.SUCCESS, timeout)
    stream.send(Packet(PacketType.SUCCESS, _status(SkeStatus.OK), **ids))
    keys = derive_keys(reply.hashes, shared + ske_hash, CIPHERS[reply.ciphers][0])
    session = Session(reply.groups, reply.ciphers, reply.hashes, reply.hmacs, reply.flags,
                      ske_hash, keys, initiator_start, peer_key)
    install_keys(stream, session, responder=True)
    return session


async def initiate(
    stream: PacketStream,
    key_pair: KeyPair,
    algorithms: Algorithms,
    timeout: float = 30.0,
    flags: int = 0,
) -> Session:
    """Run SKE as initiator (silc-ke-auth 2.2 steps 1 and 3).  The caller
    checks `session.peer_key` against any pinned fingerprint."""
    proposal = StartPayload.proposal(algorithms, flags)
    initiator_start = proposal.encode()
    stream.send(Packet(PacketType.KEY_EXCHANGE, initiator_start))
    try:
        reply = StartPayload.decode((await _expect(stream, PacketType.KEY_EXCHANGE, timeout)).data)
        if reply.cookie != proposal.cookie:
            raise SkeError(SkeStatus.INVALID_COOKIE)
        check_version(reply.version)
        for name, status in _STATUS_FOR_LIST.items():
            if getattr(reply, name) not in getattr(algorithms, name):
                raise SkeError(status, f"responder chose {getattr(reply, name)}")
        p = DH_GROUPS[reply.groups]
        x = _random_exponent(p)
        e = pow(DH_GENERATOR, x, p)
        own_pk = key_pair.public.encode()
        signature = b""
        if reply.flags & SKE_MUTUAL:
            signature = key_pair.sign(digest(reply.hashes, initiator_start + own_pk + mp_bytes(e)))
        stream.send(Packet(PacketType.KEY_EXCHANGE_1, KePayload(PK_TYPE_SILC, own_pk, e, signature).encode()))

        ke2 = KePayload.decode((await _expect(stream, PacketType.KEY_EXCHANGE_2, timeout)).data)
        peer_key = _decode_peer_key(ke2)
        _dh_value(ke2.public_data, p)
        shared = mp_bytes(pow(ke2.public_data, x, p))
        ske_hash = digest(
            reply.hashes,
            initiator_start + ke2.public_key + own_pk + mp_bytes(e) + mp_bytes(ke2.public_data) + shared,
        )
        if not peer_key.verify(ke2.signature, ske_hash):
            raise SkeError(SkeStatus.INCORRECT_SIGNATURE, "server signature does not verify")
    except SkeError as exc:
        send_failure(stream, exc.status)
        raise
    except DecodeError as exc:
        send_failure(stream, SkeStatus.BAD_PAYLOAD)
        raise SkeError(SkeStatus.BAD_PAYLOAD, str(exc)) from exc
    stream.send(Packet(PacketType.SUCCESS, _status(SkeStatus.OK)))
    await _expect(stream, PacketType.SUCCESS, timeout)
    keys = derive_keys(reply.hashes, shared + ske_hash, CIPHERS[reply.ciphers][0])
    session = Session(reply.groups, reply.ciphers, reply.hashes, reply.hmacs, reply.flags,
                      ske_hash, keys, initiator_start, peer_key)
    install_keys(stream, session, responder=False)
    return session


def _direction_keys(session: Session, responder: bool, sending: bool) -> tuple[bytes, bytes, bytes]:
    """(iv, key, mac key) for one direction.  The initiator uses the send values
    for sending; the responder the receive values (silc-ke-auth 2.3)."""
    k = session.keys
    if sending != responder:
        return k.send_iv, k.send_key, k.send_mac_key
    return k.receive_iv, k.receive_key, k.receive_mac_key


def _cipher(session: Session, iv: bytes, key: bytes) -> SessionCipher:
    # The CTR counter prefix is HASH[0:4]; after a rekey there is no HASH and
    # silcd uses hash(IV[0:8])[0:4] instead.
    prefix = session.ske_hash[:4] if session.rekeys == 0 else digest(session.hash, iv[:8])[:4]
    return SessionCipher(session.cipher, key, iv, prefix)


def install_keys(stream: PacketStream, session: Session, responder: bool,
                 send: bool = True, receive: bool = True) -> None:
    for sending, direction, wanted in ((True, stream.send_dir, send), (False, stream.recv_dir, receive)):
        if wanted:
            iv, key, mac_key = _direction_keys(session, responder, sending)
            direction.set_keys(_cipher(session, iv, key), session.hmac, mac_key)


def rekeyed(session: Session, material: bytes) -> Session:
    """The session after a rekey: silc-spec 4.8 processes `material` (the old
    initiator sending key, or the new DH KEY with PFS) as silc-ke-auth 2.3 does,
    without HASH."""
    keys = derive_keys(session.hash, material, CIPHERS[session.cipher][0])
    return Session(session.group, session.cipher, session.hash, session.hmac, session.flags,
                   session.ske_hash, keys, session.initiator_start, session.peer_key,
                   session.rekeys + 1)


def pfs_respond(session: Session, ke1: KePayload) -> tuple[KePayload, bytes]:
    """Responder half of a PFS rekey: our KE payload (no key, no signature,
    silc-ke-auth 2.1.2) and the new KEY."""
    p = DH_GROUPS[session.group]
    _dh_value(ke1.public_data, p)
    y = _random_exponent(p)
    return KePayload(PK_TYPE_SILC, b"", pow(DH_GENERATOR, y, p)), mp_bytes(pow(ke1.public_data, y, p))


def pfs_start(session: Session) -> tuple[KePayload, int]:
    """Initiator half of a PFS rekey: our KE payload and the secret exponent."""
    p = DH_GROUPS[session.group]
    x = _random_exponent(p)
    return KePayload(PK_TYPE_SILC, b"", pow(DH_GENERATOR, x, p)), x


def pfs_finish(session: Session, x: int, ke2: KePayload) -> bytes:
    p = DH_GROUPS[session.group]
    _dh_value(ke2.public_data, p)
    return mp_bytes(pow(ke2.public_data, x, p))
