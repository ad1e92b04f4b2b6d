"""Portal connections in one channel share its member table (`bridge.irc.members`): every
connection gets each event of the channel, and each user is told exactly what they would be
told with a member list of their own, whatever order the connections are read in, whenever
each joined."""

import random

import pytest
from irc.client import Event, NickMask

from bridge.config_types import IrcNetworkConfig, PortalConfig
from bridge.core.portal import Member
from bridge.irc import members
from bridge.irc.users import IrcUsers, UserLink

NET = IrcNetworkConfig("net", host="irc.example.net")
CHANNEL = "#chan"


class Told:
    """A `PortalView` that writes down what each user is told."""

    def __init__(self) -> None:
        self.lines: dict[str, list[tuple]] = {}

    def __getattr__(self, name):
        def tell(user, network, *args, **kwargs):
            if name == "entered":  # the occupants in any order
                args = (args[0], args[1].me, frozenset(args[1].members), args[1].topic)
            self.lines.setdefault(user, []).append((name, *args, *sorted(kwargs.items())))
        return tell


def portal() -> tuple[IrcUsers, Told]:
    users = IrcUsers(PortalConfig(networks=("net",), users=("*",)), {"net": NET})
    users.view = Told()
    return users, users.view


def link(users: IrcUsers, nick: str) -> UserLink:
    """A connection fed by hand (never started); the user's JOIN asked for."""
    one = users.links[(nick, "net")] = UserLink(nick, NET, nick, users)
    one.join(CHANNEL, "")
    one._registered()  # the JOIN goes
    return one


def ev(kind: str, source: str | None, target: str | None, *arguments: str) -> Event:
    return Event(kind, NickMask(f"{source}!u@h") if source else None, target, list(arguments))


class Server:
    """One IRC server's channel: what each connection in it reads, in the server's order."""

    def __init__(self) -> None:
        self.modes: dict[str, str] = {}  # nick -> prefix modes
        self.streams: dict[str, list[Event]] = {}  # portal nick -> what its connection reads

    def send(self, event: Event, also: str | None = None) -> None:
        for nick, stream in self.streams.items():
            if nick in self.modes or nick == also:
                stream.append(event)

    def join(self, nick: str, portal: bool = False) -> None:
        self.modes[nick] = ""
        self.send(ev("join", nick, CHANNEL))
        if portal:
            names = " ".join(("@" if "o" in m else "") + ("+" if "v" in m else "") + n  # multi-prefix
                             for n, m in self.modes.items())
            self.streams[nick] += [ev("namreply", None, nick, "=", CHANNEL, names),
                                   ev("endofnames", None, nick, CHANNEL, "End of /NAMES list")]

    def leave(self, kind: str, nick: str) -> None:
        if kind == "part":
            self.send(ev("part", nick, CHANNEL, "bye"))
        elif kind == "kick":
            self.send(ev("kick", "x0", CHANNEL, nick, "out"))
        else:
            self.send(ev("quit", nick, None, "gone"))
        del self.modes[nick]

    def rename(self, old: str, new: str) -> None:
        self.send(ev("nick", old, new))
        self.modes[new] = self.modes.pop(old)

    def mode(self, sign: str, mode: str, nick: str) -> None:
        self.send(ev("mode", "x0", CHANNEL, sign + mode, nick))
        held = self.modes[nick].replace(mode, "")
        self.modes[nick] = held + mode if sign == "+" else held


def script(seed: int, portal_users: int = 4) -> Server:
    """A random hour of a channel: IRC users come, go, are renamed and opped; portal users
    join at different times, and one of them is kicked."""
    rnd = random.Random(seed)
    server = Server()
    server.modes["x0"] = "o"
    waiting = [f"u{i}" for i in range(portal_users)]
    for nick in waiting:
        server.streams[nick] = []
    fresh = iter(f"x{i}" for i in range(1, 10_000))
    for _ in range(60):
        irc = [n for n in server.modes if n.startswith("x") and n != "x0"]
        roll = rnd.random()
        if waiting and roll < 0.1:
            server.join(waiting.pop(0), portal=True)
        elif roll < 0.35 or not irc:
            server.join(next(fresh))
        elif roll < 0.45:
            server.leave(rnd.choice(["part", "kick", "quit"]), rnd.choice(irc))
        elif roll < 0.55:
            server.rename(rnd.choice(irc), next(fresh))
        else:
            nick = rnd.choice(irc + [n for n in server.modes if n.startswith("u")])
            server.mode(rnd.choice("+-"), rnd.choice("ov"), nick)
    while waiting:
        server.join(waiting.pop(0), portal=True)
    server.mode("+", "o", "u0")
    server.join(next(fresh))
    server.leave("kick", "u1")  # told to u1 as out, to the others as left
    server.leave("quit", "x0")
    return server


