"""Private messages between SILC users and people elsewhere, as the SILC user sees them:
what reaches whom, and every message the bridge says itself."""

from dataclasses import replace

import pytest

from bridge.config_types import SilcNetworkConfig
from bridge.core.events import Endpoint, Identity, MessageKind, Private
from bridge.core.private import Undeliverable
from bridge.silc import events as ev
from bridge.silc.adapter import SilcAdapter
from bridge.silc.channel import Channel
from bridge.silc.ids import IdType, SilcId
from bridge.silc.message import MessageFlag, SignatureState
from bridge.silc.private import OWN_FLAGS
from bridge.silc.session.errors import NotConnected
from bridge.silc.session.users import Users
from bridge.store.sqlite import SqliteStore

SAM = ev.User(b"\x01" * 16, "sam", "AB" * 20)
TOM = ev.User(b"\x02" * 16, "tom", "CD" * 20)  # in no channel of the bridge's
RELAY = b"\x09" * 16
ALICE = Identity("xmpp", "r@muc/alice", "alice")
ROOM = Endpoint("xmpp", "r@muc")


class FakeSession(Users):
    """What the private messages use of a session: the resolved users and sending."""

    def __init__(self, users, identify=()):
        self._users = {u.client_id: u for u in users}
        self.client_id = SilcId(IdType.CLIENT, RELAY)
        self.nick = "relay"
        self.sent = []  # (client id, flags, text)
        self.identified = list(identify)
        self.up = True

    def send_private_message(self, client_id, data, flags=MessageFlag.UTF8):
        if not self.up:
            raise NotConnected("gone")
        self.sent.append((client_id, flags, data.decode()))

    async def identify(self, nick):
        return [(SilcId(IdType.CLIENT, u.client_id), u.nick) for u in self.identified if u.nick == nick]

    async def resolve(self, client_id, with_key=False):
        return next(u for u in self.identified if u.client_id == client_id)


class FakeClient:
    def __init__(self, session, joined):
        self.session, self.joined, self.connected = session, joined, True


def adapter(users=(SAM, TOM), members=(SAM,), identify=()):
    a = SilcAdapter(SilcNetworkConfig(name="silcnet", host="silc.test", nick="relay"), lambda e: None,
                    SqliteStore(":memory:"))
    a.add_endpoint("Hackers", {})
    session = FakeSession(users, identify)
    channel = Channel("hackers", SilcId(IdType.CHANNEL, b"\x03" * 8),
                      members={RELAY, *(u.client_id for u in members)})
    a._client = FakeClient(session, {"hackers": channel})
    return a, session


def said(user, text, flags=MessageFlag.UTF8, signature=SignatureState.NONE):
    return ev.PrivateMessage(user, flags, text.encode(), signature)


def private(to="sam", text="hi", kind=MessageKind.PLAIN):
    return Private(ROOM, ALICE, text, to, "silcnet", to, reply="r@muc/alice", kind=kind)


def test_a_named_line_is_for_that_name_from_the_senders_key_and_channels():
    a, _ = adapter()
    [got] = a.privates.received(said(SAM, "alice: hi there", signature=SignatureState.VALID))
    assert got == Private(Endpoint("silcnet", "Hackers"), Identity("silcnet", "AB" * 20, "sam"),
                          "[signed] hi there", "alice", reply="sam", rooms=("Hackers",))
    [got] = a.privates.received(said(TOM, "alice: waves", MessageFlag.UTF8 | MessageFlag.ACTION))
    assert (got.endpoint, got.rooms, got.kind, got.text) == (Endpoint("silcnet", ""), (), MessageKind.ACTION,
                                                             "waves")


async def test_a_private_message_goes_to_the_user_after_a_hint_and_the_bare_answer_comes_back():
    a, session = adapter()
    assert a.reach("hackers", "SAM") == "sam" and a.reach("", "sam") == "sam"
    await a.deliver("", private())
    await a.deliver("", private(text="again", kind=MessageKind.ACTION))
    hint, first, second = session.sent
    assert hint[0] == SAM.client_id and hint[1] == OWN_FLAGS
    assert hint[2].startswith("alice (xmpp, room r@muc) writes to you privately")
    assert "/msg relay alice: your text" in hint[2]
    assert first == (SAM.client_id, MessageFlag.UTF8, "<alice> hi")
    # the SILC client shows the action as such
    assert second == (SAM.client_id, MessageFlag.UTF8 | MessageFlag.ACTION, "alice again")
    [answer] = a.privates.received(said(SAM, "thanks"))
    assert (answer.text, answer.to_nick, answer.to_network, answer.to_address) == \
        ("thanks", "alice", "xmpp", "r@muc/alice")
    [answer] = a.privates.received(said(replace(SAM, nick="samuel"), "same key, new nick"))
    assert (answer.to_address, answer.reply) == ("r@muc/alice", "samuel")


async def test_someone_in_a_channel_not_resolved_yet_is_found_by_identify():
    newcomer = ev.User(b"\x04" * 16, "newcomer", "EF" * 20)
    a, session = adapter(users=(SAM,), members=(SAM, newcomer), identify=(newcomer,))
    await a.deliver("", private("newcomer"))
    assert session.sent[-1] == (newcomer.client_id, MessageFlag.UTF8, "<alice> hi")


async def test_who_is_in_no_joined_channel_or_not_connected_is_undeliverable_with_the_reason():
    a, session = adapter(identify=(TOM,))
    assert a.reach("hackers", "tom") is None and a.reach("", "nobody") is None
    assert a.reach("elsewhere", "sam") is None
    with pytest.raises(Undeliverable, match="tom is not in any channel muc-bridge is in on SILC network "
                                            "silcnet"):
        await a.deliver("", private("tom"))
    session.up = False
    with pytest.raises(Undeliverable, match="connection to SILC network silcnet was lost"):
        await a.deliver("", private())
    a._client.connected = False
    with pytest.raises(Undeliverable, match="not connected to SILC network silcnet"):
        await a.deliver("", private())
    assert session.sent == []


def test_nobody_to_write_to_is_told_how_once_a_minute_and_a_notice_never():
    a, session = adapter()
    assert a.privates.received(said(SAM, "hello?")) == []
    assert a.privates.received(said(SAM, "so I think: yes")) == []
    assert a.privates.received(said(TOM, "away", MessageFlag.UTF8 | MessageFlag.AUTOREPLY)) == []
    assert a.privates.received(said(TOM, "fyi", MessageFlag.UTF8 | MessageFlag.NOTICE)) == []
    [(to, flags, text)] = session.sent
    assert (to, flags) == (SAM.client_id, OWN_FLAGS)
    assert text.startswith("muc-bridge relays private messages: /msg relay alice: your text")


def test_a_message_under_a_private_message_key_is_answered_that_it_was_not_read():
    a, session = adapter()
    assert a.privates.received(ev.PrivateMessage(SAM, 0, b"", keyed=True)) == []
    [(to, flags, text)] = session.sent
    assert to == SAM.client_id and "not delivered" in text and "private message key" in text


def test_a_refusal_tells_the_sender_why():
    a, session = adapter()
    [event] = a.privates.received(said(SAM, "nobody: x"))
    a.refuse(event, "nobody called nobody is in the rooms linked to Hackers")
    assert session.sent == [(SAM.client_id, OWN_FLAGS, "muc-bridge: your message to nobody was not "
                                                       "delivered: nobody called nobody is in the rooms "
                                                       "linked to Hackers")]
