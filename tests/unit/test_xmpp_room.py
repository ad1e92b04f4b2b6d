"""MUC room logic against scripted stanzas: what is relayed, what is an echo."""

import asyncio
from datetime import datetime, timezone
from xml.etree import ElementTree as ET

import pytest
from structlog.testing import capture_logs

from bridge.config_types import ComponentConfig
from bridge.core.events import Endpoint, Identity, Join, Kick, Message, MessageKind, NickChange, Part, Topic
from bridge.store.sqlite import SqliteStore
from bridge.xmpp.outgoing import Outgoing
from bridge.xmpp.room import Room

ROOM = "room@muc.example.org"
NS = "jabber:component:accept"


class FakeComponent:
    def __init__(self):
        self.sent = []
        self.n = 0
        self.outgoing = Outgoing()
        self.online = True

    def send(self, data):
        self.sent.append(ET.fromstring(data.replace("<message ", f"<message xmlns='{NS}' ", 1)
                                       .replace("<presence ", f"<presence xmlns='{NS}' ", 1)
                                       .replace("<iq ", f"<iq xmlns='{NS}' ", 1)))
        return True

    def new_id(self):
        self.n += 1
        return f"mb{self.n}"


def stanza(xml):
    return ET.fromstring(xml.replace(">", f" xmlns='{NS}'>", 1) if "xmlns=" not in xml.split(">")[0]
                         else xml)


def presence(nick, to="bridge.example.org", kind=None, codes=(), extra="", item=""):
    t = f" type='{kind}'" if kind else ""
    status = "".join(f"<status code='{c}'/>" for c in codes)
    item = item or "<item role='participant'/>"
    return stanza(f"<presence from='{ROOM}/{nick}' to='{to}'{t}>"
                  f"<x xmlns='http://jabber.org/protocol/muc#user'>{item}{status}</x>{extra}</presence>")


def groupchat(nick, body, msg_id="x1", to="bridge.example.org"):
    return stanza(f"<message from='{ROOM}/{nick}' to='{to}' type='groupchat' id='{msg_id}'>"
                  f"<body>{body}</body></message>")


@pytest.fixture
async def room(tmp_path):
    events = []
    config = ComponentConfig(jid="bridge.example.org", secret="x", puppet_limit=2, puppet_idle=60)
    r = Room(ROOM, {"puppets": "lazy"}, config, FakeComponent(), SqliteStore(":memory:"), events.append)
    r.events = events
    r.join()
    r.on_presence(presence("bridge", codes=("110",)), "bridge.example.org")
    r.on_message(stanza(f"<message from='{ROOM}' to='bridge.example.org' type='groupchat'><subject>old</subject></message>"),
                 "bridge.example.org")
    return r


IRC = Endpoint("libera", "#c")
BOB = Identity("libera", "bob", "bob")


def sent_messages(room):
    return [(s.get("from"), s.findtext(f"{{{NS}}}body")) for s in room.component.sent if s.tag.endswith("message")]


async def test_join_asks_for_no_history():
    events = []
    comp = FakeComponent()
    r = Room(ROOM, {}, ComponentConfig(jid="b.example.org", secret="x"), comp, SqliteStore(":memory:"), events.append)
    r.join()
    hist = comp.sent[0].find("{http://jabber.org/protocol/muc}x/{http://jabber.org/protocol/muc}history")
    assert hist.get("maxstanzas") == "0"


async def test_initial_subject_and_history_are_not_relayed(room):
    assert room.events == []
    delayed = stanza(f"<message from='{ROOM}/old' to='bridge.example.org' type='groupchat' id='h'>"
                     f"<body>old news</body><delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/></message>")
    room.on_message(delayed, "bridge.example.org")
    assert room.events == []
    room.on_message(stanza(f"<message from='{ROOM}/alice' to='bridge.example.org' type='groupchat'><subject>new</subject></message>"),
                    "bridge.example.org")
    assert isinstance(room.events[0], Topic) and room.events[0].text == "new"