def told_alone(server: Server) -> dict[str, list[tuple]]:
    """What each user is told with a member list of their own: one portal per connection."""
    told = {}
    for nick, stream in server.streams.items():
        users, view = portal()
        one = link(users, nick)
        for event in stream:
            one._dispatch(event)
        told[nick] = view.lines[nick]
    return told


@pytest.mark.parametrize("seed", range(40))
async def test_each_user_is_told_what_a_list_of_their_own_would_say_in_any_reading_order(seed):
    server = script(seed)
    users, view = portal()
    links = {nick: link(users, nick) for nick in server.streams}
    unread = {nick: list(stream) for nick, stream in server.streams.items()}
    rnd = random.Random(seed)
    while any(unread.values()):  # the connections are read in a random interleaving
        nick = rnd.choice([n for n, left in unread.items() if left])
        for _ in range(rnd.randint(1, 6)):
            if unread[nick]:
                links[nick]._dispatch(unread[nick].pop(0))
    assert view.lines == told_alone(server)
    for nick, one in links.items():
        if nick != "u1":  # kicked
            assert set(one.channels[CHANNEL].everyone()) == set(server.modes)


@pytest.mark.parametrize("seed", range(20))
async def test_users_joining_while_one_is_in_share_one_table_read_at_any_lag(seed):
    """The bench's case: one user in, then many joining at once; each connection read a few
    lines at a time, in any order (they lag each other by a few events)."""
    rnd = random.Random(seed)
    server = Server()
    server.join("x0")
    server.streams["u0"] = []
    server.join("u0", portal=True)
    for nick in (f"u{i}" for i in range(1, 12)):
        server.streams[nick] = []
    for i in range(1, 12):
        server.join(f"u{i}", portal=True)
        if rnd.random() < 0.4:
            server.mode("+", "v", f"u{rnd.randint(0, i)}")
    server.join("x1")
    server.leave("quit", "x0")
    users, view = portal()
    links = {nick: link(users, nick) for nick in server.streams}
    for event in server.streams["u0"][:3]:  # u0 is in before the others
        links["u0"]._dispatch(event)
    unread = {nick: list(stream) for nick, stream in server.streams.items()}
    del unread["u0"][:3]
    while any(unread.values()):
        for nick in rnd.sample(list(unread), len(unread)):
            for _ in range(rnd.randint(0, 3)):
                if unread[nick]:
                    links[nick]._dispatch(unread[nick].pop(0))
    assert view.lines == told_alone(server)
    table = users.tables[("net", CHANNEL)]
    assert all(one.channels[CHANNEL].table is table for one in links.values())
    assert set(table.members) == set(server.modes) and not table.log and not table.expected


async def test_an_event_read_by_every_connection_is_applied_once():
    users, view = portal()
    server = Server()
    server.join("x0")
    server.join("bob")
    for nick in ("u0", "u1", "u2"):
        server.streams[nick] = []
        server.join(nick, portal=True)
    server.mode("+", "v", "bob")
    server.rename("bob", "robert")
    server.leave("quit", "robert")
    links = {nick: link(users, nick) for nick in server.streams}
    for nick, stream in server.streams.items():  # one connection after the other: the worst lag
        for event in stream:
            links[nick]._dispatch(event)
    for nick in ("u0", "u1", "u2"):
        assert view.lines[nick][-3:] == [("member", CHANNEL, Member("bob", "v"), False),
                                         ("renamed", CHANNEL, "bob", Member("robert", "v"), False),
                                         ("left", CHANNEL, "robert", "gone")]
    table = users.tables[("net", CHANNEL)]
    assert set(table.members) == {"x0", "u0", "u1", "u2"} and not table.log


