"""XMPP users' own IRC connections on plumbed links: their nicks, the relay passing on nothing
of theirs, and a user who comes back at once getting a connection anew."""

import asyncio
from types import SimpleNamespace

import pytest
from irc.features import FeatureSet
from structlog.testing import capture_logs

from bridge.config_types import IrcNetworkConfig
from bridge.core.events import BRIDGE, Endpoint, Identity, Kick, Message, Part
from bridge.irc.adapter import IrcAdapter

ROOM = Endpoint("xmpp", "room@muc.example.org")
ALICE = Identity("xmpp", "alice@example.org", "alice")
BOB = Identity("xmpp", "bob@example.org", "bob")


@pytest.fixture
async def adapter():
    emitted = []
    config = IrcNetworkConfig("net", host="127.0.0.1", port=1, tls=False, xmpp_user_clients=2)
    adapter = IrcAdapter(config, emitted.append)
    adapter.emitted = emitted
    adapter.add_endpoint("#room", {"xmpp_users": "connect"})
    features = FeatureSet()
    features.load(["relay", "NICKLEN=16", "are supported"])
    adapter.client.conn = SimpleNamespace(features=features)
    yield adapter
    await adapter.users.close()


def test_a_muc_nick_becomes_an_irc_nick_with_the_suffix_within_nicklen(adapter):
    users = adapter.users
    assert users.nick_for("alice") == "alice[x]"
    assert users.nick_for("Alice Smith") == "Alice_Smith[x]"
    assert users.nick_for("7of9") == "_7of9[x]"
    assert users.nick_for("a very long nick indeed") == "a_very_long[x]"  # 16 with room for "__"
    adapter.roster.joined("#room", "alice[x]")  # someone on IRC has it
    assert users.nick_for("alice") == "alice[x]_"


def test_without_nicklen_the_rfc_length_holds(adapter):
    adapter.client.conn = None
    assert adapter.users.nick_for("alice") == "alic[x]"  # 9 with room for "__"


def test_the_relay_passes_on_nothing_of_their_connections(adapter):
    here = Endpoint("net", "#room")
    own, bob = Identity("net", "nick:alice[x]", "alice[x]"), Identity("net", "nick:bob", "bob")
    adapter.users._forget("alice[x]")  # a connection that just quit
    adapter.emit(Message(here, own, "an echo"))
    adapter.emit(Kick(here, bob, own, "out"))
    adapter.emit(Message(here, bob, "from bob"))
    assert [e.text for e in adapter.emitted] == ["from bob"]
    assert adapter.is_own(own) and not adapter.is_own(bob)
    adapter.roster.joined("#room", "alice[x]")
    assert adapter.reach("#room", "alice[x]") is None  # no private message to it through the relay


async def test_a_user_who_comes_back_at_once_gets_a_connection_anew(adapter):
    users = adapter.users
    assert users.speaker("#room", Message(ROOM, ALICE, "one")) is None and users.users == {}
    adapter.client.registered = True  # a connection is made once the relay knows the network's NICKLEN
    assert users.speaker("#room", Message(ROOM, ALICE, "one")) is None  # connecting: the relay says it
    first = users.users[ALICE.native_id].link
    assert users.follow("#room", Part(ROOM, ALICE, "bye"))
    assert users.users == {} and users.connections.links == {}
    users.speaker("#room", Message(ROOM, ALICE, "back"))
    again = users.users[ALICE.native_id].link
    assert again is not first and users.connections.links == {(ALICE.native_id, "net"): again}
    adapter.remove_endpoint("#room")  # a reload unlinked it: the connection goes too
    assert users.users == {} and users.connections.links == {}
    assert users.speaker("#room", Message(ROOM, ALICE, "more")) is None and users.users == {}


async def test_a_connection_kicked_on_irc_leaves_its_user_to_the_relay_and_the_link_is_told(adapter):
    users = adapter.users
    adapter.client.registered = True
    users.speaker("#room", Message(ROOM, ALICE, "one"))
    users.out(ALICE.native_id, "net", "#Room", "behave", kicked_by="bob")
    assert users.users == {} and users.connections.links == {}  # quit at once
    [told] = adapter.emitted
    assert told.sender == BRIDGE and told.endpoint == Endpoint("net", "#room")
    assert told.text.startswith("muc-bridge: bob kicked alice from net/#room (behave);")
    assert users.speaker("#room", Message(ROOM, ALICE, "two")) is None and users.users == {}  # held: the relay


async def test_each_end_of_a_connection_is_one_log_event_naming_network_user_and_room(adapter):
    users = adapter.users
    adapter.client.registered = True
    moderator = Identity("xmpp", "mod@example.org", "mod")
    with capture_logs() as logs:
        users.speaker("#room", Message(ROOM, ALICE, "one"))
        users.follow("#room", Part(ROOM, ALICE, "off to my secret place"))  # she leaves
        users.speaker("#room", Message(ROOM, BOB, "spam"))
        users.follow("#room", Kick(ROOM, moderator, BOB, "secret reasons"))  # he is kicked
        users.speaker("#room", Message(ROOM, ALICE, "back"))
        users.users[ALICE.native_id].last_active -= 60
        users.idle = 0.02
        sweep = asyncio.create_task(users.run())
        for _ in range(100):  # her connection is reaped
            if not users.users:
                break
            await asyncio.sleep(0.01)
        sweep.cancel()
        users.speaker("#room", Message(ROOM, ALICE, "once more"))
        await users.close()  # shutdown
    closed = [e for e in logs if "closed" in e["event"]]
    opened = [e["event"] for e in logs if "opened" in e["event"]]
    assert opened == ["xmpp_user_client_opened"] * len(closed)  # one event each way, not two
    assert [(e["event"], e["reason"]) for e in closed] == [
        ("xmpp_user_client_closed", "left"), ("xmpp_user_client_closed", "kicked"),
        ("xmpp_user_client_closed", "idle"), ("xmpp_user_client_closed", "shutdown")]
    hashes = [e["user_hash"] for e in closed]
    assert all(e["network"] == "net" and e["rooms"] == ["#room"] for e in closed)
    assert hashes[0] == hashes[2] == hashes[3] != hashes[1] and hashes[0].startswith("x")
    assert not [e for e in logs if "secret" in repr(e) or "example.org" in repr(e)]  # no words, no JIDs
