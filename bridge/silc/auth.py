"""SILC Connection Authentication, client side (silc-ke-auth 3, silc-pp 2.3.15).

After SKE the client sends CONNECTION_AUTH with a Connection Auth Payload:
empty auth data for method "none" (the packet is still required), the UTF-8
passphrase, or a signature over hash(HASH | Key Exchange Start Payload). It
may first ask the server which method it wants (CONNECTION_AUTH_REQUEST).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bridge.silc import crypto
from bridge.silc.buffer import DecodeError, Reader, u16
from bridge.silc.pubkey import KeyPair
from bridge.silc.ske import SkeResult

CONN_CLIENT = 1  # silc-pp 2.3.15 connection types: 1 client, 2 server, 3 router


class AuthMethod(enum.IntEnum):
    NONE = 0
    PASSPHRASE = 1
    PUBLIC_KEY = 2


@dataclass(frozen=True, slots=True)
class AuthRequestPayload:
    """Connection Auth Request Payload: connection type (2), method (2)."""

    conn_type: int
    method: int

    def encode(self) -> bytes:
        return u16(self.conn_type) + u16(self.method)

    @classmethod
    def decode(cls, data: bytes) -> AuthRequestPayload:
        r = Reader(data)
        conn_type, method = r.u16(), r.u16()
        r.end()
        if conn_type not in (1, 2, 3) or method not in tuple(AuthMethod):
            raise DecodeError(f"bad auth request type {conn_type} method {method}")
        return cls(conn_type, method)


@dataclass(frozen=True, slots=True)
class ConnectionAuthPayload:
    """Connection Auth Payload (silc-ke-auth 3.1): payload length (2, whole
    payload), connection type (2), authentication data."""

    conn_type: int
    auth_data: bytes = b""

    def encode(self) -> bytes:
        return u16(4 + len(self.auth_data)) + u16(self.conn_type) + self.auth_data

    @classmethod
    def decode(cls, data: bytes) -> ConnectionAuthPayload:
        r = Reader(data)
        length, conn_type = r.u16(), r.u16()
        if length != len(data):
            raise DecodeError(f"auth payload length {length} of {len(data)}")
        return cls(conn_type, r.rest())


def auth_data(method: AuthMethod, ske: SkeResult, keypair: KeyPair, passphrase: str | None) -> bytes:
    """The authentication data for `method` (silc-ke-auth 3.2)."""
    if method is AuthMethod.NONE:
        return b""
    if method is AuthMethod.PASSPHRASE:
        if passphrase is None:
            raise ValueError("the server wants a passphrase and none is configured")
        return passphrase.encode("utf-8")
    auth_hash = crypto.digest(ske.negotiated.hash, ske.ske_hash + ske.start_payload)
    return keypair.sign(auth_hash)
