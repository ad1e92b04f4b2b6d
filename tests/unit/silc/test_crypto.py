import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bridge.silc import crypto
from bridge.silc.crypto import CryptoError, Hmac

from .keys import key_pair


def test_hmac_96_truncates_rfc_vectors():
    key = b"\x0b" * 20
    # RFC 2202 test case 1 and RFC 4231 test case 1
    assert Hmac("hmac-sha1-96", key).mac(b"Hi There") == bytes.fromhex("b617318655057264e28bc0b6")
    assert Hmac("hmac-sha256-96", key).mac(b"Hi ", b"There") == bytes.fromhex("b0344c61d8db38535ca8afce")
    assert len(Hmac("hmac-sha1", key).mac(b"")) == 20


def test_unknown_algorithms_are_refused():
    for bad in ("hmac-sha512", "none"):
        with pytest.raises(CryptoError):
            Hmac(bad, b"k")
    for bad in ("twofish-256-cbc", "aes-512-cbc", "aes-256-rcbc", "none"):
        with pytest.raises(CryptoError):
            crypto.cipher_spec(bad)


def test_dh_groups_are_safe_primes_of_the_right_size():
    for name, bits in (("diffie-hellman-group1", 1024), ("diffie-hellman-group2", 1536)):
        p = crypto.dh_prime(name)
        assert p.bit_length() == bits
        q = (p - 1) // 2
        assert pow(2, p - 1, p) == 1 and pow(3, q - 1, q) == 1  # Fermat, both prime
    assert hex(crypto.dh_prime("diffie-hellman-group1")).endswith("ece65381ffffffffffffffff")


def test_mp_encoding_has_no_leading_zeros():
    assert crypto.mp_encode(0x00FF) == b"\xff"
    assert crypto.mp_encode(0x0100) == b"\x01\x00"
    assert crypto.mp_decode(b"\x00\x01") == 1


def test_key_material_follows_ske_2_3():
    key, h = b"K" * 20, b"H" * 20
    m = crypto.process_key_material("sha1", key, h, 32)
    sha1 = lambda d: hashlib.sha1(d).digest()
    assert m.send_iv == sha1(b"\x00" + key + h)
    assert m.receive_iv == sha1(b"\x01" + key + h)
    k1 = sha1(b"\x02" + key + h)
    assert m.send_key == (k1 + sha1(key + h + k1))[:32]
    k1 = sha1(b"\x03" + key + h)
    assert m.receive_key == (k1 + sha1(key + h + k1))[:32]
    assert m.send_hmac_key == sha1(b"\x04" + key + h)
    assert m.receive_hmac_key == sha1(b"\x05" + key + h)
    assert m.swapped().send_key == m.receive_key


def test_key_material_stretches_three_rounds_for_long_keys():
    key, h = b"k", b""
    m = crypto.process_key_material("md5", key, h, 40)
    md5 = lambda d: hashlib.md5(d).digest()
    k1 = md5(b"\x02" + key)
    k2 = md5(key + k1)
    k3 = md5(key + k1 + k2)
    assert m.send_key == (k1 + k2 + k3)[:40]


def test_cbc_packet_cipher_chains_across_packets():
    key, iv = os.urandom(32), os.urandom(16)
    enc = crypto.packet_cipher("aes-256-cbc", key, iv, b"", encrypt=True)
    a = enc.packet().update(b"A" * 32)
    b = enc.packet().update(b"B" * 16)
    whole = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor().update(b"A" * 32 + b"B" * 16)
    assert a + b == whole


def test_ctr_counter_block_layout():
    # silcd's layout (see CtrPacketCipher): HASH[0:4] | IV[0:8] + packet number | block counter
    key, iv, ske_hash = os.urandom(16), os.urandom(16), os.urandom(32)
    ctr = crypto.packet_cipher(
        "aes-128-ctr", key, iv, crypto.ctr_prefix("sha256", ske_hash, iv), encrypt=True
    )
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    start = int.from_bytes(iv[:8], "big")
    for packet_no in (1, 2):
        data = os.urandom(20)
        out = ctr.packet().update(data)
        counter = ((start + packet_no) % 2**64).to_bytes(8, "big")
        stream = b"".join(ecb.update(ske_hash[:4] + counter + block.to_bytes(4, "big")) for block in (1, 2))
        assert out == bytes(x ^ y for x, y in zip(data, stream))


def test_ctr_prefix_after_rekey_hashes_the_iv():
    iv = os.urandom(16)
    assert crypto.ctr_prefix("sha1", None, iv) == hashlib.sha1(iv[:8]).digest()[:4]
    assert crypto.ctr_prefix("sha1", b"HASH", iv) == b"HASH"


def test_raw_signature_is_pkcs1_type1_without_digestinfo():
    pair = key_pair()
    data = hashlib.sha256(b"hash").digest()
    sig = pair.sign(data)
    numbers = pair.private.public_key().public_numbers()
    block = pow(int.from_bytes(sig, "big"), numbers.e, numbers.n).to_bytes(len(sig), "big")
    assert block.startswith(b"\x00\x01\xff") and block.endswith(b"\x00" + data)
    assert crypto.rsa_verify(pair.private.public_key(), sig, data, version=1)
    assert not crypto.rsa_verify(pair.private.public_key(), sig, data[:-1] + b"x", version=1)


def test_version_2_signatures_are_standard_pkcs1_with_digestinfo():
    pair = key_pair()
    sig = pair.private.sign(b"message", padding.PKCS1v15(), hashes.SHA256())
    assert crypto.rsa_verify(pair.private.public_key(), sig, b"message", version=2)
    assert not crypto.rsa_verify(pair.private.public_key(), sig, b"message", version=1)
