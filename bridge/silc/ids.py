"""SILC IDs: server, client and channel IDs, kept as opaque bytes.

The layouts of silc-spec 3.1.1, 3.2.2 and 3.4.1 are only used to check
lengths; IDs are never decoded, just compared (the reference server even
writes the port of its Server ID in host byte order).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bridge.silc.buffer import DecodeError, Reader, u16


class IdType(enum.IntEnum):
    """silc-pp 2.4."""

    NONE = 0
    SERVER = 1
    CLIENT = 2
    CHANNEL = 3


#: Valid ID lengths: IPv4-based and IPv6-based (silc-spec 3.1.1, 3.2.2, 3.4.1).
ID_LENGTHS = {IdType.SERVER: (8, 20), IdType.CLIENT: (16, 28), IdType.CHANNEL: (8, 20)}


@dataclass(frozen=True, slots=True)
class SilcId:
    type: IdType
    data: bytes

    def __post_init__(self) -> None:
        check_id(self.type, self.data)

    def __str__(self) -> str:
        return f"{self.type.name.lower()}:{self.data.hex()}"


def check_id(id_type: int, data: bytes) -> None:
    """Raise DecodeError unless `data` can be an ID of `id_type`."""
    try:
        kind = IdType(id_type)
    except ValueError:
        raise DecodeError(f"unknown ID type {id_type}") from None
    if kind is IdType.NONE or len(data) not in ID_LENGTHS[kind]:
        raise DecodeError(f"bad {kind.name} ID length {len(data)}")


def make_id(id_type: int, data: bytes) -> SilcId:
    check_id(id_type, data)
    return SilcId(IdType(id_type), bytes(data))


def encode_id_payload(sid: SilcId) -> bytes:
    """ID Payload, silc-pp 2.3.2.1: type (2), length (2), ID data."""
    return u16(sid.type) + u16(len(sid.data)) + sid.data


def read_id_payload(reader: Reader) -> SilcId:
    id_type = reader.u16()
    return make_id(id_type, reader.take(reader.u16()))


def decode_id_payload(data: bytes) -> SilcId:
    reader = Reader(data)
    sid = read_id_payload(reader)
    reader.end()
    return sid