async def test_messages_from_users_become_events(room):
    room.on_presence(presence("alice", item="<item jid='alice@example.org/phone' role='participant'/>"),
                     "bridge.example.org")
    room.on_message(groupchat("alice", "hello"), "bridge.example.org")
    room.on_message(groupchat("alice", "/me waves", "x2"), "bridge.example.org")
    join, hello, wave = room.events
    assert isinstance(join, Join) and join.sender == Identity("xmpp", "alice@example.org", "alice")
    assert hello.text == "hello" and hello.kind is MessageKind.PLAIN
    assert wave.text == "waves" and wave.kind is MessageKind.ACTION


async def test_puppet_speaks_and_its_echo_is_not_relayed(room):
    await room.deliver(Message(IRC, BOB, "hi from irc"))
    join, msg = room.component.sent[-2:]
    assert join.get("from") == "bob%libera@bridge.example.org/bridge" and join.get("to") == f"{ROOM}/bob"
    assert msg.get("from") == join.get("from") and msg.findtext(f"{{{NS}}}body") == "hi from irc"
    room.on_presence(presence("bob"), "bridge.example.org")  # the bot sees bob arrive
    room.on_presence(presence("bob", to="bob%libera@bridge.example.org/bridge", codes=("110",)),
                     "bob%libera@bridge.example.org/bridge")
    room.on_message(groupchat("bob", "hi from irc", msg.get("id")), "bridge.example.org")
    room.on_message(groupchat("bob", "echo with a rewritten id", "other"), "bridge.example.org")
    assert room.events == []  # neither the join nor the echoes


async def test_late_echo_after_puppet_left_is_still_recognised(room):
    await room.deliver(Message(IRC, BOB, "one"))
    msg_id = room.component.sent[-1].get("id")
    room.on_presence(presence("bob"), "bridge.example.org")
    await room.deliver(Part(IRC, BOB, "bye", quit=True))
    assert room.component.sent[-1].get("type") == "unavailable"
    room.on_message(groupchat("bob", "one", msg_id), "bridge.example.org")
    assert room.events == []


async def test_nick_conflict_retries_with_suffix_and_resends(room):
    room.on_presence(presence("bob"), "bridge.example.org")  # a real XMPP user called bob
    room.events.clear()
    await room.deliver(Message(IRC, BOB, "hello"))
    pjid = "bob%libera@bridge.example.org/bridge"
    room.on_presence(stanza(f"<presence from='{ROOM}/bob' to='{pjid}' type='error'><error type='cancel'>"
                            f"<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"), pjid)
    rejoin, resend = room.component.sent[-2:]
    assert rejoin.get("to") == f"{ROOM}/bob[i]"
    assert resend.findtext(f"{{{NS}}}body") == "hello"
    room.on_message(groupchat("bob", "I am the real bob", "real1"), "bridge.example.org")
    assert [e.text for e in room.events] == ["I am the real bob"]


async def test_speaker_beyond_the_puppet_limit_goes_through_the_bot(room):
    for nick in ("a", "b", "c"):
        await room.deliver(Message(IRC, Identity("libera", nick, nick), "hi"))
    assert not [s for s in room.component.sent if s.get("type") == "unavailable"]
    assert sent_messages(room)[-1] == ("bridge.example.org", "<c> hi")


async def test_puppet_limit_evicts_the_least_recently_active_once_it_was_quiet(room):
    from bridge.xmpp.room import MIN_STAY
    for nick in ("a", "b"):
        await room.deliver(Message(IRC, Identity("libera", nick, nick), "hi"))
    await room.deliver(Message(IRC, Identity("libera", "a", "a"), "a again"))  # b is now the oldest
    for puppet in room.puppets.values():
        puppet.last_active -= MIN_STAY
    await room.deliver(Message(IRC, Identity("libera", "c", "c"), "hi"))
    leaves = [s.get("to") for s in room.component.sent if s.get("type") == "unavailable"]
    assert leaves == [f"{ROOM}/b"]
    assert sent_messages(room)[-1] == ("c%libera@bridge.example.org/bridge", "hi")


async def test_idle_puppets_leave(room):
    await room.deliver(Message(IRC, BOB, "hi"))
    room.sweep_idle(now=10**9)
    assert room.component.sent[-1].get("type") == "unavailable"


