import hashlib
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.silc import crypto
from bridge.silc.buffer import DecodeError
from bridge.silc.crypto import CryptoError, Hmac
from bridge.silc.message import (
    ChannelKey,
    MessageFlag,
    SignatureState,
    check_signature,
    decode_plain,
    decrypt_channel_message,
    encode_plain,
    encrypt_channel_message,
)
from bridge.silc.payloads import PublicKeyPayload

from .keys import key_pair

SENDER = bytes(range(16))
CHANNEL = bytes(8)


def server_key(cipher="aes-256-cbc", hmac="hmac-sha1-96"):
    return ChannelKey.from_server(cipher, os.urandom(crypto.cipher_spec(cipher).key_len), hmac)


def test_channel_mac_key_is_hash_of_raw_key():
    raw = b"\x11" * 32
    key = ChannelKey.from_server("aes-256-cbc", raw, "hmac-sha1-96")
    assert key.hmac.mac(b"x") == Hmac("hmac-sha1-96", hashlib.sha1(raw).digest()).mac(b"x")


def test_channel_message_layout_by_hand():
    key = server_key()
    data = b"hello"
    wire = encrypt_channel_message(key, MessageFlag.UTF8, data, SENDER, CHANNEL, random=lambda n: b"\x07" * n)
    iv = b"\x07" * 16
    pad = 16 - (6 + len(data)) % 16
    plain = bytes.fromhex("0100 0005") + data + pad.to_bytes(2, "big") + b"\x07" * pad
    body = crypto.cbc_encrypt(key.key, iv, plain) + iv
    # Toolkit 1.1 MAC form: encrypted fields | IV | sender ID | channel ID
    assert wire == body + key.hmac.mac(body + SENDER + CHANNEL)


def test_round_trip_and_older_mac_form():
    key = server_key()
    wire = encrypt_channel_message(key, MessageFlag.ACTION, "grüße".encode(), SENDER, CHANNEL)
    msg, used = decrypt_channel_message([key], wire, SENDER, CHANNEL)
    assert (msg.flags, msg.data.decode(), used) == (MessageFlag.ACTION, "grüße", key)
    body = wire[:-12]
    old_form = body + key.hmac.mac(body)  # silc-pp 2.3.2.6 as drafted, without IDs
    assert decrypt_channel_message([key], old_form, SENDER, CHANNEL)[0].data == "grüße".encode()


def test_key_is_chosen_by_mac_and_wrong_ids_fail():
    old, new = server_key(), server_key("aes-128-cbc", "hmac-sha256-96")
    wire = encrypt_channel_message(old, 0, b"in flight", SENDER, CHANNEL)
    assert decrypt_channel_message([new, old], wire, SENDER, CHANNEL)[1] is old
    with pytest.raises(DecodeError):
        decrypt_channel_message([new], wire, SENDER, CHANNEL)
    with pytest.raises(DecodeError):
        decrypt_channel_message([old], wire, b"\x01" * 16, CHANNEL)


def test_passphrase_key_as_toolkit_clients_derive_it():
    key = ChannelKey.from_passphrase("secret")
    k1 = hashlib.sha1(b"\x02secret").digest()[:16]
    k2 = hashlib.sha1(b"secret" + k1).digest()[:16]
    assert key.key == k1 + k2 and key.cipher == "aes-256-cbc"
    assert key.hmac.mac(b"x") == Hmac("hmac-sha1-96", hashlib.sha1(k1 + k2).digest()).mac(b"x")
    wire = encrypt_channel_message(key, 0, b"psst", SENDER, CHANNEL)
    assert (
        decrypt_channel_message([ChannelKey.from_passphrase("secret")], wire, SENDER, CHANNEL)[0].data
        == b"psst"
    )


def test_ctr_channel_keys_are_refused():
    with pytest.raises(CryptoError):
        server_key("aes-256-ctr")


def test_plain_private_message_layout():
    assert encode_plain(MessageFlag.UTF8, b"hi") == bytes.fromhex("0100 0002") + b"hi" + b"\x00\x00"
    assert decode_plain(encode_plain(MessageFlag.NOTICE, b"hi")).flags == MessageFlag.NOTICE


def signed_wire(pair, key, text, include_key=True, tamper=False, sender=SENDER, channel=CHANNEL):
    """A SIGNED channel message built by hand from silc-flags-payloads 3.3."""
    flags = MessageFlag.SIGNED | MessageFlag.UTF8
    pad = 16 - (6 + len(text)) % 16
    start = (
        flags.to_bytes(2, "big") + len(text).to_bytes(2, "big") + text + pad.to_bytes(2, "big") + bytes(pad)
    )
    pk = PublicKeyPayload(1, pair.public.encoded if include_key else b"").encode()
    signature = pair.sign(hashlib.sha1(start + pk).digest())
    if tamper:
        signature = bytes([signature[0] ^ 1]) + signature[1:]
    iv = os.urandom(16)
    body = crypto.cbc_encrypt(key.key, iv, start) + pk + len(signature).to_bytes(2, "big") + signature + iv
    return body + key.hmac.mac(body, sender, channel)


def test_signed_messages_are_verified_against_the_sender_key():
    pair, key = key_pair(), server_key()
    msg, _ = decrypt_channel_message([key], signed_wire(pair, key, b"signed!"), SENDER, CHANNEL)
    assert msg.data == b"signed!"
    fp = pair.public.fingerprint
    assert check_signature(msg.signed, fp) is SignatureState.VALID
    assert check_signature(msg.signed, "00" * 20) is SignatureState.INVALID
    bad, _ = decrypt_channel_message([key], signed_wire(pair, key, b"x", tamper=True), SENDER, CHANNEL)
    assert check_signature(bad.signed, fp) is SignatureState.INVALID
    keyless, _ = decrypt_channel_message(
        [key], signed_wire(pair, key, b"x", include_key=False), SENDER, CHANNEL
    )
    assert check_signature(keyless.signed, fp) is SignatureState.UNCHECKED
    assert check_signature(None, fp) is SignatureState.NONE


def test_signed_messages_without_the_key_are_verified_with_the_known_key():
    """Toolkit 1.1 clients send the Public Key Payload as length 0, type 1;
    the signature is still over the payload start | that Public Key Payload."""
    pair, key = key_pair(), server_key()
    msg, _ = decrypt_channel_message([key], signed_wire(pair, key, b"me", include_key=False), SENDER, CHANNEL)
    assert msg.signed.signed_data.endswith(bytes.fromhex("0000 0001"))
    fp = pair.public.fingerprint
    assert check_signature(msg.signed, fp, pair.public) is SignatureState.VALID
    assert check_signature(msg.signed, fp, key_pair("other").public) is SignatureState.INVALID
    bad, _ = decrypt_channel_message(
        [key], signed_wire(pair, key, b"me", include_key=False, tamper=True), SENDER, CHANNEL
    )
    assert check_signature(bad.signed, fp, pair.public) is SignatureState.INVALID


@given(st.binary(max_size=200))
def test_decoders_survive_random_bytes(data):
    key = ChannelKey("aes-128-cbc", b"\x00" * 16, Hmac("hmac-sha1-96", b""))
    for decode in (
        lambda: decode_plain(data),
        lambda: decrypt_channel_message([key], data, SENDER, CHANNEL),
        # a payload whose MAC is right but whose content is random
        lambda: decrypt_channel_message([key], data + key.hmac.mac(data), SENDER, CHANNEL),
    ):
        try:
            decode()
        except DecodeError:
            pass
