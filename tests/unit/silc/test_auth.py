import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.silc.auth import AuthMethod, AuthRequestPayload, ConnectionAuthPayload, auth_data
from bridge.silc.buffer import DecodeError

from .keys import key_pair
from .test_ske import run_exchange


def test_connection_auth_payload_bytes():
    # silc-ke-auth 3.1: Payload Length (2, whole) | Connection Type (2) | Authentication Data
    assert ConnectionAuthPayload(1).encode() == bytes.fromhex("0004 0001")
    p = ConnectionAuthPayload(1, b"pw")
    assert p.encode() == bytes.fromhex("0006 0001") + b"pw"
    assert ConnectionAuthPayload.decode(p.encode()) == p


def test_auth_request_payload_bytes():
    assert AuthRequestPayload(1, 0).encode() == bytes.fromhex("0001 0000")
    assert AuthRequestPayload.decode(bytes.fromhex("0001 0002")).method == AuthMethod.PUBLIC_KEY
    with pytest.raises(DecodeError):
        AuthRequestPayload.decode(bytes.fromhex("0001 0009"))


def test_auth_data_per_method():
    _, resp, result = run_exchange()
    pair = key_pair("client")
    assert auth_data(AuthMethod.NONE, result, pair, None) == b""
    assert auth_data(AuthMethod.PASSPHRASE, result, pair, "pässword") == "pässword".encode()
    with pytest.raises(ValueError):
        auth_data(AuthMethod.PASSPHRASE, result, pair, None)
    signature = auth_data(AuthMethod.PUBLIC_KEY, result, pair, None)
    # silc-ke-auth 3.2.2: sign(hash(HASH | Key Exchange Start Payload))
    expected = hashlib.new(result.negotiated.hash, result.ske_hash + resp.start_bytes).digest()
    assert pair.public.verify(signature, expected)


@given(st.binary(max_size=40))
def test_decoders_survive_random_bytes(data):
    for decode in (AuthRequestPayload.decode, ConnectionAuthPayload.decode):
        try:
            decode(data)
        except DecodeError:
            pass
