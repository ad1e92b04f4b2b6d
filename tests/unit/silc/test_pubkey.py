import hashlib
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.silc.buffer import DecodeError
from bridge.silc.pubkey import (
    decode_public_key,
    encode_public_key,
    load_or_create_key_pair,
    normalize_fingerprint,
    pretty_fingerprint,
)

from .keys import key_pair


def test_public_key_layout_from_the_spec():
    # silc-spec 3.11: length (4) | alg len (2) "rsa" | id len (2) id | e (4+n) | n (4+n)
    pub = key_pair().private.public_key()
    nums = pub.public_numbers()
    n_bytes = nums.n.to_bytes(128, "big")
    ident = b"UN=a, HN=b"
    body = b"\x00\x03rsa" + len(ident).to_bytes(2, "big") + ident
    body += b"\x00\x00\x00\x03\x01\x00\x01" + b"\x00\x00\x00\x80" + n_bytes
    expected = len(body).to_bytes(4, "big") + body
    assert encode_public_key(pub, "UN=a, HN=b") == expected
    decoded = decode_public_key(expected)
    assert decoded.identifier == "UN=a, HN=b" and decoded.version == 1
    assert decoded.fingerprint == hashlib.sha1(expected).hexdigest().upper()


def test_version_2_keys_are_recognised():
    pub = key_pair().private.public_key()
    assert decode_public_key(encode_public_key(pub, "UN=a, HN=b, V=2")).version == 2


def test_non_rsa_and_tiny_keys_are_refused():
    body = b"\x00\x03dss\x00\x00"
    with pytest.raises(DecodeError):
        decode_public_key(len(body).to_bytes(4, "big") + body)
    body = b"\x00\x03rsa\x00\x00" + b"\x00\x00\x00\x01\x03" + b"\x00\x00\x00\x01\x21"
    with pytest.raises(DecodeError):
        decode_public_key(len(body).to_bytes(4, "big") + body)


@given(st.binary(max_size=300))
def test_decoder_survives_random_bytes(data):
    try:
        decode_public_key(data)
    except DecodeError:
        pass


def test_key_pair_is_created_once_with_private_mode(tmp_path):
    d = tmp_path / "keys"
    first = load_or_create_key_pair(d, "xbridge")
    prv = d / "silc.prv.pem"
    assert stat.S_IMODE(prv.stat().st_mode) == 0o600
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    again = load_or_create_key_pair(d, "xbridge")
    assert again.public.encoded == first.public.encoded
    assert "UN=xbridge" in again.public.identifier


def test_fingerprint_formats():
    fp = "AB" * 20
    assert pretty_fingerprint(fp).startswith("ABAB ABAB ")
    assert normalize_fingerprint("ab:ab " + "ab" * 18) == fp
