"""Message Payload (silc-pp 2.3.2.6) and channel keys (silc-spec 4.4).

Channel messages carry a random IV after the padding and a MAC after the IV.
The MAC form follows the README (what Toolkit 1.1 sends): HMAC over the
encrypted fields and IV, then the sender's and the destination's raw ID bytes;
the draft's form without the IDs is accepted on receive.
"""

from __future__ import annotations

import hmac as std_hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .crypto import BLOCK_LEN, CIPHERS, HMACS, digest, mac
from .wire import DecodeError, Reader, u16


@dataclass(frozen=True)
class ChannelKey:
    """A channel's cipher and keys: the raw key encrypts, hash(raw key) MACs."""

    cipher: str
    key: bytes
    hmac: str

    @property
    def mac_key(self) -> bytes:
        return digest(HMACS[self.hmac][0], self.key)


def private_channel_key(passphrase: str, hmac: str = "hmac-sha1-96") -> ChannelKey:
    """A channel private key from a passphrase (channel mode PRIVKEY), as the
    Toolkit 1.1 client derives it; the drafts leave this open.  The passphrase
    goes through silc-ke-auth 2.3's "Sending Encryption Key" with SHA-1, but the
    Toolkit asks for 256 key bits in 16-byte parts: K1[:16] | K2[:16] with
    K2 = SHA-1(passphrase | K1[:16]).  Hence always a 256-bit cipher."""
    data = passphrase.encode()
    k1 = digest("sha1", b"\x02" + data)[:16]
    k2 = digest("sha1", data + k1)[:16]
    return ChannelKey("aes-256-cbc", k1 + k2, hmac)


@dataclass(frozen=True)
class Message:
    flags: int
    data: bytes


def _crypt(key: ChannelKey, iv: bytes, data: bytes, encrypt: bool) -> bytes:
    _, mode = CIPHERS[key.cipher]
    if mode == "cbc":
        cipher = Cipher(algorithms.AES(key.key), modes.CBC(iv))
    else:
        # The Toolkit's CTR increments the IV before the first block.
        counter = ((int.from_bytes(iv, "big") + 1) % 2**128).to_bytes(16, "big")
        cipher = Cipher(algorithms.AES(key.key), modes.CTR(counter))
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def _plain(flags: int, data: bytes, padded: bool) -> bytes:
    head = u16(flags) + u16(len(data)) + data
    if not padded:
        return head + u16(0)
    pad = 16 - (6 + len(data)) % 16
    return head + u16(pad) + os.urandom(pad)


def encode_channel_message(
    key: ChannelKey, flags: int, data: bytes, sender_id: bytes, channel_id: bytes
) -> bytes:
    iv = os.urandom(BLOCK_LEN)
    sealed = _crypt(key, iv, _plain(flags, data, True), encrypt=True) + iv
    return sealed + mac(key.hmac, key.mac_key, sealed + sender_id + channel_id)


def decode_channel_message(
    keys: list[ChannelKey], payload: bytes, sender_id: bytes, channel_id: bytes
) -> Message:
    """Try each key (newest first); the MAC tells which one was used."""
    for key in keys:
        mac_len = HMACS[key.hmac][1]
        if len(payload) < mac_len + 2 * BLOCK_LEN:
            continue
        sealed, got = payload[:-mac_len], payload[-mac_len:]
        new_form = mac(key.hmac, key.mac_key, sealed + sender_id + channel_id)
        old_form = mac(key.hmac, key.mac_key, sealed)
        if not (std_hmac.compare_digest(got, new_form) or std_hmac.compare_digest(got, old_form)):
            continue
        encrypted, iv = sealed[:-BLOCK_LEN], sealed[-BLOCK_LEN:]
        if len(encrypted) % BLOCK_LEN:
            raise DecodeError("channel message not a multiple of the block")
        return _parse(_crypt(key, iv, encrypted, encrypt=False))
    raise DecodeError("no channel key verifies the message MAC")


def encode_private_message(flags: int, data: bytes) -> bytes:
    """Under session keys: no padding, IV or MAC (silc-pp 2.3.2.6)."""
    return _plain(flags, data, False)


def decode_private_message(payload: bytes) -> Message:
    return _parse(payload)


def _parse(plain: bytes) -> Message:
    r = Reader(plain)
    flags = r.u16()
    data = r.u16_bytes()
    r.u16_bytes()  # padding
    return Message(flags, data)
