"""Portal rooms, the XMPP side alone: what users' stanzas ask of IRC, and what they are shown."""

from __future__ import annotations

import asyncio
from xml.etree import ElementTree as ET

import pytest

from bridge.config_types import PortalConfig
from bridge.core.events import MessageKind
from bridge.core.portal import Member, PortalNetworks, Refused, Snapshot
from bridge.store.sqlite import SqliteStore
from bridge.xmpp.portal import Portal

DOMAIN = "bridge.example.org"
ROOM = f"#chan%libera@{DOMAIN}"
LAPTOP, PHONE = "alice@example.org/laptop", "alice@example.org/phone"
USER = "alice@example.org"


class FakeIrc(PortalNetworks):
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.inside: dict[str, Snapshot] = {}
        self.refuse: Refused | None = None

    def chantypes(self, network):
        return "#&"

    def join(self, user, network, channel, nick, key=""):
        if self.refuse:
            raise self.refuse
        self.calls.append(("join", channel, nick, key))

    def snapshot(self, user, network, channel):
        return self.inside.get(channel)

    def part(self, user, network, channel):
        self.calls.append(("part", channel))

    def say(self, user, network, target, text, kind):
        self.calls.append(("say", target, text, kind))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def channels(self, user, network):
        return [("#b", 3, ""), ("#a", 12, "all about a")]

    def raw(self, user, network, line):
        self.calls.append(("raw", line))

    def set_topic(self, user, network, channel, text):
        self.calls.append(("topic", channel, text))

    def nick(self, user, network, nick):
        self.calls.append(("nick", nick))

    def set_mode(self, user, network, channel, nick, mode):
        self.calls.append(("mode", channel, nick, mode))

    def kick(self, user, network, channel, nick, reason):
        self.calls.append(("kick", channel, nick, reason))


@pytest.fixture
def portal():
    sent: list[ET.Element] = []
    irc = FakeIrc()
    config = PortalConfig(networks=("Libera",), users=("example.org",))
    view = Portal(config, DOMAIN, irc, lambda data: sent.append(
        ET.fromstring(f"<r xmlns='jabber:client'>{data}</r>")[0]) or True,
        SqliteStore(":memory:"), lambda jid: jid == "linked@muc.example.org")
    view.sent, view.irc = sent, irc
    return view


def stanza(text: str) -> ET.Element:
    return ET.fromstring(text.replace("<presence", "<presence xmlns='jabber:client'", 1)
                         .replace("<message", "<message xmlns='jabber:client'", 1)
                         .replace("<iq", "<iq xmlns='jabber:client'", 1))


def join(portal, resource=LAPTOP, nick="alice", payload="<x xmlns='http://jabber.org/protocol/muc'/>"):
    presence = f"<presence from='{resource}' to='{ROOM}/{nick}'>{payload}</presence>"
    assert portal.take("presence", stanza(presence))


def presences(portal, to=None):
    out = []
    for xml in portal.sent:
        if xml.tag != "{jabber:client}presence" or (to and xml.get("to") != to):
            continue
        item = xml.find(".//{http://jabber.org/protocol/muc#user}item")
        codes = {s.get("code") for s in xml.iter("{http://jabber.org/protocol/muc#user}status")}
        out.append((xml.get("from").partition("/")[2], xml.get("type"),
                    item.get("role") if item is not None else None, codes,
                    item.get("nick") if item is not None else None))
    return out


def entered(portal, me="alice", members=(Member("bob", "o"),), topic="hi"):
    snapshot = Snapshot(Member(me), tuple(members), topic)
    portal.irc.inside["#chan"] = snapshot
    portal.entered(USER, "Libera", "#chan", snapshot)


async def test_a_join_asks_irc_and_the_end_of_names_shows_the_room_in_order(portal):
    join(portal)
    assert portal.irc.calls == [("join", "#chan", "alice", "")]
    assert portal.sent == []  # nothing until IRC answers
    entered(portal, members=(Member("bob", "o"), Member("carol", "h"), Member("dan", "v"),
                             Member("eve", "q")))
    shown = presences(portal)
    assert [(nick, role) for nick, _, role, _, _ in shown] == [
        ("bob", "moderator"), ("carol", "moderator"), ("dan", "participant"), ("eve", "moderator"),
        ("alice", "participant")]
    assert shown[-1][3] == {"110", "100"}
    affiliations = [x.find(".//{http://jabber.org/protocol/muc#user}item").get("affiliation")
                    for x in portal.sent if x.tag == "{jabber:client}presence"]
    assert affiliations == ["admin", "member", "member", "owner", "none"]
    assert portal.sent[-1].findtext("{jabber:client}subject") == "hi"


