"""The bridge on a real ejabberd 23.01 (Debian's), configured as the README's ejabberd section
says: the core relay set, the joins ejabberd refuses and what the log then says, and the
component link over TLS.

One ejabberd serves the session (tests/servers/ejabberd.py); each test has a room of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import xml.etree.ElementTree as ET

import pytest
from structlog.testing import capture_logs

from tests.integration.bridge_harness import bridge_ready, config_text, irc_network, running_bridge
from tests.integration.clients import XmppUser, wait_until
from tests.servers.ejabberd import Ejabberd

CHAN = "#room"
_rooms = itertools.count(1)


@pytest.fixture
def room() -> str:
    """A room nobody has made yet on the session's ejabberd."""
    return f"room{next(_rooms)}@muc.localhost"


def linked(server, inspircd, tmp_path, room: str, component: str = "", port: int | None = None) -> str:
    return config_text(server, tmp_path, irc_network("net", inspircd),
                       f"  l:\n    - xmpp: {room}\n    - irc: net/{CHAN}\n",
                       component=component, port=port)


async def bot_in(bridge, room: str) -> None:
    joined = bridge.router.adapters["xmpp"].rooms[room].joined
    await wait_until(joined.is_set, 15, f"the bot to join {room}")


async def test_the_bot_makes_the_room_then_text_actions_and_nick_changes_go_both_ways(
        ejabberd, inspircd, ejabberd_user, irc_user, tmp_path, room):
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(linked(ejabberd, inspircd, tmp_path, room)) as bridge:
        await bot_in(bridge, room)  # nobody else is in: the bot's join made the room
        alice = await ejabberd_user("alice")
        await alice.join(room, "alice")
        await bridge_ready(alice, [bob], CHAN, room=room)
        alice.say(room, "hello irc")
        await bob.wait_for_privmsg(CHAN, "<alice> hello irc", sender="relay")
        alice.me(room, "waves")
        await bob.wait_for_privmsg(CHAN, "* alice waves", sender="relay")
        bob.privmsg(CHAN, "hello xmpp")
        await alice.wait_for_message(room, "hello xmpp", nick="bob")
        bob.action(CHAN, "dances")
        await alice.wait_for_message(room, "/me dances", nick="bob")
        await bob.change_nick("bobby")
        await alice.presences.wait_for(lambda p: p.room == room and p.nick == "bob"
                                       and 303 in p.codes and p.new_nick == "bobby")
        await alice.change_nick(room, "alicia")
        await bob.wait_for(lambda l: l.command == "NOTICE" and l.target == CHAN
                           and l.text == "alice is now known as alicia")


async def test_topics_go_both_ways_in_a_room_a_user_made(
        ejabberd, inspircd, ejabberd_user, irc_user, tmp_path, room):
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    bob.send("MODE", CHAN, "-t")
    alice = await ejabberd_user("alice")
    await alice.join(room, "alice")  # alice makes the room, before the bridge
    async with running_bridge(linked(ejabberd, inspircd, tmp_path, room)):
        await bridge_ready(alice, [bob], CHAN, room=room)
        alice.set_subject(room, "from xmpp")
        await bob.wait_for(lambda l: l.command == "TOPIC" and l.text == "from xmpp")
        await bob.set_topic(CHAN, "from irc")
        await alice.wait_for_subject(room, "from irc")


async def test_a_join_to_a_members_only_room_is_refused_and_the_log_says_what_ejabberd_said(
        ejabberd, inspircd, ejabberd_user, tmp_path, room):
    """The room exists and the bot is not in it: ejabberd ignores the bot's leave before
    its join, and the refusal that follows is the join's."""
    alice = await ejabberd_user("alice")
    await alice.join(room, "alice")
    form = ("<x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
            "<field var='muc#roomconfig_membersonly'><value>1</value></field></x>")
    iq = alice.client.make_iq_set(ito=room)
    iq.xml.append(ET.fromstring(f"<query xmlns='http://jabber.org/protocol/muc#owner'>{form}</query>"))
    await iq.send(timeout=5)
    with capture_logs() as logs:
        async with running_bridge(linked(ejabberd, inspircd, tmp_path, room)):
            await wait_until(lambda: any(e["event"] == "muc_join_failed" for e in logs), 10,
                             "the refused join in the log")
    failed = next(e for e in logs if e["event"] == "muc_join_failed")
    assert (failed["room"], failed["condition"]) == (room, "registration-required")
    assert failed["text"] == "Membership is required to enter this room"


