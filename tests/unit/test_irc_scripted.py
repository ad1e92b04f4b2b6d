"""The IRC adapter against a scripted, sometimes misbehaving, IRC server on loopback."""

import asyncio
import base64
import dataclasses

import pytest

from bridge.config_types import FloodConfig, IrcNetworkConfig, SaslConfig
from bridge.core.events import (
    BRIDGE, Endpoint, Identity, Join, Kick, Message, MessageKind, NickChange, Part, Presence, Topic,
)
from bridge.irc import joins as joins_module
from bridge.irc import client as client_module
from bridge.irc.adapter import NICK_KEY, IrcAdapter
from bridge.irc.split import MAX_LINE
from tests.servers.scripted_ircd import Recorder, ScriptedIrcd, running

NET = "testnet"
CHAN = "#test"
EP = Endpoint(NET, CHAN)


def by_nick(nick):
    """A user the network tells no account for (all these nicks are lower case)."""
    return Identity(NET, NICK_KEY + nick, nick)


@pytest.fixture
async def ircd():
    server = await ScriptedIrcd().start()
    yield server
    await server.stop()


def make_config(port, **overrides):
    config = IrcNetworkConfig(name=NET, host="127.0.0.1", port=port, tls=False,
                              flood=FloodConfig(burst=50, interval=0.01), ping_timeout=30)
    return dataclasses.replace(config, **overrides)


def make_adapter(port, rooms=(CHAN,), **overrides):
    events = Recorder()
    adapter = IrcAdapter(make_config(port, **overrides), events)
    for room in rooms:
        adapter.add_endpoint(room, {"topic": "both"})
    return adapter, events


async def joined(ircd, n=0, rooms=(CHAN,)):
    """The n-th connection, once it has joined `rooms`."""
    client = await ircd.client(n)
    async with asyncio.timeout(5):
        while not set(rooms) <= client.channels:
            await asyncio.sleep(0.01)
    return client


def relayed(client, line):
    """`line` (a PRIVMSG/NOTICE we sent) as the server relays it to others."""
    return f":{client.mask} {line}\r\n".encode()


# Hardening


async def test_garbage_lines_are_skipped_and_the_link_stays_up(ircd):
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        client.send(b"".join(line + b"\r\n" for line in [
            b"      ",
            b"   :bob!b@h PRIVMSG #test :leading spaces",
            b":bob!b@h PRIVMSG",
            b":bob!b@h PRIVMSG #test",
            b":bob!b@h KICK #test",
            b":bob!b@h NICK",
            b":bob!b@h JOIN",
            b"QUIT",
            b"@",
            b":scripted.test 999 xbridge what :unknown numeric",
            b":scripted.test 005 xbridge PREFIX=broken :are supported",
            b":bob!b@h PRIVMSG #test :caf\xe9 in latin-1",
            b":bob!b@h PRIVMSG #test :" + b"x" * 20000,
            b"\x00\x01\xff",
            b":bob!b@h PRIVMSG #test :hello after the garbage",
        ]))
        await events.wait_for(lambda e: isinstance(e, Message) and e.text == "hello after the garbage")
        assert [e.text for e in events.of(Message)] == ["café in latin-1", "hello after the garbage"]
        # Still the same connection, and it still works both ways.
        client.send(":bob!b@h PRIVMSG #test :and more")
        await events.wait_for(lambda e: isinstance(e, Message) and e.text == "and more")
        await adapter.deliver(CHAN, Message(Endpoint("xmpp", "r@muc"), Identity("xmpp", "a", "alice"), "pong"))
        await client.expect("PRIVMSG #test :<alice> pong")
        assert len(ircd.clients) == 1 and adapter.client.connections == 1


