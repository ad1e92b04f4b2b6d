"""The Message Payload (silc-pp 2.3.2.6) and its protection by channel keys.

Layout: flags (2), message length (2), message, padding length (2), padding;
for channel messages then the IV (clear) and the MAC (clear). Channel
messages are AES-CBC encrypted under the channel key with a random IV per
message. The MAC is computed as the reference Toolkit 1.1 does:
HMAC(mac key, encrypted fields | IV | sender ID | channel ID); the draft's
older form without the IDs is accepted too (see specs/silc/README.md).

A SIGNED message (silc-flags-payloads 3.3) carries, after the encrypted part
and before the IV, a Public Key Payload and a signature, both in clear.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bridge.silc import crypto
from bridge.silc.buffer import DecodeError, Reader, lp16, u16
from bridge.silc.crypto import BLOCK, CryptoError, Hmac
from bridge.silc.payloads import PublicKeyPayload
from bridge.silc.pubkey import PK_TYPE_SILC, PublicKey, decode_public_key


class MessageFlag(enum.IntFlag):
    NONE = 0
    AUTOREPLY = 0x0001
    NOREPLY = 0x0002
    ACTION = 0x0004
    NOTICE = 0x0008
    REQUEST = 0x0010
    SIGNED = 0x0020
    REPLY = 0x0040
    DATA = 0x0080
    UTF8 = 0x0100
    ACK = 0x0200
    #: Not in the drafts: irssi-silc 1.1 tunnels private-message key
    #: negotiation (SKE packets) in messages with this flag. Refused.
    PACKET = 0x0800


@dataclass(frozen=True, slots=True)
class SignedPart:
    public_key: PublicKeyPayload
    signature: bytes
    signed_data: bytes  # start of the message payload | public key payload


@dataclass(frozen=True, slots=True)
class MessagePayload:
    flags: int
    data: bytes
    signed: SignedPart | None = None


class SignatureState(enum.Enum):
    NONE = "none"
    VALID = "valid"  # verified with the sender's own key
    INVALID = "invalid"
    UNCHECKED = "unchecked"  # no key to check it with


# --- unprotected form: private messages under session keys ---


def encode_plain(flags: int, data: bytes) -> bytes:
    """Private message protected by session keys: no padding, IV or MAC."""
    return u16(flags) + lp16(data) + u16(0)


def decode_plain(payload: bytes) -> MessagePayload:
    r = Reader(payload)
    flags = r.u16()
    data = r.lp16()
    r.take(r.u16())  # padding, if a sender added some
    rest = r.rest()
    return MessagePayload(flags, data, _read_signed(flags, payload[: len(payload) - len(rest)], rest))


# --- channel keys (silc-spec 4.4) and private channel keys ---


@dataclass(frozen=True, slots=True)
class ChannelKey:
    cipher: str
    key: bytes
    hmac: Hmac

    @classmethod
    def from_server(cls, cipher: str, raw: bytes, hmac_name: str) -> ChannelKey:
        """silc-spec 4.4: the raw key is the cipher key; MAC key = hash(raw key)."""
        _check_cipher(cipher, raw)
        return cls(cipher, raw, Hmac(hmac_name, crypto.digest(crypto.hmac_hash(hmac_name), raw)))

    @classmethod
    def from_passphrase(cls, passphrase: str, hmac_name: str = "hmac-sha1-96") -> ChannelKey:
        """A channel private key (SILC_CMODE_PRIVKEY). The drafts only say the
        passphrase SHOULD be processed as key material (silc-ke-auth 2.3,
        without HASH: silc-spec 4.6). Toolkit 1.1 clients, which decide what
        other users can read, take its "sending encryption key" with SHA-1 for
        a 256-bit key but cut every hash round to 16 bytes (they ask for
        16-byte IV and HMAC keys, and the rounds follow that length); the MAC
        key is then hash(key), as for any channel key (silc-spec 4.4)."""
        raw = crypto.stretch("sha1", 2, passphrase.encode("utf-8"), b"", 32, part=16)
        return cls.from_server("aes-256-cbc", raw, hmac_name)


def _check_cipher(cipher: str, key: bytes) -> None:
    spec = crypto.cipher_spec(cipher)
    if spec.mode != "cbc":
        raise CryptoError(f"channel cipher {cipher!r} is not supported (CBC only)")
    if len(key) != spec.key_len:
        raise CryptoError(f"channel key of {len(key)} bytes for {cipher}")


def encrypt_channel_message(
    key: ChannelKey,
    flags: int,
    data: bytes,
    sender_id: bytes,
    channel_id: bytes,
    random: Callable[[int], bytes] = os.urandom,
) -> bytes:
    pad = BLOCK - (6 + len(data)) % BLOCK
    plain = u16(flags) + lp16(data) + u16(pad) + random(pad)
    iv = random(BLOCK)
    body = crypto.cbc_encrypt(key.key, iv, plain) + iv
    return body + key.hmac.mac(body, sender_id, channel_id)


class NoKeyMatches(DecodeError):
    """None of the keys tried made the message's MAC."""