async def test_with_debians_default_room_creation_rule_the_bot_joins_only_rooms_that_exist(
        inspircd, irc_user, tmp_path, room):
    """Debian's ejabberd.yml lets only local users make rooms (`muc_create: allow: local`):
    the bot (the component's domain) may not, which the README says how to change; a room
    a local user made it joins."""
    server = Ejabberd(room_creators=("local",))
    made = room.replace("@", "-made@")
    alice = None
    try:
        await asyncio.to_thread(server.start)
        await server.register("alice", "alice-password")
        alice = await XmppUser.login(server, "alice", "alice-password")
        await alice.join(made, "alice")
        links = (f"  new:\n    - xmpp: {room}\n    - irc: net/#new\n"
                 f"  made:\n    - xmpp: {made}\n    - irc: net/{CHAN}\n")
        with capture_logs() as logs:
            async with running_bridge(config_text(server, tmp_path, irc_network("net", inspircd),
                                                  links)) as bridge:
                await bot_in(bridge, made)
                await wait_until(lambda: any(e["event"] == "muc_join_failed" for e in logs), 10,
                                 "the refused join in the log")
    finally:
        if alice is not None:
            await alice.close()
        await asyncio.to_thread(server.remove)
    failed = [e for e in logs if e["event"] == "muc_join_failed"]
    assert [(e["room"], e["condition"], e["text"]) for e in failed] == [
        (room, "forbidden", "Room creation is denied by service policy")]


async def test_over_tls_the_bridge_verifies_ejabberds_certificate_relays_and_says_so(
        ejabberd, inspircd, ejabberd_user, irc_user, tmp_path, room):
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    text = linked(ejabberd, inspircd, tmp_path, room, port=ejabberd.component_tls_port,
                  component=f"  tls: true\n  ca_file: {ejabberd.ca_path}\n")
    async with running_bridge(text) as bridge:
        await bot_in(bridge, room)  # its moderator: it sees alice's JID, and answers her
        alice = await ejabberd_user("alice")
        await alice.join(room, "alice")
        await bridge_ready(alice, [bob], CHAN, room=room)
        alice.say(room, "over tls")
        await bob.wait_for_privmsg(CHAN, "<alice> over tls", sender="relay")
        bob.privmsg(CHAN, "back")
        await alice.wait_for_message(room, "back", nick="bob")
        mark = alice.chats.mark()
        alice.client.send_message(mto=ejabberd.component_jid, mbody=f"security {room}", mtype="chat")
        report = (await alice.chats.wait_for(lambda m: m.room == ejabberd.component_jid,
                                             after=mark)).body
    hops = [line for line in report.splitlines() if "XMPP server to the bridge" in line]
    assert len(hops) == 1, report
    assert " TLS TLSv1." in hops[0] and "certificate verified for localhost" in hops[0]


@pytest.mark.parametrize("trust, tls_port, event, error", [
    ("", True, "xmpp_certificate_refused",  # the system's CAs only
     "self-signed certificate in certificate chain"),
    ("  tls_name: xmpp.example.org\n", True, "xmpp_certificate_refused", "Hostname mismatch"),
    ("", False, "xmpp_tls_failed", "WRONG_VERSION_NUMBER"),  # the plain component port
])
async def test_over_tls_a_server_the_bridge_cannot_verify_is_refused_with_a_clear_error(
        ejabberd, inspircd, tmp_path, room, trust, tls_port, event, error):
    if trust:
        trust += f"  ca_file: {ejabberd.ca_path}\n"
    port = ejabberd.component_tls_port if tls_port else ejabberd.component_port
    text = linked(ejabberd, inspircd, tmp_path, room, port=port, component="  tls: true\n" + trust)
    with capture_logs() as logs:
        async with running_bridge(text) as bridge:
            await wait_until(lambda: any(e["event"] == event for e in logs), 10, f"{event} in the log")
            assert not bridge.router.adapters["xmpp"].connected()
    refused = next(e for e in logs if e["event"] == event)
    assert error in refused["error"] and refused["port"] == port
    assert "xmpp_online" not in [e["event"] for e in logs]
