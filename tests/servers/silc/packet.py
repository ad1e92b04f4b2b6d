"""SILC packets on an asyncio stream: header, padding, encryption, MAC (silc-pp 2.1-2.10)."""

from __future__ import annotations

import asyncio
import os
import struct
from dataclasses import dataclass
from hmac import compare_digest

from .crypto import BLOCK_LEN, HMACS, SessionCipher, mac
from .numbers import PacketFlag, PacketType
from .wire import ID_CHANNEL, ID_NONE

HEADER_LEN = 10  # fixed part, both ID type bytes included (silc-pp 2.2)
MAX_ID_LEN = 28  # longest ID: the 224-bit IPv6 Client ID (silc-spec 3.1.1)
MAX_PAD = 128  # silc-pp 2.7


class PacketError(Exception):
    """The byte stream cannot be framed any more; the connection must close."""


class MacError(PacketError):
    """A packet failed its MAC (silc-pp 2.6)."""


class MalformedPacket(Exception):
    """One framed packet has bad header fields; drop it, keep the connection."""


@dataclass
class Packet:
    type: int
    data: bytes = b""
    flags: int = 0
    src_type: int = ID_NONE
    src_id: bytes = b""
    dst_type: int = ID_NONE
    dst_id: bytes = b""

    def __repr__(self) -> str:
        try:
            name = PacketType(self.type).name
        except ValueError:
            name = str(self.type)
        return f"Packet({name}, flags={self.flags}, len={len(self.data)})"


def is_special(packet_type: int, flags: int) -> bool:
    """Channel messages, and private messages under a private key, keep their
    payload as the sender encrypted it: only header, IDs and padding use the
    session key (silc-pp 2.5.2, 2.5.3)."""
    return packet_type == PacketType.CHANNEL_MESSAGE or (
        packet_type == PacketType.PRIVATE_MESSAGE and bool(flags & PacketFlag.PRIVMSG_KEY)
    )


def pad_length(length: int, block: int) -> int:
    """silc-pp 2.7: 16 - (len mod block), plus a block when under 8."""
    pad = 16 - length % block
    return pad + block if pad < 8 else pad


class Direction:
    """Keys and sequence number for one direction (silc-pp 2.6)."""

    def __init__(self) -> None:
        self.cipher: SessionCipher | None = None
        self.hmac: str | None = None
        self.mac_key = b""
        self.seq = 0

    def set_keys(self, cipher: SessionCipher, hmac: str, mac_key: bytes) -> None:
        """New keys; the sequence number is never reset, not even by rekey."""
        self.cipher, self.hmac, self.mac_key = cipher, hmac, mac_key

    @property
    def mac_len(self) -> int:
        return HMACS[self.hmac][1] if self.hmac else 0

    def compute_mac(self, wire: bytes) -> bytes:
        return mac(self.hmac, self.mac_key, struct.pack(">I", self.seq) + wire)