async def test_irc_nick_change_renames_occupant(room):
    await room.deliver(Message(IRC, BOB, "hi"))
    pjid = "bob%libera@bridge.example.org/bridge"
    room.on_presence(presence("bob", to=pjid, codes=("110",)), pjid)
    await room.deliver(NickChange(IRC, BOB, "robert"))
    change = room.component.sent[-1]
    assert change.get("to") == f"{ROOM}/robert" and change.get("from") == pjid


async def test_occupant_departures(room):
    room.on_presence(presence("carol"), "bridge.example.org")
    room.on_presence(presence("carol", kind="unavailable", codes=("303",),
                              item="<item nick='caz' role='participant'/>"), "bridge.example.org")
    room.on_presence(presence("dave"), "bridge.example.org")
    room.on_presence(presence("dave", kind="unavailable", codes=("307",)), "bridge.example.org")
    room.on_presence(presence("erin"), "bridge.example.org")
    room.on_presence(presence("erin", kind="unavailable"), "bridge.example.org")
    kinds = [type(e) for e in room.events]
    assert kinds == [Join, NickChange, Join, Kick, Join, Part]
    assert room.events[1].new_nick == "caz"


async def test_text_that_xml_cannot_carry_is_dropped_not_sent_raw(room):
    await room.deliver(Message(IRC, BOB, "bell\x07 and </body> <evil/>"))
    assert room.component.sent[-1].findtext(f"{{{NS}}}body") == "bell and </body> <evil/>"


async def test_bot_kicked_rejoins(room):
    room.on_presence(presence("bridge", kind="unavailable", codes=("110", "307")), "bridge.example.org")
    assert not room.joined.is_set()


async def test_nick_keyed_identity_keeps_its_occupant_after_a_nick_change(room):
    await room.deliver(Message(IRC, BOB, "hi"))
    pjid = "bob%libera@bridge.example.org/bridge"
    room.on_presence(presence("bob", to=pjid, codes=("110",)), pjid)
    bobby = Identity("libera", "bobby", "bobby")
    await room.deliver(NickChange(IRC, BOB, "bobby", renamed=bobby))
    await room.deliver(Message(IRC, bobby, "renamed"))
    last = room.component.sent[-1]
    assert last.get("from") == pjid and last.findtext(f"{{{NS}}}body") == "renamed"


async def test_a_new_key_under_the_same_nick_keeps_the_occupant_without_a_presence(room):
    await room.deliver(Message(IRC, BOB, "hi"))
    pjid = "bob%libera@bridge.example.org/bridge"
    room.on_presence(presence("bob", to=pjid, codes=("110",)), pjid)
    sent = len(room.component.sent)
    logged_in = Identity("libera", "bob_account", "bob")
    await room.deliver(NickChange(IRC, BOB, "bob", renamed=logged_in))
    assert len(room.component.sent) == sent  # nothing the room's occupants would see
    await room.deliver(Message(IRC, logged_in, "same me"))
    last = room.component.sent[-1]
    assert last.get("from") == pjid and last.findtext(f"{{{NS}}}body") == "same me"


@pytest.mark.parametrize("condition, rejoins", [("not-acceptable", True), ("item-not-found", True),
                                                ("service-unavailable", False), (None, False)])
async def test_self_ping_rejoins_only_when_the_bot_is_gone(room, condition, rejoins):
    """XEP-0410 4.1: some errors mean 'not joined', others only 'no ping support'."""
    error = (f"<error type='cancel'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
             if condition else "")
    kind = "error" if condition else "result"

    async def query(to, sender, payload, kind_="get", timeout=30.0):
        assert to == f"{ROOM}/bridge" and "urn:xmpp:ping" in payload
        return stanza(f"<iq type='{kind}' id='p1'>{error}</iq>")

    room.component.query = query
    before = len(room.component.sent)
    await room.self_ping()
    joins = [s for s in room.component.sent[before:] if s.tag.endswith("presence")]
    assert bool(joins) is rejoins