async def test_a_whois_away_reply_is_not_an_away_notice_and_breaks_nothing(ircd):
    """RPL_AWAY (301) has the irc library's event name of AWAY (away-notify)."""
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        client.send(f":bob!b@h JOIN {CHAN}")
        client.send("301 xbridge bob :no source at all")
        client.send(":scripted.test 301 xbridge bob :gone fishing")
        client.send(f":bob!b@h PRIVMSG {CHAN} :after the replies")
        await events.wait_for(lambda e: isinstance(e, Message) and e.text == "after the replies")
        assert events.of(Presence) == [] and adapter.client.conn.dropped_lines == 0


async def test_silent_link_is_dropped_reconnected_and_channels_rejoined(ircd):
    adapter, events = make_adapter(ircd.port, rooms=(CHAN, "#other"), ping_timeout=1.5)
    async with running(adapter):
        first = await joined(ircd, 0, (CHAN, "#other"))
        first.silent = True  # a black hole: reads everything, answers nothing
        await first.expect("PING", timeout=5)
        second = await joined(ircd, 1, (CHAN, "#other"))
        assert second is not first
        second.send(":bob!b@h PRIVMSG #other :back")
        await events.wait_for(lambda e: isinstance(e, Message) and e.text == "back")


async def test_closed_link_reconnects_and_queued_lines_follow(ircd):
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        first = await joined(ircd)
        first.close()
        await first.closed.wait()
        # Sent while disconnected: waits in the queue, goes out after the rejoin.
        await adapter.deliver(CHAN, Message(Endpoint("xmpp", "r@muc"), Identity("xmpp", "a", "alice"), "meanwhile"))
        second = await joined(ircd, 1)
        line = await second.expect("PRIVMSG #test :<alice> meanwhile")
        assert second.received.index(line) > second.received.index(second.lines("JOIN")[0])


# Registration


async def test_nick_in_use_takes_the_alternate_then_digits():
    ircd = await ScriptedIrcd(taken=("xbridge", "xbr")).start()
    try:
        adapter, events = make_adapter(ircd.port, alt_nicks=("xbr",))
        async with running(adapter):
            client = await joined(ircd)
            nick = client.nick
            assert nick.startswith("xbridge") and nick[7:].isdigit()
            assert [line for line in client.received if line.startswith("NICK")][:2] == ["NICK xbridge", "NICK xbr"]
            assert adapter.is_own(Identity(NET, nick, nick))
            assert not adapter.is_own(Identity(NET, "xbridge", "xbridge"))
            # Our own lines are never events; the nick's other holder is someone else.
            client.send(f":{nick}!~x@h PRIVMSG #test :from myself")
            client.send(":xbridge!x@h PRIVMSG #test :from the other xbridge")
            await events.wait_for(lambda e: isinstance(e, Message))
            assert [e.text for e in events.of(Message)] == ["from the other xbridge"]
    finally:
        await ircd.stop()


async def test_the_configured_nick_is_taken_back_once_free(monkeypatch):
    monkeypatch.setattr(client_module, "NICK_RETRY", 0.2)
    ircd = await ScriptedIrcd(taken=("xbridge",)).start()
    try:
        adapter, _ = make_adapter(ircd.port, alt_nicks=("xbr",))
        async with running(adapter):
            await joined(ircd)
            assert adapter.client.nick == "xbr"
            ircd.taken.clear()  # the ghost is gone
            async with asyncio.timeout(5):
                while adapter.client.nick != "xbridge":
                    await asyncio.sleep(0.05)
            assert adapter.is_own(Identity(NET, "xbridge", "xbridge"))
            assert not adapter.is_own(Identity(NET, "xbr", "xbr"))
    finally:
        await ircd.stop()


async def test_server_password_is_sent_before_nick():
    ircd = await ScriptedIrcd(password="sekrit").start()
    try:
        adapter, _ = make_adapter(ircd.port, password="sekrit")
        async with running(adapter):
            client = await joined(ircd)
            commands = [line.split()[0] for line in client.received]
            assert commands.index("PASS") < commands.index("NICK")
            assert client.password == "sekrit"
    finally:
        await ircd.stop()


