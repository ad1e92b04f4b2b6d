import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.silc.buffer import DecodeError
from bridge.silc.ids import IdType, SilcId, encode_id_payload
from bridge.silc.payloads import (
    Arguments,
    ChannelKeyPayload,
    Command,
    CommandPayload,
    DisconnectPayload,
    NewClientPayload,
    NotifyPayload,
    PublicKeyPayload,
    Status,
    decode_id_list,
    encode_id_list,
    encode_status,
    read_list,
)

CLIENT = SilcId(IdType.CLIENT, bytes(range(16)))


def test_command_payload_bytes_from_the_draft():
    # silc-pp 2.3.13: Payload Length (2, whole) | Command | Args Num | Command Identifier (2),
    # then Argument Payloads: Data Length (2) | Argument Type | data (2.3.2.2)
    cmd = CommandPayload(Command.NICK, 0x0102, Arguments.of((1, b"alice")))
    expected = bytes.fromhex("000e 04 01 0102") + bytes.fromhex("0005 01") + b"alice"
    assert cmd.encode() == expected
    assert CommandPayload.decode(expected) == cmd


def test_command_reply_status():
    reply = CommandPayload(Command.JOIN, 7, Arguments.of((1, encode_status(Status.ERR_BAD_PASSWORD))))
    decoded = CommandPayload.decode(reply.encode())
    assert decoded.status == Status.ERR_BAD_PASSWORD == decoded.error
    listed = CommandPayload(1, 1, Arguments.of((1, encode_status(Status.LIST_ITEM, Status.ERR_NO_SUCH_NICK))))
    assert listed.status == Status.LIST_ITEM and listed.error == Status.ERR_NO_SUCH_NICK


def test_arguments_keep_order_and_repeats():
    args = Arguments.of((4, b"a"), (2, None), (4, b"b"))
    assert args.items == ((4, b"a"), (4, b"b")) and args.get(4) == b"a" and args.get(2) is None


def test_command_zero_is_refused():
    with pytest.raises(DecodeError):
        CommandPayload.decode(bytes.fromhex("0006 00 00 0001"))


def test_notify_payload_bytes_from_the_draft():
    # silc-pp 2.3.7: Notify Type (2) | Payload Length (2, whole) | Argument Nums (1)
    n = NotifyPayload(2, Arguments.of((1, encode_id_payload(CLIENT))))
    expected = bytes.fromhex("0002 001c 01") + bytes.fromhex("0014 01") + encode_id_payload(CLIENT)
    assert n.encode() == expected
    assert NotifyPayload.decode(expected) == n


def test_list_flag_reads_several_payloads():
    a, b = NotifyPayload(0, Arguments.of((1, b"hi"))), NotifyPayload(9, Arguments.of((1, b"motd")))
    assert read_list(NotifyPayload.read, a.encode() + b.encode(), True) == [a, b]
    with pytest.raises(DecodeError):
        read_list(NotifyPayload.read, a.encode() + b.encode(), False)


def test_channel_key_payload_bytes():
    # silc-pp 2.3.10: Channel ID Length | ID | Cipher Name Length | name | Key Length | key
    p = ChannelKeyPayload(b"\x01" * 8, "aes-256-cbc", b"\x02" * 32)
    expected = b"\x00\x08" + b"\x01" * 8 + b"\x00\x0baes-256-cbc" + b"\x00\x20" + b"\x02" * 32
    assert p.encode() == expected
    assert ChannelKeyPayload.decode(expected) == p


def test_new_client_payload_bytes():
    p = NewClientPayload("xb", "relay")
    assert p.encode() == b"\x00\x02xb\x00\x05relay"
    assert NewClientPayload.decode(p.encode() + b"\x00\x01n") == p  # silcd's optional nickname


def test_disconnect_and_public_key_payloads():
    assert DisconnectPayload.decode(b"\x05bye") == DisconnectPayload(5, "bye")
    pk = PublicKeyPayload(1, b"KEY")
    assert pk.encode() == b"\x00\x03\x00\x01KEY"
    assert PublicKeyPayload.decode(pk.encode()) == pk


def test_id_and_mode_lists():
    ids = [CLIENT, SilcId(IdType.CLIENT, b"\x09" * 16)]
    assert decode_id_list(encode_id_list(ids), 2) == ids
    with pytest.raises(DecodeError):
        decode_id_list(encode_id_list(ids), 3)


DECODERS = [
    CommandPayload.decode,
    NotifyPayload.decode,
    ChannelKeyPayload.decode,
    NewClientPayload.decode,
    DisconnectPayload.decode,
    PublicKeyPayload.decode,
    lambda d: read_list(NotifyPayload.read, d, True),
    lambda d: read_list(CommandPayload.read, d, True),
    lambda d: decode_id_list(d, 3),
]


@pytest.mark.parametrize("decode", DECODERS)
@given(data=st.binary(max_size=200))
def test_decoders_survive_random_bytes(decode, data):
    try:
        decode(data)
    except DecodeError:
        pass
