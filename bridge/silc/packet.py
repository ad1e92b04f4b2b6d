"""The SILC packet: header, padding, encryption and MAC (silc-pp 2).

Pure encode/decode over bytes; no sockets. `PacketWriter` seals packets for
one direction and `PacketReader` frames, checks and opens received bytes. The
session swaps their keys (after SKE and on rekey) between packets.

Layout (silc-pp 2.2): payload length (2, header + data, without padding),
flags, type, pad length, reserved, source ID length, destination ID length,
source ID type, source ID, destination ID type, destination ID; then padding,
then data; then the MAC over sequence number | encrypted packet (2.6).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass

from bridge.silc.buffer import DecodeError, Reader, u8, u16, u32
from bridge.silc.crypto import BLOCK, Hmac, PacketCipher
from bridge.silc.ids import SilcId, make_id

HEADER_FIXED = 10
MAX_PACKET = 0xFFFF  # Payload Length is 16 bits


class PacketType(enum.IntEnum):
    """silc-pp 2.3."""

    NONE = 0
    DISCONNECT = 1
    SUCCESS = 2
    FAILURE = 3
    REJECT = 4
    NOTIFY = 5
    ERROR = 6
    CHANNEL_MESSAGE = 7
    CHANNEL_KEY = 8
    PRIVATE_MESSAGE = 9
    PRIVATE_MESSAGE_KEY = 10
    COMMAND = 11
    COMMAND_REPLY = 12
    KEY_EXCHANGE = 13
    KEY_EXCHANGE_1 = 14
    KEY_EXCHANGE_2 = 15
    CONNECTION_AUTH_REQUEST = 16
    CONNECTION_AUTH = 17
    NEW_ID = 18
    NEW_CLIENT = 19
    NEW_SERVER = 20
    NEW_CHANNEL = 21
    REKEY = 22
    REKEY_DONE = 23
    HEARTBEAT = 24
    KEY_AGREEMENT = 25
    RESUME_ROUTER = 26
    FTP = 27
    RESUME_CLIENT = 28
    ACK = 29


class PacketFlag(enum.IntFlag):
    NONE = 0
    PRIVMSG_KEY = 0x01
    LIST = 0x02
    BROADCAST = 0x04
    COMPRESSED = 0x08
    ACK = 0x10


class PacketError(Exception):
    """A packet that must be dropped; the stream can go on."""


class FramingError(PacketError):
    """The stream cannot be framed any more; the connection must be reset."""


@dataclass(frozen=True, slots=True)
class Packet:
    type: int
    payload: bytes = b""
    flags: int = 0
    src: SilcId | None = None
    dst: SilcId | None = None

    def is_special(self) -> bool:
        """Payload protected by another key, left alone by the session cipher
        (silc-pp 2.5.2, 2.5.3)."""
        return is_special(self.type, self.flags)


def is_special(ptype: int, flags: int) -> bool:
    return ptype == PacketType.CHANNEL_MESSAGE or (
        ptype == PacketType.PRIVATE_MESSAGE and bool(flags & PacketFlag.PRIVMSG_KEY)
    )


def padding_length(length: int, block_size: int = BLOCK, maximum: bool = False) -> int:
    """silc-pp 2.7: 16 - (len mod bs), plus bs when under 8; or the maximum
    padding, 128 - (len mod bs), for packets that carry secrets."""
    if maximum:
        return 128 - (length % block_size)
    pad = 16 - (length % block_size)
    return pad + block_size if pad < 8 else pad


def _id_fields(sid: SilcId | None) -> tuple[int, bytes]:
    return (0, b"") if sid is None else (int(sid.type), sid.data)


def encode_header(packet: Packet, pad_len: int) -> bytes:
    src_type, src = _id_fields(packet.src)
    dst_type, dst = _id_fields(packet.dst)
    length = HEADER_FIXED + len(src) + len(dst) + len(packet.payload)
    if length > MAX_PACKET:
        raise ValueError(f"packet too long ({length} bytes)")
    return (
        u16(length)
        + u8(packet.flags)
        + u8(packet.type)
        + u8(pad_len)
        + u8(0)
        + u8(len(src))
        + u8(len(dst))
        + u8(src_type)
        + src
        + u8(dst_type)
        + dst
    )


@dataclass(frozen=True, slots=True)
class Header:
    length: int  # header + data, without padding
    flags: int
    type: int
    pad_len: int
    src_len: int
    dst_len: int

    @property
    def header_len(self) -> int:
        return HEADER_FIXED + self.src_len + self.dst_len

    @property
    def total(self) -> int:
        return self.length + self.pad_len


def decode_fixed_header(first: bytes) -> Header:
    """The first 8 bytes say how long the packet is."""
    r = Reader(first[:8])
    length, flags, ptype, pad_len, _reserved, src_len, dst_len = (
        r.u16(),
        r.u8(),
        r.u8(),
        r.u8(),
        r.u8(),
        r.u8(),
        r.u8(),
    )
    header = Header(length, flags, ptype, pad_len, src_len, dst_len)
    if header.length < header.header_len:
        raise DecodeError(f"payload length {length} shorter than its header")
    return header


def decode_packet(plain: bytes, header: Header) -> Packet:
    """A whole decrypted packet (header, padding, data) into a Packet."""
    r = Reader(plain)
    r.take(8)
    src_type = r.u8()
    src = r.take(header.src_len)
    dst_type = r.u8()
    dst = r.take(header.dst_len)
    r.take(header.pad_len)
    payload = r.take(header.length - header.header_len)
    r.end()
    return Packet(
        type=header.type,
        payload=payload,
        flags=header.flags,
        src=make_id(src_type, src) if header.src_len else None,
        dst=make_id(dst_type, dst) if header.dst_len else None,
    )


class PacketWriter:
    """Seals packets for sending: pads, encrypts, MACs, counts sequence numbers."""

    def __init__(self, random: Callable[[int], bytes] = os.urandom) -> None:
        self.cipher: PacketCipher | None = None
        self.hmac: Hmac | None = None
        self.sequence = 0  # silc-pp 2.6: counts MAC'd packets only, never reset
        self.bytes_sealed = 0
        self._random = random

    def set_keys(self, cipher: PacketCipher, hmac: Hmac) -> None:
        self.cipher, self.hmac = cipher, hmac
        self.bytes_sealed = 0

    def seal(self, packet: Packet, max_padding: bool = False) -> bytes:
        src_len = len(packet.src.data) if packet.src else 0
        dst_len = len(packet.dst.data) if packet.dst else 0
        header_len = HEADER_FIXED + src_len + dst_len
        special = packet.is_special()
        # Special packets pad the header only: the payload is already a
        # multiple of the block size under its own key (silc-pp 2.7). CTR
        # modes are padded the same way, although they need not be (silc-spec
        # 3.10.1.2): silcd decrypts a whole first block and closes the
        # connection on a packet shorter than 16 bytes.
        pad = padding_length(header_len if special else header_len + len(packet.payload), maximum=max_padding)
        header = encode_header(packet, pad)
        clear = header + self._random(pad)
        if self.cipher is None or self.hmac is None:
            return clear + packet.payload
        ctx = self.cipher.packet()
        if special:
            wire = ctx.update(clear) + packet.payload
        else:
            wire = ctx.update(clear + packet.payload)
        mac = self.hmac.mac(u32(self.sequence & 0xFFFFFFFF), wire)
        self.sequence = (self.sequence + 1) & 0xFFFFFFFF
        self.bytes_sealed += len(wire)
        return wire + mac


class PacketReader:
    """Frames received bytes into packets (silc-pp 2.5.1, 2.10).

    `feed` adds bytes; `next` returns the next packet, None when more bytes
    are needed, raises PacketError for a packet that was consumed and must be
    dropped, and FramingError when the stream is beyond repair.
    """

    MAX_BUFFER = 4 * (MAX_PACKET + 512)

    def __init__(self) -> None:
        self.cipher: PacketCipher | None = None
        self.hmac: Hmac | None = None
        self.sequence = 0
        self.bytes_opened = 0
        self._buf = bytearray()
        self._pending: tuple[Header, bytes, object] | None = None  # header, decrypted head, ctx

    def set_keys(self, cipher: PacketCipher, hmac: Hmac) -> None:
        if self._pending is not None:
            raise RuntimeError("keys changed in the middle of a packet")
        self.cipher, self.hmac = cipher, hmac
        self.bytes_opened = 0

    def feed(self, data: bytes) -> None:
        if len(self._buf) + len(data) > self.MAX_BUFFER:
            raise FramingError("receive buffer overflow")
        self._buf += data

    def next(self) -> Packet | None:
        if self._pending is None:
            head_len = 8 if self.cipher is None or self.cipher.mode == "ctr" else BLOCK
            if len(self._buf) < head_len:
                return None
            ctx = self.cipher.packet() if self.cipher else None
            head = bytes(self._buf[:head_len])
            head_plain = ctx.update(head) if ctx else head
            try:
                header = decode_fixed_header(head_plain)
            except DecodeError as exc:
                raise FramingError(f"bad packet header: {exc}") from None
            self._check_frame(header)
            self._pending = (header, head_plain, ctx)
        header, head_plain, ctx = self._pending
        mac_len = self.hmac.length if self.cipher and self.hmac else 0
        if len(self._buf) < header.total + mac_len:
            return None
        self._pending = None
        wire = bytes(self._buf[: header.total])
        mac = bytes(self._buf[header.total : header.total + mac_len])
        del self._buf[: header.total + mac_len]
        head_len = len(head_plain)
        if ctx is None:
            plain = wire
        else:
            enc_end = (
                header.header_len + header.pad_len if is_special(header.type, header.flags) else header.total
            )
            plain = head_plain + ctx.update(wire[head_len:enc_end]) + wire[enc_end:]
            mac_ok = self.hmac.verify(mac, u32(self.sequence), wire)
            self.sequence = (self.sequence + 1) & 0xFFFFFFFF
            self.bytes_opened += len(wire)
            if not mac_ok:
                raise PacketError(f"bad MAC on packet type {header.type}")
        try:
            return decode_packet(plain, header)
        except DecodeError as exc:
            raise PacketError(f"malformed packet type {header.type}: {exc}") from None

    def _check_frame(self, header: Header) -> None:
        if self.cipher is not None and self.cipher.mode == "cbc":
            enc_len = (
                header.header_len + header.pad_len if is_special(header.type, header.flags) else header.total
            )
            if enc_len % BLOCK or enc_len < BLOCK:
                raise FramingError(f"encrypted length {enc_len} is not a multiple of the block size")