async def test_eager_link_joins_puppets_when_the_foreign_user_joins(room):
    before = len(room.component.sent)
    await room.deliver(Join(IRC, BOB))
    assert len(room.component.sent) == before  # lazy (the fixture's link): nothing yet
    room.options["puppets"] = "eager"
    before = len(room.component.sent)
    await room.deliver(Join(IRC, BOB))
    joined = room.component.sent[before:]
    assert [(s.get("from"), s.get("to")) for s in joined] == [
        ("bob%libera@bridge.example.org/bridge", f"{ROOM}/bob")]


async def test_shutdown_takes_every_puppet_out_of_the_room():
    from bridge.xmpp.adapter import XmppAdapter

    component = FakeComponent()

    async def close():
        component.closed = True

    component.close = close
    adapter = XmppAdapter(ComponentConfig(jid="bridge.example.org", secret="x"), [].append,
                          SqliteStore(":memory:"))
    adapter.component = component
    adapter.add_endpoint(ROOM, {})
    room = adapter.rooms[ROOM]
    room.joined.set()
    for nick in ("a", "b", "c"):
        await room.deliver(Message(IRC, Identity("libera", nick, nick), "hi"))
    await adapter.close()
    leaves = [s.get("to") for s in component.sent if s.get("type") == "unavailable"]
    assert sorted(leaves) == [f"{ROOM}/a", f"{ROOM}/b", f"{ROOM}/c"]
    assert component.closed


async def test_a_flood_of_new_speakers_comes_through_the_bot_until_joins_are_allowed_again(tmp_path):
    from bridge.config_types import FloodConfig
    from bridge.core.ratelimit import TokenBucket
    config = ComponentConfig(jid="bridge.example.org", secret="x", puppet_joins=FloodConfig(2, 1.0))
    room = Room(ROOM, {"puppets": "lazy"}, config, FakeComponent(), SqliteStore(":memory:"), [].append)
    room.joined.set()
    now = [0.0]
    room.new_puppets = TokenBucket(2, 1.0, clock=lambda: now[0])
    for nick in ("a", "b", "c", "d"):
        await room.deliver(Message(IRC, Identity("libera", nick, nick), "hi"))
    assert sent_messages(room) == [("a%libera@bridge.example.org/bridge", "hi"),
                                   ("b%libera@bridge.example.org/bridge", "hi"),
                                   ("bridge.example.org", "<c> hi"), ("bridge.example.org", "<d> hi")]
    now[0] = 1.0  # one more join allowed; a and b keep their puppets meanwhile
    for nick in ("c", "a", "d"):
        await room.deliver(Message(IRC, Identity("libera", nick, nick), "again"))
    assert sent_messages(room)[4:] == [("c%libera@bridge.example.org/bridge", "again"),
                                       ("a%libera@bridge.example.org/bridge", "again"),
                                       ("bridge.example.org", "<d> again")]
    joins = [s.get("to") for s in room.component.sent if s.tag.endswith("presence")]
    assert joins == [f"{ROOM}/a", f"{ROOM}/b", f"{ROOM}/c"]


def subject(nick="", body="topic", to="bridge.example.org"):
    frm = f"{ROOM}/{nick}" if nick else ROOM
    return stanza(f"<message from='{frm}' to='{to}' type='groupchat'><subject>{body}</subject></message>")


def delayed(nick, body, msg_id, stamp="2030-01-01T00:00:00Z"):
    return stanza(f"<message from='{ROOM}/{nick}' to='bridge.example.org' type='groupchat' id='{msg_id}'>"
                  f"<body>{body}</body><delay xmlns='urn:xmpp:delay' stamp='{stamp}'/></message>")


async def rejoin(room, history=()):
    """The stream dropped and came back: the bot joins again and the room replays `history`."""
    room.offline()
    room.online()
    room.on_presence(presence("bridge", codes=("110",)), "bridge.example.org")
    for xml in history:
        room.on_message(xml, "bridge.example.org")
    room.on_message(subject(), "bridge.example.org")


async def test_message_ids_are_random_and_our_echo_comes_only_from_our_own_occupant(room):
    from bridge.core.tokens import new_id
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000 and min(map(len, ids)) >= 16
    await room.deliver(Message(IRC, BOB, "ours"))
    our_id = room.component.sent[-1].get("id")
    room.on_message(groupchat("mallory", "mallory reuses our id", our_id), "bridge.example.org")
    assert [e.text for e in room.events] == ["mallory reuses our id"]