async def test_sasl_plain_logs_in_before_registration():
    ircd = await ScriptedIrcd(accounts={"relayacct": "pa ss"}).start()
    try:
        adapter, _ = make_adapter(ircd.port, sasl=SaslConfig("relayacct", "pa ss"))
        async with running(adapter):
            client = await joined(ircd)
            req = client.lines("CAP REQ")[0]
            assert "sasl" in req.split(":", 1)[1].split()
            auth = client.lines("AUTHENTICATE")
            assert auth[0] == "AUTHENTICATE PLAIN"
            assert base64.b64decode(auth[1].split()[1]) == b"\0relayacct\0pa ss"
            # CAP END only once SASL is done.
            assert client.received.index("CAP END") > client.received.index(auth[1])
            assert client.account == adapter.client.account == "relayacct"
            assert adapter.is_own(Identity(NET, "relayacct", "whatever"))
    finally:
        await ircd.stop()


async def test_only_offered_capabilities_are_requested_and_never_echo_message():
    ircd = await ScriptedIrcd(caps=("multi-prefix", "echo-message", "batch")).start()
    try:
        adapter, _ = make_adapter(ircd.port)
        async with running(adapter):
            client = await joined(ircd)
            assert client.lines("CAP REQ") == ["CAP REQ :multi-prefix"]
            assert client.caps == {"multi-prefix"}
    finally:
        await ircd.stop()


async def test_echo_message_only_with_message_tags_for_the_msgids_of_our_lines():
    ircd = await ScriptedIrcd(caps=("message-tags", "echo-message", "draft/message-redaction")).start()
    try:
        adapter, _ = make_adapter(ircd.port)
        async with running(adapter):
            client = await joined(ircd)
            assert client.lines("CAP REQ") == ["CAP REQ :message-tags draft/message-redaction echo-message"]
    finally:
        await ircd.stop()


async def test_capabilities_listed_over_several_lines():
    ircd = await ScriptedIrcd(caps=("batch", "multi-prefix", "server-time"), cap_ls_lines=True).start()
    try:
        adapter, _ = make_adapter(ircd.port)
        async with running(adapter):
            client = await joined(ircd)
            assert client.lines("CAP REQ") == ["CAP REQ :multi-prefix server-time"]
    finally:
        await ircd.stop()


# IRC -> bridge events


async def test_messages_actions_notices_and_formatting(ircd):
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        client.send("@time=2020-01-01T00:00:00.000Z;msgid=abc :bob!b@h PRIVMSG #test :\x02hi\x02 \x0304there")
        client.send(":bob!b@h PRIVMSG #test :\x01ACTION waves\x01")
        client.send(":bob!b@h NOTICE #test :a notice")
        client.send(":bob!b@h PRIVMSG #test :\x01VERSION\x01")  # other CTCP: never relayed
        client.send(":bob!b@h PRIVMSG xbridge :private")  # not a linked channel
        client.send(":bob!b@h PRIVMSG #elsewhere :not linked")
        client.send(":scripted.test NOTICE #test :server notice")
        client.send(":bob!b@h PRIVMSG #TEST :case folded")
        await events.wait_for(lambda e: isinstance(e, Message) and e.text == "case folded")
        msgs = events.of(Message)
        assert [(m.text, m.kind) for m in msgs] == [
            ("*hi* there", MessageKind.PLAIN),
            ("waves", MessageKind.ACTION),
            ("a notice", MessageKind.NOTICE),
            ("case folded", MessageKind.PLAIN),
        ]
        first = msgs[0]
        assert first.endpoint == EP and first.sender == by_nick("bob")
        assert first.native_id == "abc" and first.time == 1577836800.0