def two_in(users: IrcUsers, others: str = "") -> tuple[UserLink, UserLink]:
    """a in the channel, then b: each connection reads its JOIN, NAMES; a reads b's JOIN."""
    a, b = link(users, "a"), link(users, "b")
    for one, names in ((a, "a " + others), (b, "a b " + others)):
        one._dispatch(ev("join", one.user, CHANNEL))
        one._dispatch(ev("namreply", None, one.user, "=", CHANNEL, names))
        one._dispatch(ev("endofnames", None, one.user, CHANNEL, "End"))
        if one is a:
            a._dispatch(ev("join", "b", CHANNEL))
    assert a.channels[CHANNEL].table is b.channels[CHANNEL].table is users.tables[("net", CHANNEL)]
    return a, b


async def test_a_connection_reading_events_in_another_order_goes_on_with_a_table_of_its_own():
    users, view = portal()
    a, b = two_in(users)
    a._dispatch(ev("join", "x", CHANNEL))
    a._dispatch(ev("join", "y", CHANNEL))
    b._dispatch(ev("join", "y", CHANNEL))  # another server's order
    b._dispatch(ev("join", "x", CHANNEL))
    for one in (a, b):
        assert set(one.channels[CHANNEL].everyone()) == {"a", "b", "x", "y"}
    assert b.channels[CHANNEL].table is not users.tables[("net", CHANNEL)]
    assert view.lines["b"][-2:] == [("member", CHANNEL, Member("y")), ("member", CHANNEL, Member("x"))]


async def test_who_left_while_the_connection_was_down_is_told_at_the_rejoin():
    users, view = portal()
    a, b = two_in(users, "x y")
    a._lost()
    b._lost()  # the server restarted
    assert users.tables == {}
    for one in (a, b):
        one._registered()
        one._dispatch(ev("join", one.user, CHANNEL))
        one._dispatch(ev("namreply", None, one.user, "=", CHANNEL, "a b y"))
        one._dispatch(ev("endofnames", None, one.user, CHANNEL, "End"))
        assert ("left", CHANNEL, "x", "") in view.lines[one.user]
        assert view.lines[one.user][-1][0] == "entered"


async def test_the_log_is_bounded_for_a_connection_that_reads_nothing(monkeypatch):
    monkeypatch.setattr(members, "LOG_LIMIT", 8)
    users, view = portal()
    a, b = two_in(users)
    for i in range(20):
        a._dispatch(ev("join", f"x{i}", CHANNEL))
    table = users.tables[("net", CHANNEL)]
    assert len(table.log) <= 8
    b._dispatch(ev("join", "x0", CHANNEL))  # far behind: goes on alone, from what it can know
    assert b.channels[CHANNEL].table is not table
    assert "x0" in b.channels[CHANNEL].everyone()


async def test_a_connection_gone_leaves_the_table_and_the_last_one_takes_it_away():
    users, view = portal()
    a, b = two_in(users)
    table = users.tables[("net", CHANNEL)]
    b.part(CHANNEL)
    a._dispatch(ev("join", "x", CHANNEL))
    assert not table.log and table.readers == {table.end: 1}
    await a.close("bye")
    assert users.tables == {}


async def test_connections_back_one_after_the_other_after_a_restart_share_a_fresh_table():
    users, view = portal()
    a, b = two_in(users, "x y")
    a._lost()
    a._registered()  # a is back and has sent its JOIN while b still waits to notice
    b._lost()
    b._registered()
    a._dispatch(ev("join", "a", CHANNEL))
    a._dispatch(ev("namreply", None, "a", "=", CHANNEL, "a y"))
    a._dispatch(ev("endofnames", None, "a", CHANNEL, "End"))
    a._dispatch(ev("join", "b", CHANNEL))
    b._dispatch(ev("join", "b", CHANNEL))
    b._dispatch(ev("namreply", None, "b", "=", CHANNEL, "a b y"))
    b._dispatch(ev("endofnames", None, "b", CHANNEL, "End"))
    table = users.tables[("net", CHANNEL)]
    assert a.channels[CHANNEL].table is b.channels[CHANNEL].table is table
    assert set(table.members) == {"a", "b", "y"}
    for one in (a, b):
        assert ("left", CHANNEL, "x", "") in view.lines[one.user]
