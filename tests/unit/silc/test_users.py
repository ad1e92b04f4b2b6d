"""XMPP users' own SILC clients: their nicks, their keys, and the relay passing on nothing of theirs."""

import os

import pytest

from bridge.config_types import SilcNetworkConfig
from bridge.core.events import BRIDGE, Endpoint, Identity, Message, MessageKind, Part
from bridge.silc import events as ev
from bridge.silc.adapter import SilcAdapter
from bridge.silc.message import MessageFlag
from bridge.silc.users import known_fingerprints, silc_nick, user_key_pair
from bridge.store.sqlite import SqliteStore
from tests.servers.silc.identifiers import client_id, prepare_nickname

ALICE = Identity("xmpp", "alice@example.org", "alice")


@pytest.mark.parametrize("nick", [
    "alice", "Alice Smith", "who? me!", "a@b,c*", "tab\there", "☃ snow", "€uro", "zero\u200bwidth",
    "\u00a0nbsp", "\ue000private", "ＦＵＬＬ", "", " ", "x" * 200, "é" * 100,
])
def test_a_muc_nick_becomes_a_nickname_the_server_takes(nick):
    made = silc_nick(nick)
    prepare_nickname(made)  # the test server's own reading of the profile: raises if refused
    assert len(made.encode()) <= 128
    assert len(silc_nick(nick, spare=2).encode()) <= 126


def test_plain_nicks_stay_as_they_are():
    assert silc_nick("alice") == "alice"
    assert silc_nick("Bob_the-2nd") == "Bob_the-2nd"
    assert silc_nick("who? me!") == "who__me_"


def test_a_users_key_pair_is_made_once_private_and_known_after_a_restart(tmp_path):
    first = user_key_pair(str(tmp_path), ALICE)
    again = user_key_pair(str(tmp_path), ALICE)
    bob = user_key_pair(str(tmp_path), Identity("xmpp", "bob@example.org", "bob"))
    assert first.public.fingerprint == again.public.fingerprint != bob.public.fingerprint
    files = list((tmp_path / "users").iterdir())
    assert len(files) == 2 and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert (tmp_path / "users").stat().st_mode & 0o777 == 0o700
    assert "alice" not in " ".join(f.name for f in files)  # named by a hash, not the JID
    assert "alice" not in first.public.identifier
    assert known_fingerprints(str(tmp_path)) == {first.public.fingerprint, bob.public.fingerprint}


def test_the_relay_passes_on_nothing_an_xmpp_users_own_client_says_or_does():
    emitted = []
    adapter = SilcAdapter(SilcNetworkConfig(name="silcnet", host="silc.test"), emitted.append,
                          SqliteStore(":memory:"))
    adapter.add_endpoint("hackers", {"xmpp_users": "connect"})
    own = ev.User(b"\x01" * 16, "alice", "AB" * 20)
    sam = ev.User(b"\x02" * 16, "sam", "CD" * 20)
    adapter.users.fingerprints.add(own.fingerprint)
    for event in (ev.ChannelMessage("hackers", own, MessageFlag.UTF8, b"hi"), ev.Joined("hackers", own),
                  ev.Left("hackers", own, "idle", quit=True), ev.NickChanged(("hackers",), own, "alicia")):
        adapter._on_event(event)
    assert emitted == []
    adapter._on_event(ev.Kicked("hackers", own, sam, "out"))  # no Kick to act on; the link is told
    [told] = emitted
    assert told.sender == BRIDGE and told.kind == MessageKind.NOTICE and "sam kicked alice" in told.text
    emitted.clear()
    assert adapter.is_own(Identity("silcnet", own.fingerprint, "alice"))
    adapter._on_event(ev.ChannelMessage("hackers", sam, MessageFlag.UTF8, b"hi"))
    assert [m.text for m in emitted] == ["hi"]


def test_lines_go_through_the_relay_in_channels_without_connect_or_with_no_clients_allowed():
    adapter = SilcAdapter(SilcNetworkConfig(name="silcnet", host="silc.test", xmpp_user_clients=0),
                          lambda e: None, SqliteStore(":memory:"))
    adapter.add_endpoint("hackers", {"xmpp_users": "connect"})
    adapter.add_endpoint("other", {})
    said = Message(Endpoint("xmpp", "room@muc.example.org"), ALICE, "hi")
    assert adapter.users.speaker("hackers", said) is None
    assert adapter.users.speaker("other", said) is None
    assert adapter.users.users == {}
    assert not adapter.wants(Part(Endpoint("xmpp", "room@muc.example.org"), ALICE))


def test_the_test_server_tells_apart_2_8_clients_of_one_nick_from_one_address():
    ip = bytes([127, 0, 0, 1])
    taken = [client_id(ip, "alice")]
    for _ in range(255):
        taken.append(client_id(ip, "alice", taken))
    assert len(set(taken)) == 256
    with pytest.raises(ValueError):
        client_id(ip, "alice", taken)
    assert client_id(ip, "bob", taken)  # another nickname has room
    assert client_id(os.urandom(4), "alice", taken)
