import pytest

from bridge.config_types import SilcNetworkConfig
from bridge.core.events import (
    BRIDGE,
    Endpoint,
    Identity,
    Join,
    Kick,
    Message,
    MessageKind,
    NickChange,
    Part,
    Topic,
)
from bridge.silc import events as ev
from bridge.silc.adapter import SilcAdapter
from bridge.silc.text import clean, decode_text, split_utf8
from bridge.silc.message import MessageFlag, SignatureState
from bridge.silc.session import KeyRefused
from bridge.store.sqlite import SqliteStore

from .keys import key_pair


def adapter(**config):
    emitted = []
    a = SilcAdapter(SilcNetworkConfig(name="silcnet", host="silc.test", **config), emitted.append, SqliteStore(":memory:"))
    a.add_endpoint("Hackers", {"passphrase": None})
    return a, emitted


ALICE = ev.User(b"\x01" * 16, "alice", "AB" * 20)
BOB = ev.User(b"\x02" * 16, "bob", "CD" * 20)
END = Endpoint("silcnet", "Hackers")


@pytest.mark.parametrize(
    "flags,kind",
    [
        (MessageFlag.UTF8, MessageKind.PLAIN),
        (MessageFlag.ACTION, MessageKind.ACTION),
        (MessageFlag.NOTICE, MessageKind.NOTICE),
    ],
)
def test_channel_messages_become_messages_from_key_identities(flags, kind):
    a, out = adapter()
    a._on_event(ev.ChannelMessage("hackers", ALICE, flags, b"hi"))
    a._on_event(ev.ChannelMessage("hackers", ALICE, flags, b"hi"))
    assert out == [Message(END, Identity("silcnet", "AB" * 20, "alice"), "hi", kind,
                           native_id=m.native_id) for m in out]
    ids = [m.native_id for m in out]  # SILC has no ids: each gets one of its own
    assert len(set(ids)) == 2 and all(i.startswith("silc-") for i in ids)


def test_signed_messages_say_so_and_data_messages_are_skipped():
    a, out = adapter()
    a._on_event(ev.ChannelMessage("hackers", ALICE, MessageFlag.UTF8, b"x", SignatureState.VALID))
    a._on_event(ev.ChannelMessage("hackers", ALICE, MessageFlag.UTF8, b"y", SignatureState.INVALID))
    a._on_event(ev.ChannelMessage("hackers", ALICE, MessageFlag.DATA, b"MIME-Version: 1.0\r\n"))
    assert [m.text for m in out] == ["[signed] x", "[BAD SIGNATURE] y"]


def test_membership_and_topic_events():
    a, out = adapter()
    alice = Identity("silcnet", "AB" * 20, "alice")
    bob = Identity("silcnet", "CD" * 20, "bob")
    a._on_event(ev.Joined("hackers", ALICE))
    a._on_event(ev.Left("hackers", ALICE, "bye", quit=True))
    a._on_event(ev.NickChanged(("hackers", "elsewhere"), ALICE, "alicia"))
    a._on_event(ev.TopicSet("hackers", None, "new"))
    a._on_event(ev.Kicked("hackers", BOB, ALICE, "spam"))
    a._on_event(ev.Joined("not-linked", ALICE))
    assert out == [
        Join(END, alice),
        Part(END, alice, "bye", quit=True),
        NickChange(END, alice, "alicia"),
        Topic(END, Identity("silcnet", "silc-server", "server"), "new"),
        Kick(END, alice, bob, "spam"),
    ]


def test_render_uses_the_configured_formats():
    a, _ = adapter(format="[{nick}] {text}", action_format="* {nick} {text}")
    bob = Identity("irc", "bob", "bob")
    assert a._render(Message(END, bob, "hi")) == (MessageFlag.UTF8, "[bob] hi")
    assert a._render(Message(END, bob, "waves", MessageKind.ACTION)) == (
        MessageFlag.UTF8 | MessageFlag.ACTION,
        "* bob waves",
    )
    assert a._render(Message(END, BRIDGE, "linked")) == (MessageFlag.UTF8 | MessageFlag.NOTICE, "linked")
    assert a._render(Message(END, bob, "{text} {nick}")) == (MessageFlag.UTF8, "[bob] {text} {nick}")


def test_server_key_is_pinned_on_first_use_then_enforced():
    a, _ = adapter()
    first, second = key_pair("server").public, key_pair("other").public
    a._check_server_key(first)
    assert a.store.pinned_key("silcnet", "silc.test:706") == first.fingerprint
    a._check_server_key(first)
    with pytest.raises(KeyRefused) as err:
        a._check_server_key(second)
    message = str(err.value)
    assert first.fingerprint[:4] in message and second.fingerprint[:4] in message and "pinned" in message


def test_configured_fingerprint_wins_over_pinning():
    key = key_pair("server").public
    spaced = " ".join(key.fingerprint[i : i + 4] for i in range(0, 40, 4)).lower()
    a, _ = adapter(server_fingerprint=spaced)
    a._check_server_key(key)
    assert a.store.pinned_key("silcnet", "silc.test:706") is None
    with pytest.raises(KeyRefused, match="server_fingerprint"):
        a._check_server_key(key_pair("other").public)


def test_security_lines_and_notice_before_connecting():
    a, _ = adapter()
    lines = a.security()
    assert lines[0] == "SILC silcnet (silc.test:706): not connected"
    assert lines[1] == "SILC silcnet/Hackers: not joined"
    assert "end-to-end encryption ends at the bridge" in lines[-1]
    a.add_endpoint("secret", {"passphrase": "pw"})
    assert "channel private key" in a.security()[2]
    only = a.security("SECRET")  # one room's report: the session, that channel, the e2e line
    assert len(only) == 3 and only[1].startswith("SILC silcnet/secret: channel private key")
    notice = a.e2e_notice("Hackers", ["xmpp", "libera"])
    assert "xmpp, libera" in notice and "end-to-end encryption ends at the bridge" in notice


def test_is_own_compares_the_key_fingerprint():
    a, _ = adapter()
    a._own_fingerprint = "AB" * 20
    assert a.is_own(Identity("silcnet", "AB" * 20, "xbridge"))
    assert not a.is_own(Identity("other", "AB" * 20, "xbridge"))


def test_text_helpers():
    assert clean("a\x00b\x1b[1mc\nd\te") == "ab[1mc\nd\te"
    assert decode_text("ü".encode(), MessageFlag.UTF8) == "ü"
    assert decode_text(b"\xfc", 0) == "ü"  # Latin-1 from old clients
    chunks = split_utf8("é" * 5, 4)
    assert chunks == ["éé".encode()] * 2 + ["é".encode()]
    assert split_utf8("", 10) == []


def test_corrections_and_replies_read_as_text_on_silc():
    a, _ = adapter()
    alice = Identity("xmpp", "alice@x", "alice")
    xmpp = Endpoint("xmpp", "r@muc")
    a._render(Message(xmpp, alice, "hello wrld", native_id="m1"))
    assert a._render(Message(xmpp, alice, "hello world", replaces="m1"))[1] == "<alice> * hello world"
    assert a._render(Message(xmpp, alice, "yes", reply_to="m0", reply_nick="bob"))[1] == "<alice> bob: yes"
