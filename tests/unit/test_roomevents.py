from bridge.core.events import BRIDGE, Endpoint, Identity, Kick, NickChange, Topic
from bridge.core.roomevents import NICK_INTERVAL, RoomEvents, topic_setter_text

MUC = Endpoint("xmpp", "room@muc.example.org")
IRC = Endpoint("net", "#room")


def who(nick: str, network: str = "xmpp") -> Identity:
    return Identity(network, nick, nick)


def test_kick_lines_say_who_where_and_why():
    lines = RoomEvents()
    assert lines.line("#r", Kick(MUC, who("alice"), who("bob", "net"), "too loud")) == \
        "bob was kicked from the MUC by alice: too loud"
    assert lines.line("#r", Kick(IRC, BRIDGE, who("carol"), "")) == "carol was kicked from net/#room"


def test_nick_changes_past_the_burst_are_counted_into_the_next_line_shown():
    now = [0.0]
    lines = RoomEvents(clock=lambda: now[0])
    shown = [lines.line("#r", NickChange(MUC, who(f"n{i}"), f"n{i + 1}")) for i in range(6)]
    assert shown == ["n0 is now known as n1", "n1 is now known as n2", "n2 is now known as n3",
                     None, None, None]
    assert lines.line("#other", NickChange(MUC, who("x"), "y")) == "x is now known as y"
    now[0] += NICK_INTERVAL
    assert lines.line("#r", NickChange(MUC, who("n6"), "n7")) == \
        "n6 is now known as n7 (3 more nick changes not shown)"


def test_a_new_key_under_the_same_nick_is_no_line():
    assert RoomEvents().line("#r", NickChange(IRC, who("bob", "net"), "bob",
                                              renamed=Identity("net", "acct", "bob"))) is None


def test_topic_setter_named_unless_the_bridge():
    assert topic_setter_text(Topic(MUC, who("alice"), "t")) == "alice set the topic in the MUC"
    assert topic_setter_text(Topic(MUC, BRIDGE, "t")) is None