async def test_a_rejoin_asks_for_history_since_the_last_message_heard_and_relays_the_missed_once(room):
    room.on_message(groupchat("alice", "heard live", "a1"), "bridge.example.org")
    heard_at = room.heard_until
    room.events.clear()
    room.offline()
    room.online()
    history = room.component.sent[-1].find("{http://jabber.org/protocol/muc}x/{http://jabber.org/protocol/muc}history")
    assert history.get("since") is not None and history.get("maxstanzas") is None
    since = datetime.fromisoformat(history.get("since").replace("Z", "+00:00")).timestamp()
    assert heard_at - 3 <= since <= heard_at
    room.on_presence(presence("bridge", codes=("110",)), "bridge.example.org")
    for xml in (delayed("alice", "heard live", "a1"), delayed("alice", "missed", "a2")):
        room.on_message(xml, "bridge.example.org")
    assert room.events == []  # nothing before the join is complete
    room.on_message(subject(), "bridge.example.org")
    assert [(e.text, e.late) for e in room.events] == [("missed", True)]
    assert room.events[0].time == datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()


async def test_what_we_sent_and_never_saw_come_back_is_sent_again_once_after_a_rejoin(room):
    await room.deliver(Message(IRC, Identity("libera", "b1", "b1"), "arrived"))
    arrived = room.component.sent[-1]
    await room.deliver(Message(IRC, Identity("libera", "b1", "b1"), "lost"))
    lost = room.component.sent[-1]
    before = len(room.component.sent)
    # The link died before either copy came back; the room's history shows only the first.
    await rejoin(room, [delayed("b1", "arrived", arrived.get("id"))])
    again = [s for s in room.component.sent[before:] if s.tag.endswith("message")]
    assert [(s.get("id"), s.findtext(f"{{{NS}}}body")) for s in again] == [(lost.get("id"), "lost")]
    assert room.events == []  # our own message in the history is not relayed back
    room.on_message(groupchat("b1", "lost", lost.get("id")), "bridge.example.org")
    assert not room.component.outgoing.pending
    before = len(room.component.sent)
    await rejoin(room)
    assert [s for s in room.component.sent[before:] if s.tag.endswith("message")] == []


async def test_the_cursor_survives_a_restart_so_a_new_bridge_asks_for_what_it_missed(tmp_path):
    store = SqliteStore(str(tmp_path / "b.db"))
    config = ComponentConfig(jid="bridge.example.org", secret="x")
    first = Room(ROOM, {}, config, FakeComponent(), store, [].append)
    first.on_message(groupchat("alice", "x", "a1"), "bridge.example.org")
    store.close()
    again = Room(ROOM, {}, config, FakeComponent(), SqliteStore(str(tmp_path / "b.db")), [].append)
    again.join()
    history = again.component.sent[0].find(
        "{http://jabber.org/protocol/muc}x/{http://jabber.org/protocol/muc}history")
    assert history.get("since") is not None
    assert ("alice", "a1") in again.heard  # replayed, it is recognised as already relayed


async def test_an_unanswered_join_is_sent_again(room, monkeypatch):
    import asyncio

    import bridge.xmpp.room as room_module
    monkeypatch.setattr(room_module, "JOIN_TIMEOUT", 0.05)
    room.offline()
    room.join()
    await asyncio.sleep(0.2)
    joins = [s for s in room.component.sent if s.tag.endswith("presence") and s.get("to") == f"{ROOM}/bridge"]
    assert len(joins) >= 3  # the fixture's, this one, and at least one retry


