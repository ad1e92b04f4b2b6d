"""Byte-level SILC payloads shared by the test server and TestUser.

Every layout here is from silc-pp-09 (cited per function); fields are MSB first.
Decoders check every length before reading and raise DecodeError, never IndexError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field


class DecodeError(ValueError):
    """A payload is truncated or inconsistent."""


class Reader:
    """Bounds-checked cursor over one payload."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.remaining:
            raise DecodeError(f"need {n} bytes at {self.pos}, have {self.remaining}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def u16_bytes(self) -> bytes:
        """A 16-bit length followed by that many bytes."""
        return self.take(self.u16())

    def u32_bytes(self) -> bytes:
        return self.take(self.u32())

    def rest(self) -> bytes:
        return self.take(self.remaining)


def u16_bytes(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("field longer than 65535 bytes")
    return struct.pack(">H", len(data)) + data


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def u16(value: int) -> bytes:
    return struct.pack(">H", value)


# ID types, silc-pp 2.4.
ID_NONE, ID_SERVER, ID_CLIENT, ID_CHANNEL = 0, 1, 2, 3


@dataclass(frozen=True)
class SilcId:
    """An ID as the wire carries it: a type and opaque bytes (never decoded)."""

    type: int
    data: bytes

    def payload(self) -> bytes:
        """ID Payload, silc-pp 2.3.2.1."""
        return u16(self.type) + u16_bytes(self.data)

    @classmethod
    def from_payload(cls, data: bytes) -> SilcId:
        r = Reader(data)
        kind = r.u16()
        ident = r.u16_bytes()
        if kind not in (ID_SERVER, ID_CLIENT, ID_CHANNEL) or not ident:
            raise DecodeError(f"bad ID payload type {kind} len {len(ident)}")
        return cls(kind, ident)

    def __repr__(self) -> str:
        return f"SilcId({self.type}, {self.data.hex()})"


def decode_id_list(data: bytes, count: int) -> list[SilcId]:
    """Concatenated ID Payloads (JOIN/USERS reply Client ID lists)."""
    r = Reader(data)
    out = []
    for _ in range(count):
        kind = r.u16()
        out.append(SilcId(kind, r.u16_bytes()))
    if r.remaining:
        raise DecodeError("trailing bytes after ID list")
    return out


# --- Arguments, silc-pp 2.3.2.2 ---------------------------------------------------

Args = list[tuple[int, bytes]]


def encode_args(args: Args) -> bytes:
    return b"".join(u16(len(data)) + bytes([kind]) + data for kind, data in args)


def decode_args(r: Reader, count: int) -> Args:
    out = []
    for _ in range(count):
        length = r.u16()
        kind = r.u8()
        out.append((kind, r.take(length)))
    return out


@dataclass
class ArgMap:
    """Arguments looked up by their type number; repeated types keep every value."""

    items: Args = field(default_factory=list)

    def get(self, kind: int) -> bytes | None:
        for k, data in self.items:
            if k == kind:
                return data
        return None

    def all(self, kind: int) -> list[bytes]:
        return [data for k, data in self.items if k == kind]


# --- Command and Command Reply, silc-pp 2.3.13 / 2.3.14 ---------------------------


@dataclass
class Command:
    command: int
    ident: int
    args: ArgMap

    def encode(self) -> bytes:
        body = encode_args(self.args.items)
        head_len = 6 + len(body)
        return u16(head_len) + bytes([self.command, len(self.args.items)]) + u16(self.ident) + body

    @classmethod
    def decode(cls, data: bytes) -> Command:
        r = Reader(data)
        length = r.u16()
        command = r.u8()
        argc = r.u8()
        ident = r.u16()
        if length != len(data):
            raise DecodeError(f"command payload length {length} != {len(data)}")
        if command == 0:
            raise DecodeError("command 0 must be discarded")  # silc-pp 2.3.13
        args = decode_args(r, argc)
        if r.remaining:
            raise DecodeError("trailing bytes after command arguments")
        return cls(command, ident, ArgMap(args))

    def status(self) -> tuple[int, int]:
        """(status, error) of a reply's Status Payload, silc-commands 2.4."""
        raw = self.args.get(1)
        if raw is None or len(raw) != 2:
            raise DecodeError("command reply without a 2-byte Status Payload")
        return raw[0], raw[1]


# --- Notify, silc-pp 2.3.7 ---------------------------------------------------------


@dataclass
class Notify:
    type: int
    args: ArgMap

    def encode(self) -> bytes:
        body = encode_args(self.args.items)
        return u16(self.type) + u16(5 + len(body)) + bytes([len(self.args.items)]) + body

    @classmethod
    def decode(cls, data: bytes) -> Notify:
        r = Reader(data)
        kind = r.u16()
        length = r.u16()
        argc = r.u8()
        if length != len(data):
            raise DecodeError(f"notify payload length {length} != {len(data)}")
        args = decode_args(r, argc)
        if r.remaining:
            raise DecodeError("trailing bytes after notify arguments")
        return cls(kind, ArgMap(args))


# --- Small fixed payloads --------------------------------------------------------


@dataclass(frozen=True)
class ChannelKeyPayload:
    """silc-pp 2.3.10."""

    channel_id: bytes
    cipher: str
    key: bytes

    def encode(self) -> bytes:
        return u16_bytes(self.channel_id) + u16_bytes(self.cipher.encode()) + u16_bytes(self.key)

    @classmethod
    def decode(cls, data: bytes) -> ChannelKeyPayload:
        r = Reader(data)
        channel_id = r.u16_bytes()
        cipher = r.u16_bytes().decode("ascii", "replace")
        key = r.u16_bytes()
        if r.remaining or not channel_id or not key:
            raise DecodeError("bad Channel Key Payload")
        return cls(channel_id, cipher, key)


def public_key_payload(pk_type: int, key: bytes) -> bytes:
    """Public Key Payload, silc-pp 2.3.2.5."""
    return u16(len(key)) + u16(pk_type) + key


def decode_public_key_payload(data: bytes) -> tuple[int, bytes]:
    r = Reader(data)
    length = r.u16()
    pk_type = r.u16()
    key = r.take(length)
    if r.remaining:
        raise DecodeError("trailing bytes after public key payload")
    return pk_type, key


def channel_payload(name: str, channel_id: bytes, mode: int) -> bytes:
    """Channel Payload, silc-pp 2.3.2.4 (WHOIS reply channel list)."""
    return u16_bytes(name.encode()) + u16_bytes(channel_id) + u32(mode)


@dataclass(frozen=True)
class NewClient:
    """New Client Payload, silc-pp 2.3.17, plus silcd 1.1's optional nickname (README)."""

    username: str
    realname: str
    nickname: str | None = None

    def encode(self) -> bytes:
        out = u16_bytes(self.username.encode()) + u16_bytes(self.realname.encode())
        if self.nickname is not None:
            out += u16_bytes(self.nickname.encode())
        return out

    @classmethod
    def decode(cls, data: bytes) -> NewClient:
        r = Reader(data)
        username = r.u16_bytes().decode("utf-8")
        realname = r.u16_bytes().decode("utf-8")
        nickname = r.u16_bytes().decode("utf-8") if r.remaining >= 2 else None
        return cls(username, realname, nickname)


@dataclass(frozen=True)
class ConnectionAuth:
    """Connection Auth Payload, silc-ke-auth 3.1."""

    conn_type: int
    auth_data: bytes = b""

    def encode(self) -> bytes:
        return u16(4 + len(self.auth_data)) + u16(self.conn_type) + self.auth_data

    @classmethod
    def decode(cls, data: bytes) -> ConnectionAuth:
        r = Reader(data)
        length = r.u16()
        conn_type = r.u16()
        if length != len(data):
            raise DecodeError(f"connection auth length {length} != {len(data)}")
        return cls(conn_type, r.rest())


def status_payload(status: int, error: int = 0) -> bytes:
    """Command Status Payload, silc-commands 2.4."""
    return bytes([status, error])
