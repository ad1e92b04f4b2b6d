import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.silc.buffer import DecodeError, Reader, lp16, u16, u32
from bridge.silc.ids import IdType, SilcId, decode_id_payload, encode_id_payload, make_id


def test_reader_reads_msb_first_and_checks_lengths():
    r = Reader(bytes.fromhex("0102 0304 0506 0003 616263"))
    assert r.u16() == 0x0102
    assert r.u32() == 0x03040506
    assert r.lp16() == b"abc"
    r.end()
    with pytest.raises(DecodeError):
        r.u8()


def test_reader_refuses_lengths_beyond_the_data():
    with pytest.raises(DecodeError):
        Reader(b"\x00\x05ab").lp16()
    with pytest.raises(DecodeError):
        Reader(b"ab").end()


def test_writers():
    assert u16(0x1234) == b"\x12\x34"
    assert u32(1) == b"\x00\x00\x00\x01"
    assert lp16(b"xy") == b"\x00\x02xy"
    with pytest.raises(OverflowError):
        lp16(b"x" * 70000)


def test_id_payload_layout_from_the_draft():
    # silc-pp 2.3.2.1: ID Type (2) | ID Length (2) | ID Data
    cid = SilcId(IdType.CLIENT, bytes(range(16)))
    assert encode_id_payload(cid) == bytes.fromhex("0002 0010") + bytes(range(16))
    assert decode_id_payload(encode_id_payload(cid)) == cid


@pytest.mark.parametrize(
    "id_type,length",
    [(IdType.SERVER, 8), (IdType.SERVER, 20), (IdType.CLIENT, 16), (IdType.CLIENT, 28), (IdType.CHANNEL, 8)],
)
def test_valid_id_lengths(id_type, length):
    assert make_id(id_type, b"\x01" * length).data == b"\x01" * length


@pytest.mark.parametrize("id_type,length", [(IdType.SERVER, 16), (IdType.CLIENT, 8), (0, 0), (7, 8)])
def test_invalid_ids_are_refused(id_type, length):
    with pytest.raises(DecodeError):
        make_id(id_type, b"\x01" * length)


@given(st.binary(max_size=64))
def test_id_payload_decoder_survives_random_bytes(data):
    try:
        decode_id_payload(data)
    except DecodeError:
        pass