async def test_account_names_identify_users_when_the_network_tells_them(ircd):
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        client.send(":alice!a@h JOIN #test alice_acct :Alice Example")  # extended-join
        client.send(":alice!a@h PRIVMSG #test :known by account")
        client.send("@account=carol_acct :carol!c@h PRIVMSG #test :tagged")
        await events.wait_for(lambda e: isinstance(e, Message) and e.text == "tagged")
        assert events.of(Join)[0].sender == Identity(NET, "alice_acct", "alice")
        assert [m.sender for m in events.of(Message)] == [
            Identity(NET, "alice_acct", "alice"), Identity(NET, "carol_acct", "carol")]


async def test_an_account_and_an_unregistered_nick_of_the_same_name_are_two_people(ircd):
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        client.send("@account=alice :bob!b@h PRIVMSG #test :I am logged in as alice")
        client.send(":alice!a@h PRIVMSG #test :I only use the nick alice")
        await events.wait_for(lambda e: isinstance(e, Message) and e.text.startswith("I only"))
        first, second = events.of(Message)
        assert first.sender == Identity(NET, "alice", "bob") and second.sender == by_nick("alice")
        assert first.sender.key != second.sender.key


async def test_a_nick_change_keeps_an_account_user_s_key_and_rekeys_a_nick_user(ircd):
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        client.send(":alice!a@h JOIN #test alice :Alice")  # extended-join: account alice
        client.send(":bob!b@h JOIN #test * :Bob")
        client.send(":alice!a@h NICK :alice_away")
        client.send(":bob!b@h NICK :bobby")
        client.send(":alice_away!a@h PRIVMSG #test :back soon")
        await events.wait_for(lambda e: isinstance(e, Message))
        alice, bobby = events.of(NickChange)
        assert alice.new_identity == Identity(NET, "alice", "alice_away")
        assert alice.new_identity.key == alice.sender.key
        assert bobby.sender == by_nick("bob") and bobby.new_identity == by_nick("bobby")
        assert events.of(Message)[0].sender == alice.new_identity


async def test_logging_in_or_out_rekeys_the_same_person_under_the_same_nick(ircd):
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        client.send(":carol!c@h JOIN #test * :Carol")
        client.send(":carol!c@h ACCOUNT carol_acct")  # account-notify
        client.send(":carol!c@h ACCOUNT *")
        client.send(":carol!c@h PRIVMSG #test :logged out again")
        await events.wait_for(lambda e: isinstance(e, Message))
        login, logout = events.of(NickChange)
        assert (login.sender, login.new_identity) == (by_nick("carol"), Identity(NET, "carol_acct", "carol"))
        assert (logout.sender, logout.new_identity) == (login.new_identity, by_nick("carol"))
        assert login.new_nick == logout.new_nick == "carol"
        assert events.of(Message)[0].sender == by_nick("carol")


async def test_membership_events(ircd):
    adapter, events = make_adapter(ircd.port, rooms=(CHAN, "#other"))
    async with running(adapter):
        client = await joined(ircd, 0, (CHAN, "#other"))
        client.send(":scripted.test 353 xbridge = #other :xbridge @+dave")  # NAMES, multi-prefix
        for line in [
            ":alice!a@h JOIN #test * :Alice",
            ":alice!a@h JOIN #other * :Alice",
            ":alice!a@h NICK :alicia",
            ":bob!b@h JOIN #test * :Bob",
            ":bob!b@h PART #test :bye now",
            ":op!o@h KICK #test alicia :behave",
            ":dave!d@h AWAY :lunch",
            ":dave!d@h QUIT :Quit: gone",
            ":op!o@h TOPIC #test :new \x02topic\x02",
        ]:
            client.send(line)
        await events.wait_for(lambda e: isinstance(e, Topic))
        got = [e for e in events.events if not isinstance(e, Join)]
        alice, alicia, bob, dave, op = map(by_nick, ("alice", "alicia", "bob", "dave", "op"))
        assert [(type(e), e.endpoint.room) for e in got] == [
            (NickChange, "#test"), (NickChange, "#other"),
            (Part, "#test"), (Kick, "#test"), (Presence, "#other"), (Part, "#other"), (Topic, "#test"),
        ]
        nick1, _, part, kick, away, quit_, topic = got
        assert nick1.sender == alice and nick1.new_nick == "alicia"
        assert part.sender == bob and part.reason == "bye now" and not part.quit
        assert kick.sender == op and kick.target == alicia and kick.reason == "behave"
        assert away.sender == dave and away.away and away.status == "lunch"
        assert quit_.sender == dave and quit_.quit and quit_.reason == "Quit: gone"
        assert topic.sender == op and topic.text == "new *topic*"