async def test_a_taken_bot_nick_gets_one_suffix_more_per_try_then_starts_over(room, monkeypatch):
    conflict = stanza(f"<presence from='{ROOM}/bridge' to='bridge.example.org' type='error'>"
                      f"<error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                      f"</error></presence>")
    room.offline()
    nicks = []
    for _ in range(5):
        room.on_presence(conflict, "bridge.example.org")
        nicks.append(room.bot_nick)
    assert nicks == ["bridge[i]", "bridge[i][i]", "bridge[i][i][i]", "bridge", "bridge[i]"]


async def test_a_real_user_who_takes_the_nick_our_puppet_asked_for_is_not_taken_for_it(room):
    await room.deliver(Message(IRC, BOB, "from irc"))  # our puppet asks for "bob"
    pjid = "bob%libera@bridge.example.org/bridge"
    room.on_presence(presence("bob"), "bridge.example.org")  # a real bob got in first
    room.on_message(groupchat("bob", "I am the real bob", "real1"), "bridge.example.org")
    room.on_presence(stanza(f"<presence from='{ROOM}/bob' to='{pjid}' type='error'><error type='cancel'>"
                            f"<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"), pjid)
    assert [type(e).__name__ for e in room.events] == ["Message", "Join"]
    assert room.events[0].text == "I am the real bob"
    room.on_message(groupchat("bob", "still me", "real2"), "bridge.example.org")
    assert room.events[-1].text == "still me"


async def test_a_user_back_under_a_new_nick_renames_their_occupant(room):
    """A SILC user is keyed by their key: back under a new nick, same occupant, new nick."""
    silc = Endpoint("silcnet", "chan")
    before = Identity("silcnet", "fp1", "carol")
    await room.deliver(Message(silc, before, "hi"))
    pjid = room.component.sent[-1].get("from")
    room.on_presence(presence("carol", to=pjid, codes=("110",)), pjid)
    await room.deliver(Message(silc, Identity("silcnet", "fp1", "caroline"), "back"))
    change, msg = room.component.sent[-2:]
    assert change.tag.endswith("presence") and change.get("to") == f"{ROOM}/caroline"
    assert change.get("from") == pjid and msg.get("from") == pjid


async def test_a_restarted_bridge_knows_its_own_lines_when_the_history_replays_them(tmp_path):
    store = SqliteStore(str(tmp_path / "b.db"))
    config = ComponentConfig(jid="bridge.example.org", secret="x")
    first = Room(ROOM, {}, config, FakeComponent(), store, [].append)
    first.joined.set()
    first.on_message(groupchat("alice", "x", "a1"), "bridge.example.org")
    await first.deliver(Message(IRC, BOB, "said by our puppet"))
    ours = first.component.sent[-1]
    await asyncio.sleep(0)  # the end of the turn; then killed outright (no close, no flush)
    assert first.heard_until is not None
    events = []
    again = Room(ROOM, {}, config, FakeComponent(), SqliteStore(str(tmp_path / "b.db")), events.append)
    again.join()
    again.on_presence(presence("bridge", codes=("110",)), "bridge.example.org")
    again.on_message(delayed("bob", "said by our puppet", ours.get("id")), "bridge.example.org")
    again.on_message(delayed("alice", "said meanwhile", "a2"), "bridge.example.org")
    again.on_message(subject(), "bridge.example.org")
    assert [e.text for e in events] == ["said meanwhile"]  # not our puppet's line back to IRC


async def test_a_bridge_killed_before_its_store_had_the_id_still_knows_its_line_in_the_history(tmp_path):
    """A standby that takes over (or a restart) reads a store the old run could not finish
    writing: the id of its last line is missing there, but the id's signature says whose it is;
    only for the occupant it was made for (a stranger reusing it is heard)."""
    config = ComponentConfig(jid="bridge.example.org", secret="x")
    first = Room(ROOM, {}, config, FakeComponent(), SqliteStore(":memory:"), [].append)
    first.component.outgoing = Outgoing(secret="x")
    first.joined.set()
    await first.deliver(Message(IRC, BOB, "said by our puppet"))
    ours = first.component.sent[-1].get("id")
    events = []
    again = Room(ROOM, {}, config, FakeComponent(), SqliteStore(str(tmp_path / "new.db")), events.append)
    again.component.outgoing = Outgoing(secret="x")
    again.join()
    again.on_presence(presence("bridge", codes=("110",)), "bridge.example.org")
    again.on_message(delayed("bob", "said by our puppet", ours), "bridge.example.org")
    again.on_message(delayed("mallory", "reusing the id", ours), "bridge.example.org")
    again.on_message(subject(), "bridge.example.org")
    assert [e.text for e in events] == ["reusing the id"]
    assert not Outgoing(secret="another").minted(ours, f"{ROOM}/bob")


def error_presence(answering, condition, text=""):
    """The server's error answer to one of our presences (RFC 6120 8.3.1: with its id)."""
    text = f"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{text}</text>" if text else ""
    return stanza(f"<presence from='{ROOM}/bridge' to='bridge.example.org' type='error' "
                  f"id='{answering.get('id')}'><error type='cancel'>"
                  f"<{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>{text}</error></presence>")


async def test_the_answer_to_the_leave_before_a_join_is_not_taken_for_a_failed_join(room):
    room.offline()
    with capture_logs() as logs:
        room.online()  # leaves first, then joins: a server without that room answers the leave with an error
        leave = room.component.sent[-2]
        room.on_presence(error_presence(leave, "item-not-found"), "bridge.example.org")
        room.on_presence(presence("bridge", codes=("110", "201")), "bridge.example.org")
    assert room.joined.is_set() and room.bot_nick == "bridge"
    assert [e["event"] for e in logs] == ["muc_joining", "muc_joined"]


async def test_a_refused_join_after_an_unanswered_leave_is_logged_with_the_servers_text(room):
    """A room that exists and that the bot is not in ignores its leave (Prosody and ejabberd
    both): the next error is the join's, refused, and the log says what the server said."""
    room.offline()
    with capture_logs() as logs:
        room.online()
        join = room.component.sent[-1]
        room.on_presence(error_presence(join, "registration-required",
                                        "Membership is required to enter this room"),
                         "bridge.example.org")
    failed = [e for e in logs if e["event"] == "muc_join_failed"]
    assert [(e["room"], e["condition"], e["text"]) for e in failed] == [
        (ROOM, "registration-required", "Membership is required to enter this room")]


async def test_a_refused_puppet_join_is_logged_with_the_servers_text(room):
    await room.deliver(Message(IRC, BOB, "from irc"))
    pjid = "bob%libera@bridge.example.org/bridge"
    with capture_logs() as logs:
        room.on_presence(stanza(f"<presence from='{ROOM}/bob' to='{pjid}' type='error'><error type='auth'>"
                                f"<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                                f"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>You have been banned "
                                f"from this room</text></error></presence>"), pjid)
    failed = [e for e in logs if e["event"] == "puppet_join_failed"]
    assert [(e["condition"], e["text"]) for e in failed] == [
        ("forbidden", "You have been banned from this room")]


async def test_after_an_unanswered_leave_and_a_join_a_kick_is_not_taken_for_our_leave(room):
    room.offline()
    with capture_logs() as logs:
        room.online()
        room.on_presence(presence("bridge", codes=("110",)), "bridge.example.org")
        room.on_presence(presence("bridge", kind="unavailable", codes=("110", "307"),
                                  item="<item role='none'/>"), "bridge.example.org")
    assert "muc_bot_removed" in [e["event"] for e in logs]


@pytest.mark.parametrize("bot_first", [True, False])
async def test_after_a_puppet_is_kicked_a_real_user_with_its_nick_is_heard(room, bot_first):
    """Whichever copy of the kick comes first (the bot's or the puppet's own), the nick is
    not ours any more: a real user who takes it later is relayed, not taken for an echo."""
    await room.deliver(Message(IRC, BOB, "hi"))
    puppet_jid = "bob%libera@bridge.example.org/bridge"
    room.on_presence(presence("bob"), "bridge.example.org")
    room.on_presence(presence("bob", to=puppet_jid, codes=("110",)), puppet_jid)
    kicked = dict(kind="unavailable", codes=("307",), item="<item role='none'/>")
    copies = [(presence("bob", **kicked), "bridge.example.org"),
              (presence("bob", to=puppet_jid, **kicked), puppet_jid)]
    for xml, to in copies if bot_first else reversed(copies):
        room.on_presence(xml, to)
    room.on_presence(presence("bob", item="<item jid='bob@example.org/x' role='participant'/>"),
                     "bridge.example.org")
    room.on_message(groupchat("bob", "I am the real bob", "r1"), "bridge.example.org")
    assert [e.text for e in room.events if isinstance(e, Message)] == ["I am the real bob"]