class PacketStream:
    """Frames, encrypts and MACs packets over one TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.send_dir = Direction()
        self.recv_dir = Direction()

    # --- sending ---

    def encode(self, packet: Packet, long_pad: bool = False) -> bytes:
        """Assemble one packet as silc-pp 2.9 orders it: header, padding,
        encryption, then the MAC over sequence number and ciphertext."""
        d = self.send_dir
        ids = (
            bytes([packet.src_type]) + packet.src_id + bytes([packet.dst_type]) + packet.dst_id
        )
        header_len = 8 + len(ids)
        true_len = header_len + len(packet.data)
        if true_len > 0xFFFF or len(packet.src_id) > MAX_ID_LEN or len(packet.dst_id) > MAX_ID_LEN:
            raise ValueError("packet too long")
        special = is_special(packet.type, packet.flags)
        cipher = d.cipher
        block = BLOCK_LEN  # also the default with no cipher yet (README)
        if long_pad:
            pad = MAX_PAD - true_len % block
        elif cipher is not None and not cipher.pads:
            # No padding in CTR mode, except that silcd reads a whole first
            # block: it drops a shorter packet as malformed and closes the
            # connection (seen with CONNECTION_AUTH before the client has an ID).
            pad = max(0, BLOCK_LEN - true_len)
        else:
            pad = pad_length(header_len if special else true_len, block)
        fixed = struct.pack(
            ">HBBBBBB", true_len, packet.flags, packet.type, pad, 0,
            len(packet.src_id), len(packet.dst_id),
        )
        clear = fixed + ids + os.urandom(pad)
        if special:
            wire = clear if cipher is None else self._encrypt(clear)
            wire += packet.data
        else:
            clear += packet.data
            wire = clear if cipher is None else self._encrypt(clear)
        if d.hmac:
            wire += d.compute_mac(wire)
            d.seq = (d.seq + 1) % 2**32
        return wire

    def _encrypt(self, data: bytes) -> bytes:
        self.send_dir.cipher.begin_packet()
        return self.send_dir.cipher.encrypt(data)

    def send(self, packet: Packet, long_pad: bool = False) -> None:
        """Queue one packet.  Encoding and writing happen without an await in
        between, so sequence numbers follow the order on the wire."""
        if self.writer.is_closing():
            return
        self.writer.write(self.encode(packet, long_pad))

    # --- receiving ---

    async def receive(self) -> Packet:
        """Read, check and decrypt the next packet (silc-pp 2.5.1, 2.10).

        Raises PacketError when the stream cannot be framed (bad lengths, bad
        MAC), asyncio.IncompleteReadError at EOF.
        """
        d = self.recv_dir
        cipher = d.cipher
        if cipher is not None:
            cipher.begin_packet()
        # CBC must decrypt a whole block to see the header; CTR and plaintext
        # need only the fixed part.
        first_len = BLOCK_LEN if cipher is not None and cipher.pads else HEADER_LEN
        first_wire = await self.reader.readexactly(first_len)
        first = first_wire if cipher is None else cipher.decrypt(first_wire)
        true_len, flags, ptype, pad, _reserved, src_len, dst_len = struct.unpack(
            ">HBBBBBB", first[:8]
        )
        if src_len > MAX_ID_LEN or dst_len > MAX_ID_LEN:
            raise PacketError(f"bad ID lengths {src_len}/{dst_len}")
        header_len = HEADER_LEN + src_len + dst_len
        if true_len < header_len:
            raise PacketError(f"payload length {true_len} shorter than header {header_len}")
        special = is_special(ptype, flags)
        total = true_len + pad
        encrypted_len = header_len + pad if special else total
        if cipher is not None and cipher.pads and encrypted_len % BLOCK_LEN:
            raise PacketError(f"encrypted length {encrypted_len} not a multiple of the block")
        if total < (BLOCK_LEN if cipher is not None else first_len):
            # Like silcd ("Bad ID lengths in packet"): see encode().
            raise PacketError(f"encrypted packet of {total} bytes is shorter than a cipher block")
        rest_wire = await self.reader.readexactly(total - first_len)
        if d.hmac:
            got_mac = await self.reader.readexactly(d.mac_len)
            if not compare_digest(got_mac, d.compute_mac(first_wire + rest_wire)):
                raise MacError(f"bad MAC on packet type {ptype} seq {d.seq}")
            d.seq = (d.seq + 1) % 2**32
        if cipher is None:
            clear = first + rest_wire
        else:
            cut = encrypted_len - first_len
            clear = first + cipher.decrypt(rest_wire[:cut]) + rest_wire[cut:]
        return _parse(clear, ptype, flags, pad, src_len, dst_len)


def _parse(clear: bytes, ptype: int, flags: int, pad: int, src_len: int, dst_len: int) -> Packet:
    pos = 8
    src_type = clear[pos]
    src_id = clear[pos + 1 : pos + 1 + src_len]
    pos += 1 + src_len
    dst_type = clear[pos]
    dst_id = clear[pos + 1 : pos + 1 + dst_len]
    pos += 1 + dst_len
    if src_type > ID_CHANNEL or dst_type > ID_CHANNEL:
        raise MalformedPacket(f"bad ID types {src_type}/{dst_type}")
    return Packet(ptype, clear[pos + pad :], flags, src_type, src_id, dst_type, dst_id)
