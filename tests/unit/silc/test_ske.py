import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.silc.buffer import DecodeError
from bridge.silc.ske import (
    Initiator,
    KePayload,
    PfsRekey,
    Proposal,
    SkeError,
    SkeStatus,
    StartPayload,
    check_version,
    rekey_material,
)

from .keys import key_pair
from .responder import Responder


def test_start_payload_bytes_from_the_draft():
    # silc-ke-auth 2.1.1: RESERVED | Flags | Payload Length (2, whole payload) | Cookie (16) |
    # then 16-bit length-prefixed version, groups, PKCS, ciphers, hashes, HMACs, compression
    p = StartPayload(0x04, bytes(16), "SILC-1.2-1.0", "g", "rsa", "c", "h", "m", "none")
    body = bytes(16) + b"\x00\x0cSILC-1.2-1.0\x00\x01g\x00\x03rsa\x00\x01c\x00\x01h\x00\x01m\x00\x04none"
    assert p.encode() == bytes([0, 4]) + (4 + len(body)).to_bytes(2, "big") + body
    assert StartPayload.decode(p.encode()) == p


def test_start_payload_without_compression_list():
    p = StartPayload(0, bytes(16), "SILC-1.2-1.0", "g", "rsa", "c", "h", "m", "")
    shortened = p.encode()[:-2]
    shortened = shortened[:2] + len(shortened).to_bytes(2, "big") + shortened[4:]
    assert StartPayload.decode(shortened).compression == ""


def test_ke_payload_bytes():
    # silc-ke-auth 2.1.2: PK Length (2) | PK Type (2) | PK | Public Data (2+n) | Signature (2+n)
    p = KePayload(1, b"PK", b"\x05", b"SG")
    assert p.encode() == bytes.fromhex("0002 0001") + b"PK" + b"\x00\x01\x05" + b"\x00\x02SG"
    assert KePayload.decode(p.encode()) == p


def run_exchange(proposal=Proposal(), **responder_args):
    client, server = key_pair("client"), key_pair("server")
    ini = Initiator(client, proposal)
    resp = Responder(server, **responder_args)
    ke1 = ini.ke1(resp.reply_start(ini.start()))
    result = ini.finish(resp.ke2(ke1))
    return ini, resp, result


def test_full_exchange_derives_the_same_keys_on_both_sides():
    ini, resp, result = run_exchange()
    assert result.material == resp.material
    assert result.ske_hash == resp.ske_hash
    assert result.server_key.encoded == key_pair("server").public.encoded
    assert result.negotiated.cipher == "aes-256-cbc"  # first of the client's list
    assert result.negotiated.group == "diffie-hellman-group2"
    assert resp.client_key.encoded == key_pair("client").public.encoded


def test_forced_mutual_auth_makes_the_client_sign():
    _, resp, result = run_exchange(Proposal(mutual=False), force_mutual=True)
    assert result.negotiated.flags & 0x04  # Responder asserted SIGN_i itself


def test_without_mutual_auth_no_signature_is_sent():
    client = key_pair("client")
    ini = Initiator(client, Proposal(mutual=False))
    resp = Responder(key_pair("server"), force_mutual=False)
    ke1 = KePayload.decode(ini.ke1(resp.reply_start(ini.start())))
    assert ke1.signature == b"" and ke1.public_key == client.public.encoded


def test_bad_server_signature_is_refused():
    ini = Initiator(key_pair("client"))
    resp = Responder(key_pair("server"))
    ke1 = ini.ke1(resp.reply_start(ini.start()))
    with pytest.raises(SkeError) as err:
        ini.finish(resp.ke2(ke1, tamper_signature=True))
    assert err.value.status is SkeStatus.INCORRECT_SIGNATURE


def test_changed_cookie_and_unoffered_choices_are_refused():
    ini = Initiator(key_pair("client"))
    ini.start()
    reply = StartPayload(
        0, bytes(16), "SILC-1.2-1", "diffie-hellman-group1", "rsa", "aes-256-cbc", "sha1", "hmac-sha1-96"
    )
    with pytest.raises(SkeError) as err:
        ini.ke1(reply.encode())
    assert err.value.status is SkeStatus.INVALID_COOKIE
    for field, value, status in [
        ("ciphers", "twofish-256-cbc", SkeStatus.UNSUPPORTED_CIPHER),
        ("groups", "diffie-hellman-group3", SkeStatus.UNSUPPORTED_GROUP),
        ("hmacs", "hmac-sha1-96,hmac-md5-96", SkeStatus.UNSUPPORTED_HMAC),
    ]:
        fields = dict(
            version="SILC-1.2-1",
            groups="diffie-hellman-group1",
            pkcs="rsa",
            ciphers="aes-256-cbc",
            hashes="sha1",
            hmacs="hmac-sha1-96",
        )
        fields[field] = value
        ini = Initiator(key_pair("client"))
        cookie = StartPayload.decode(ini.start()).cookie
        with pytest.raises(SkeError) as err:
            ini.ke1(StartPayload(0, cookie, **fields).encode())
        assert err.value.status is status


def test_version_strings():
    check_version("SILC-1.2-1.1.18")
    check_version("SILC-1.2-2.4.5 Vendor Limited")
    for bad in ("SILC-2.0-1", "SILC-1.2", "silc", "SILC-1.2-\x01"):
        with pytest.raises(SkeError):
            check_version(bad)


def test_rekey_without_pfs_uses_the_sending_key_only():
    _, _, result = run_exchange()
    new = rekey_material(result.negotiated, result.material.send_key)
    assert new.send_key != result.material.send_key and len(new.send_key) == 32


def test_pfs_rekey_agrees():
    _, _, result = run_exchange(Proposal(pfs=True))
    assert result.negotiated.pfs
    a, b = PfsRekey(result.negotiated), PfsRekey(result.negotiated)
    assert a.material(b.payload()) == b.material(a.payload())
    assert KePayload.decode(a.payload()).public_key == b""


@given(st.binary(max_size=300))
def test_decoders_survive_random_bytes(data):
    for decode in (StartPayload.decode, KePayload.decode):
        try:
            decode(data)
        except DecodeError:
            pass
    ini = Initiator(key_pair("client"))
    ini.start()
    with pytest.raises(SkeError):
        ini.ke1(data)