async def test_a_status_update_is_no_nick_change_and_another_nick_is(portal):
    join(portal)
    entered(portal)
    portal.irc.calls.clear()
    join(portal, payload="<show>away</show>")  # same nick, no MUC <x/>: a status update
    assert portal.irc.calls == []
    join(portal, nick="alicia", payload="")
    assert portal.irc.calls == [("nick", "alicia")]


async def test_an_irc_nick_change_is_303_then_the_new_nick_for_every_resource(portal):
    join(portal)
    entered(portal)
    join(portal, PHONE)  # shown at once, no second JOIN
    assert [c for c in portal.irc.calls if c[0] == "join"] == [("join", "#chan", "alice", "")]
    portal.sent.clear()
    portal.renamed(USER, "Libera", "#chan", "alice", Member("alicia"), me=True)
    for resource in (LAPTOP, PHONE):
        assert presences(portal, resource) == [
            ("alice", "unavailable", "participant", {"303", "110"}, "alicia"),
            ("alicia", None, "participant", {"110"}, None)]


async def test_a_refusal_is_the_presence_error_for_each_waiting_resource(portal):
    join(portal)
    join(portal, PHONE)
    portal.refused(USER, "Libera", "#chan", Refused("forbidden", "libera: Cannot join channel (+b)"))
    errors = [x for x in portal.sent if x.get("type") == "error"]
    assert [e.get("to") for e in errors] == [LAPTOP, PHONE]
    assert errors[0].find("{jabber:client}error").get("type") == "auth"
    assert errors[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden") is not None
    assert portal.rooms == {}


async def test_the_last_resource_to_leave_parts_and_a_gone_client_counts_as_leaving(portal):
    join(portal)
    entered(portal)
    join(portal, PHONE)
    leave = f"<presence type='unavailable' from='{LAPTOP}' to='{ROOM}/alice'/>"
    assert portal.take("presence", stanza(leave))
    assert ("part", "#chan") not in portal.irc.calls
    portal.take("message", stanza(f"<message type='error' from='{PHONE}' to='{ROOM}/alice'>"
                                  "<error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                                  "</error></message>"))
    assert ("part", "#chan") in portal.irc.calls and portal.rooms == {}


async def test_messages_go_as_said_and_an_action_as_an_action(portal):
    join(portal)
    entered(portal)
    portal.take("message", stanza(f"<message type='groupchat' id='m1' from='{LAPTOP}' to='{ROOM}'>"
                                  "<body>/me waves</body></message>"))
    assert ("say", "#chan", "waves", MessageKind.ACTION) in portal.irc.calls
    await asyncio.sleep(0)
    echo = portal.sent[-1]
    assert (echo.get("id"), echo.get("from"), echo.findtext("{jabber:client}body")) == \
        ("m1", f"{ROOM}/alice", "/me waves")


async def test_beyond_the_caps_the_join_is_refused_with_the_reason(portal):
    portal.irc.refuse = Refused("resource-constraint", "libera: as many connections as it may")
    join(portal)
    assert portal.sent[-1].get("type") == "error" and portal.rooms == {}


async def test_stanzas_that_are_not_the_portals(portal):
    for to in (f"#chan%efnet@{DOMAIN}", DOMAIN, f"bob%libera@{DOMAIN}"):
        xml = stanza(f"<iq type='get' from='{LAPTOP}' to='{to}'><query xmlns='jabber:iq:version'/></iq>")
        assert not portal.take("iq", xml), to
    linked = stanza(f"<message type='chat' from='linked@muc.example.org/bob' to='bob%libera@{DOMAIN}'>"
                    "<body>hi</body></message>")
    assert not portal.take("message", linked)  # a MUC private message to a plumbed puppet
    stranger = stanza(f"<message type='chat' from='eve@elsewhere.net/x' to='bob%libera@{DOMAIN}'>"
                      "<body>hi</body></message>")
    assert not portal.take("message", stranger)  # not let in: the plumbed meaning, if any


def test_the_history_a_join_asks_for():
    from bridge.xmpp.portal_history import ON_JOIN, asked

    def presence(history):
        return ET.fromstring(f"<presence xmlns='jabber:client'><x xmlns='http://jabber.org/protocol/muc'>"
                             f"{history}</x></presence>")
    assert asked(presence("")) == (ON_JOIN, None)
    assert asked(presence("<history maxstanzas='5'/>")) == (5, None)
    assert asked(presence("<history maxchars='0'/>"))[0] == 0
    assert asked(presence("<history since='1970-01-01T00:16:40Z'/>")) == (ON_JOIN, 1000.0)
    limit, start = asked(presence("<history seconds='60' maxstanzas='abc'/>"))
    assert limit == ON_JOIN and start is not None


async def test_admin_items_are_kicks_and_prefix_modes(portal):
    join(portal)
    entered(portal)

    def admin(item):
        portal.sent.clear()
        portal.take("iq", stanza(f"<iq type='set' id='a1' from='{LAPTOP}' to='{ROOM}'><query xmlns="
                                 f"'http://jabber.org/protocol/muc#admin'>{item}</query></iq>"))
        return portal.sent[-1].get("type")
    assert admin("<item nick='bob' role='none'><reason>bye</reason></item>") == "result"
    assert admin("<item nick='bob' role='participant'/>") == "result"
    assert admin("<item nick='bob' affiliation='admin'/>") == "result"
    assert admin("<item nick='bob' role='visitor'/>") == "result"
    assert admin("<item nick='bob' affiliation='outcast'/>") == "error"
    assert [c for c in portal.irc.calls if c[0] in ("kick", "mode")] == [
        ("kick", "#chan", "bob", "bye"), ("mode", "#chan", "bob", "v"), ("mode", "#chan", "bob", "o"),
        ("mode", "#chan", "bob", "")]


async def test_persistent_rooms_come_back_only_for_users_still_let_in(portal):
    join(portal)
    entered(portal)
    portal.take("iq", stanza(f"<iq type='set' id='c1' from='{LAPTOP}' to='{ROOM}'><query xmlns="
                             "'http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"
                             "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
                             "</x></query></iq>"))
    leave = f"<presence type='unavailable' from='{LAPTOP}' to='{ROOM}/alice'/>"
    assert portal.take("presence", stanza(leave))
    assert ("part", "#chan") not in portal.irc.calls  # persistent: stays on IRC
    saved = dict(portal.persistent)
    again = Portal(PortalConfig(networks=("Libera",), users=("example.org",)), DOMAIN, FakeIrc(),
                   lambda data: True, portal.store, lambda jid: False)
    again.online()
    assert again.networks.calls == [("join", "#chan", "alice", "")]
    gone = Portal(PortalConfig(networks=("Libera",), users=("example.net",)), DOMAIN, FakeIrc(),
                  lambda data: True, portal.store, lambda jid: False)
    gone.online()
    assert gone.networks.calls == [] and gone.persistent == {} and saved


async def test_a_probe_takes_out_resources_whose_server_says_they_are_gone(portal):
    join(portal)
    entered(portal)
    join(portal, PHONE)
    asked = []

    async def query(to, sender, payload, kind, timeout):
        asked.append((to, sender))
        if to == PHONE:  # its server vanished: the user's server says so
            return stanza(f"<iq type='error' from='{to}'><error type='cancel'><remote-server-not-found "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        if to == LAPTOP:  # a client without XEP-0199: there all the same
            return stanza(f"<iq type='error' from='{to}'><error type='cancel'><service-unavailable "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        return None
    portal._probed = float("-inf")
    await portal.probe(query)
    assert sorted(asked) == [(LAPTOP, ROOM), (PHONE, ROOM)]
    room = portal.rooms[(USER, "Libera", "#chan")]
    assert list(room.resources) == [LAPTOP] and ("part", "#chan") not in portal.irc.calls
    await portal.probe(query)  # not again before PROBE_INTERVAL
    assert len(asked) == 2


async def test_the_network_lists_its_channels_in_pages(portal):
    def items(rsm=""):
        portal.sent.clear()
        assert portal.take("iq", stanza(f"<iq type='get' id='d1' from='{LAPTOP}' to='libera@{DOMAIN}'><query "
                                        f"xmlns='http://jabber.org/protocol/disco#items'>{rsm}</query></iq>"))
        return portal.sent
    items()
    await asyncio.sleep(0)
    query = portal.sent[-1].find("{http://jabber.org/protocol/disco#items}query")
    found = [(i.get("jid"), i.get("name"))
             for i in query.iter("{http://jabber.org/protocol/disco#items}item")]
    assert found == [(f"#a%libera@{DOMAIN}", "#a (12): all about a"), (f"#b%libera@{DOMAIN}", "#b (3)")]
    items(f"<set xmlns='http://jabber.org/protocol/rsm'><max>1</max><after>#a%libera@{DOMAIN}</after></set>")
    await asyncio.sleep(0)
    query = portal.sent[-1].find("{http://jabber.org/protocol/disco#items}query")
    assert [i.get("jid") for i in query.iter("{http://jabber.org/protocol/disco#items}item")] == \
        [f"#b%libera@{DOMAIN}"]
    assert query.findtext("{http://jabber.org/protocol/rsm}set/{http://jabber.org/protocol/rsm}count") == "2"