async def test_quit_reaches_only_the_channels_the_user_was_in(ircd):
    adapter, events = make_adapter(ircd.port, rooms=(CHAN, "#other"))
    async with running(adapter):
        client = await joined(ircd, 0, (CHAN, "#other"))
        client.send(":erin!e@h JOIN #other * :Erin")
        client.send(":erin!e@h QUIT :bye")
        await events.wait_for(lambda e: isinstance(e, Part))
        assert [(p.endpoint.room, p.quit) for p in events.of(Part)] == [("#other", True)]


async def test_empty_isupport_values_and_a_quit_without_reason(ircd):
    """PREFIX= means no prefixes, TOPICLEN= no known limit (modern IRC, RPL_ISUPPORT), and
    QUIT's reason is optional: NAMES still fills the roster, and the quit reaches the room."""
    adapter, events = make_adapter(ircd.port, rooms=(CHAN, "#other"))
    async with running(adapter):
        client = await joined(ircd, 0, (CHAN, "#other"))
        client.send(":scripted.test 005 xbridge PREFIX= TOPICLEN= :are supported")
        client.send(":scripted.test 353 xbridge = #other :xbridge dave")
        client.send(":dave!d@h QUIT")
        await events.wait_for(lambda e: isinstance(e, Part))
        assert [(p.endpoint.room, p.quit, p.reason) for p in events.of(Part)] == [("#other", True, "")]
        await adapter.deliver(CHAN, Topic(Endpoint("xmpp", "room@muc"), Identity("xmpp", "a", "alice"), "whole"))
        await client.expect("TOPIC #test :whole")


async def test_a_correction_that_would_outgrow_any_line_is_said_as_it_is(ircd):
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        grow = "s/x/" + "x" * 100 + "/g"
        client.send("@msgid=m1 :bob!b@h PRIVMSG #test :" + "x" * 100)
        client.send(":bob!b@h PRIVMSG #test :s/x/y/")  # a correction: x...x -> yx...x
        client.send(":bob!b@h PRIVMSG #test :" + grow)  # 10,000 characters: no line holds that
        client.send(":bob!b@h PRIVMSG #test :marker")
        await events.wait_for(lambda e: isinstance(e, Message) and e.text == "marker")
        said = [(m.text, m.replaces) for m in events.of(Message)]
        assert said == [("x" * 100, None), ("y" + "x" * 99, "m1"), (grow, None), ("marker", None)]


async def test_topic_shown_on_join_is_not_relayed_and_own_actions_are_silent(ircd):
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        client.send(":scripted.test 332 xbridge #test :the old topic")
        client.send(f":{client.mask} TOPIC #test :set by the bridge")
        client.send(f":{client.mask} PRIVMSG #test :said by the bridge")
        client.send(f":{client.mask} NICK :xbridge2")
        client.send(":xbridge2!~x@h PART #test :left")
        client.send(":bob!b@h PRIVMSG #test :marker")
        await events.wait_for(lambda e: isinstance(e, Message))
        assert [type(e) for e in events.events] == [Message]
        assert adapter.client.nick == "xbridge2"
        assert adapter.is_own(Identity(NET, "xbridge2", "XBRIDGE2"))


async def test_kicked_relay_client_rejoins(ircd, monkeypatch):
    monkeypatch.setattr(joins_module, "REJOIN_AFTER_KICK", 0.1)
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        count = len(client.lines("JOIN"))
        client.send(":op!o@h KICK #test xbridge :out")
        await client.expect("JOIN #test", after=len(client.received))
        assert len(client.lines("JOIN")) == count + 1
        assert events.of(Kick) == []