def decrypt_channel_message(
    keys: Iterable[ChannelKey], payload: bytes, sender_id: bytes, channel_id: bytes
) -> tuple[MessagePayload, ChannelKey]:
    """Find the key whose MAC matches (silc-pp 2.3.2.6), then decrypt.
    Raises NoKeyMatches if no key fits, DecodeError if the payload is malformed."""
    for key in keys:
        mac_len = key.hmac.length
        if len(payload) < 2 * BLOCK + mac_len:
            continue
        body, mac = payload[:-mac_len], payload[-mac_len:]
        if key.hmac.verify(mac, body, sender_id, channel_id) or key.hmac.verify(mac, body):
            return _open(key, body), key
    raise NoKeyMatches("no channel key matches the message MAC")


def _open(key: ChannelKey, body: bytes) -> MessagePayload:
    iv, sealed = body[-BLOCK:], body[:-BLOCK]
    aligned = len(sealed) - len(sealed) % BLOCK
    plain = crypto.cbc_decrypt(key.key, iv, sealed[:aligned])
    r = Reader(plain)
    flags = r.u16()
    data = r.lp16()
    r.take(r.u16())
    enc_len = len(plain) - r.remaining
    if enc_len % BLOCK:
        raise DecodeError(f"encrypted message part of {enc_len} bytes")
    return MessagePayload(flags, data, _read_signed(flags, plain[:enc_len], sealed[enc_len:]))


def _read_signed(flags: int, start: bytes, trailer: bytes) -> SignedPart | None:
    if not flags & MessageFlag.SIGNED:
        return None
    r = Reader(trailer)
    pk = PublicKeyPayload.read(r)
    signature = r.lp16()
    return SignedPart(pk, signature, start + pk.encode())


def check_signature(
    signed: SignedPart | None, sender_fingerprint: str | None, sender_key: PublicKey | None = None
) -> SignatureState:
    """Verify a SIGNED message (silc-flags-payloads 3.3). The Public Key
    Payload may carry the key, which must then be the sender's (its
    fingerprint), or only its type: Toolkit 1.1 clients always send it so
    (length 0, type 1), and the key to check with is the sender's as the
    server knows it (`sender_key`, from GETKEY). The signed data is the start
    of the payload | the Public Key Payload as sent; version-1 keys sign
    SHA-1 of it raw, version-2 keys use PKCS#1 v1.5 with the hash named inside."""
    if signed is None:
        return SignatureState.NONE
    if signed.public_key.pk_type != PK_TYPE_SILC:
        return SignatureState.UNCHECKED
    if signed.public_key.key:
        try:
            key = decode_public_key(signed.public_key.key)
        except DecodeError:
            return SignatureState.INVALID
        if sender_fingerprint is not None and key.fingerprint != sender_fingerprint:
            return SignatureState.INVALID
    elif sender_key is not None:
        key = sender_key
    else:
        return SignatureState.UNCHECKED
    data = signed.signed_data if key.version >= 2 else crypto.digest("sha1", signed.signed_data)
    return SignatureState.VALID if key.verify(signed.signature, data) else SignatureState.INVALID