# bridge -> IRC


def xmpp_msg(text, kind=MessageKind.PLAIN, nick="alice"):
    return Message(Endpoint("xmpp", "room@muc"), Identity("xmpp", "alice@x", nick), text, kind)


async def test_line_breaks_cannot_inject_commands(ircd):
    adapter, _ = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        await adapter.deliver(CHAN, xmpp_msg("hi\r\nQUIT :x\nNICK evil\x00"))
        await client.expect("PRIVMSG #test :<alice> QUIT :x")
        await client.expect("PRIVMSG #test :<alice> NICK evil")
        assert not client.lines("QUIT") and not client.lines("NICK evil")
        assert not client.closed.is_set() and len(ircd.clients) == 1


async def test_long_and_multiline_messages_fit_the_wire(ircd):
    adapter, _ = make_adapter(ircd.port, max_lines=4)
    async with running(adapter):
        client = await joined(ircd)
        words = [f"wörd{i}" for i in range(300)]
        await adapter.deliver(CHAN, xmpp_msg(" ".join(words)))
        await adapter.deliver(CHAN, xmpp_msg("\n".join(f"line {i}" for i in range(10))))
        await client.expect("PRIVMSG #test :<alice> [… 7 more lines cut]")
        sent = client.lines("PRIVMSG #test")
        assert len(sent) == 8
        # Whole words, in order, as far as they go; then the count of what was cut.
        shown = [w for line in sent[:3] for w in line.removeprefix("PRIVMSG #test :<alice> ").split()]
        assert shown == words[:len(shown)]
        assert sent[3].startswith("PRIVMSG #test :<alice> [… ") and sent[3].endswith(" more lines cut]")
        for line in sent:
            assert len(relayed(client, line)) <= MAX_LINE
        assert sent[-4:] == ["PRIVMSG #test :<alice> line 0", "PRIVMSG #test :<alice> line 1",
                             "PRIVMSG #test :<alice> line 2", "PRIVMSG #test :<alice> [… 7 more lines cut]"]


async def test_actions_notices_bridge_notices_and_topics(ircd):
    adapter, _ = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        await adapter.deliver(CHAN, xmpp_msg("waves", MessageKind.ACTION))
        await adapter.deliver(CHAN, xmpp_msg("heads up", MessageKind.NOTICE))
        await adapter.deliver(CHAN, Message(EP, BRIDGE, "link established"))
        await adapter.deliver(CHAN, Topic(Endpoint("xmpp", "room@muc"), Identity("xmpp", "a", "alice"), "fresh\ntopic"))
        await client.expect("TOPIC #test :fresh topic")
        # The same topic again is not sent: IRC already shows it.
        await adapter.deliver(CHAN, Topic(Endpoint("xmpp", "room@muc"), Identity("xmpp", "a", "alice"), "fresh topic"))
        await adapter.deliver(CHAN, Join(Endpoint("xmpp", "room@muc"), Identity("xmpp", "a", "alice")))
        await adapter.deliver(CHAN, xmpp_msg("end"))
        await client.expect("PRIVMSG #test :<alice> end")
        assert [line for line in client.received if line.split()[0] in ("PRIVMSG", "NOTICE", "TOPIC")] == [
            "PRIVMSG #test :* alice waves",
            "NOTICE #test :<alice> heads up",
            "NOTICE #test :link established",
            "NOTICE #test :alice set the topic in the MUC",
            "TOPIC #test :fresh topic",
            "PRIVMSG #test :<alice> end",
        ]


def test_security_line():
    adapter, _ = make_adapter(6697, tls=True, tls_verify=False, host="irc.example.org")
    assert adapter.security() == ["IRC testnet: TLS, certificate NOT verified, server irc.example.org:6697"]
