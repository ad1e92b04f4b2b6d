"""Portal mode against real Prosody and InspIRCd: an XMPP user joins `#chan%ircnet@bridge...`
with their own IRC connection and sees the channel as a MUC."""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from bridge.demo.servers import free_port
from bridge.xmpp import portal
from tests.integration.bridge_harness import ROOM, bridge_ready, config_text, irc_network, running_bridge
from tests.integration.clients import NS_MUC, XmppUser, wait_until
from tests.servers.scripted_ircd import ScriptedIrcd

pytestmark = pytest.mark.asyncio

T = 20.0  # the machine is shared: generous waits, never speed asserted


def portal_config(prosody, inspircd, tmp_path, users: str = "[localhost]", extra: str = "") -> str:
    return config_text(prosody, tmp_path, irc_network("ircnet", inspircd), "  {}\n") + \
        f"portal: {{networks: [ircnet], users: {users}{extra}}}\n"


def room(prosody, channel: str = "#chan") -> str:
    return f"{channel}%ircnet@{prosody.component_jid}"


@contextlib.asynccontextmanager
async def portal_bridge(prosody, inspircd, tmp_path, **options):
    async with running_bridge(portal_config(prosody, inspircd, tmp_path, **options)) as bridge:
        yield bridge


def irc_nicks(line_text: str) -> set[str]:
    return {name.lstrip("~&@%+") for name in line_text.split()}


async def names(user, channel: str) -> set[str]:
    mark = user.lines.mark()
    user.send("NAMES", channel)
    line = await user.wait_for(lambda l: l.command == "353" and l.params[2].lower() == channel.lower(), T,
                               after=mark)
    return irc_nicks(line.text)


async def test_a_user_joins_a_channel_and_sees_its_occupants_with_roles(prosody, inspircd, xmpp_user,
                                                                       irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")  # the channel's creator: an operator
    carol = await irc_user(inspircd, "carol")
    await carol.join("#chan")
    bob.send("MODE", "#chan", "+v", "carol")
    await bob.set_topic("#chan", "the topic")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        await alice.join(room(prosody), "alice", timeout=T)
        jid = room(prosody)
        seen = {p.nick: p for p in alice.presences if p.room == jid}
        assert seen["bob"].role == "moderator" and seen["bob"].jid == f"bob%ircnet@{prosody.component_jid}"
        assert seen["carol"].role == "participant"
        mine = [p for p in alice.presences if p.room == jid]
        assert 110 in mine[-1].codes and mine[-1].nick == "alice"  # own presence last (7.2.3)
        assert all(110 not in p.codes for p in mine[:-1])
        assert 210 not in mine[-1].codes
        assert [m.subject for m in alice.messages if m.room == jid] == ["the topic"]
        assert "alice" in await names(bob, "#chan")  # her own connection, her own nick


async def test_messages_and_actions_both_ways_and_reflected(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        msg_id = alice.send(jid, "hello *bob*")
        line = await bob.wait_for_privmsg("#chan", "hello \x02bob\x02", sender="alice", timeout=T)
        assert line.source.startswith("alice!")
        echo = await alice.wait_for_message(jid, "hello *bob*", nick="alice", timeout=T)
        assert echo.id == msg_id  # the reflection keeps the client's id (7.4)
        alice.me(jid, "waves")
        line = await bob.wait_for(lambda l: l.action == "waves" and l.nick == "alice", T)
        bob.privmsg("#chan", "hi \x1dalice\x1d")
        await alice.wait_for_message(jid, "hi _alice_", nick="bob", timeout=T)
        bob.action("#chan", "smiles")
        await alice.wait_for_message(jid, "/me smiles", nick="bob", timeout=T)


async def test_nick_changes_both_ways(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        mark = alice.presences.mark()
        await bob.change_nick("robert")
        gone = await alice.presences.wait_for(lambda p: p.room == jid and p.nick == "bob" and 303 in p.codes,
                                              T, after=mark)
        assert gone.new_nick == "robert" and not gone.available
        await alice.presences.wait_for(lambda p: p.room == jid and p.nick == "robert" and p.available,
                                       T, after=mark)
        await alice.change_nick(jid, "alicia", timeout=T)  # XEP-0045 7.6: the 303 and 110 come back
        line = await bob.wait_for(lambda l: l.command == "NICK" and l.nick == "alice", T)
        assert line.target == "alicia"
        own = alice.presences.matching(lambda p: p.room == jid and p.nick == "alice" and 303 in p.codes)
        assert own and 110 in own[-1].codes and own[-1].new_nick == "alicia"
        assert "alicia" in await names(bob, "#chan")


async def test_kicks_both_ways(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        ops = room(prosody, "#ops")
        await alice.join(ops, "alice", timeout=T)  # she made the channel: its operator
        mine = await alice.presences.wait_for(lambda p: p.room == ops and 110 in p.codes, T)
        assert mine.role == "moderator"
        bob = await irc_user(inspircd, "bob")
        await bob.join("#ops")
        await alice.presences.wait_for(lambda p: p.room == ops and p.nick == "bob" and p.available, T)
        iq = alice.client.make_iq_set(ito=ops)
        query = ET.SubElement(iq.xml, f"{{{NS_MUC}#admin}}query")
        item = ET.SubElement(query, f"{{{NS_MUC}#admin}}item", nick="bob", role="none")
        ET.SubElement(item, f"{{{NS_MUC}#admin}}reason").text = "out you go"
        await iq.send(timeout=T)
        kick = await bob.wait_for(lambda l: l.command == "KICK" and l.params[1] == "bob", T)
        assert kick.nick == "alice" and kick.text == "out you go"
        gone = await alice.presences.wait_for(lambda p: p.room == ops and p.nick == "bob" and not p.available,
                                              T)
        assert 307 in gone.codes
        # and an IRC operator kicks her
        jid = room(prosody)
        await bob.join("#chan")
        await alice.join(jid, "alice", timeout=T)
        bob.send("KICK", "#chan", "alice", "behave")
        out = await alice.presences.wait_for(
            lambda p: p.room == jid and p.nick == "alice" and not p.available, T)
        assert {110, 307} <= out.codes and out.reason == "behave"


async def test_a_private_chat_both_ways_from_her_own_connection(prosody, inspircd, xmpp_user, irc_user,
                                                              tmp_path):
    bob = await irc_user(inspircd, "bob")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        bob_jid = f"bob%ircnet@{prosody.component_jid}"
        alice.client.send_message(mto=bob_jid, mbody="hello bob", mtype="chat")
        line = await bob.wait_for_privmsg("bob", "hello bob", timeout=T)
        assert line.source.startswith("alice!")  # her own nick, not the relay's
        bob.privmsg("alice", "hello _you_")
        answer = await alice.chats.wait_for(lambda m: m.body == "hello _you_", T)
        assert answer.room == bob_jid
        alice.client.send_message(mto=bob_jid, mbody="/me nods", mtype="chat")
        await bob.wait_for(lambda l: l.action == "nods" and l.nick == "alice" and l.target == "bob", T)
        bob.privmsg("alice", "\x01VERSION\x01")  # CTCP: answered by the bridge, not shown to her
        reply = await bob.wait_for(lambda l: l.command == "NOTICE" and l.nick == "alice", T)
        assert reply.text.startswith("\x01VERSION muc-bridge ")


def presence_error(user, room_jid: str):
    """The next presence error from `room_jid` (test clients record MUC presences only)."""
    found = asyncio.get_running_loop().create_future()

    def seen(pres):
        if pres["type"] == "error" and pres["from"].bare == room_jid and not found.done():
            found.set_result(pres)
    user.client.add_event_handler("presence_error", seen)
    return found


@pytest.mark.parametrize("mode, condition", [
    ("+k secret", "not-authorized"), ("+b alice!*@*", "forbidden"), ("+i", "registration-required"),
    ("+l 1", "service-unavailable")])
async def test_a_refused_join_is_the_matching_presence_error(prosody, inspircd, xmpp_user, irc_user, tmp_path,
                                                            mode, condition):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#closed")
    bob.send("MODE", "#closed", *mode.split())
    await bob.wait_for(lambda l: l.command == "MODE" and l.target == "#closed", T)
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        jid = room(prosody, "#closed")
        error = presence_error(alice, jid)
        alice.client.send_presence(pto=f"{jid}/alice")
        pres = await asyncio.wait_for(error, T)
        assert pres["error"]["condition"] == condition
        assert pres["error"]["text"].startswith("ircnet: ")
        if mode.startswith("+k"):  # with the key as the room password (7.2.6) she is in
            presence = alice.client.make_presence(pto=f"{jid}/alice")
            x = ET.SubElement(presence.xml, f"{{{NS_MUC}}}x")
            ET.SubElement(x, f"{{{NS_MUC}}}password").text = "secret"
            presence.send()
            await alice.presences.wait_for(lambda p: p.room == jid and 110 in p.codes and p.available, T)


async def test_two_resources_share_one_connection_and_the_last_to_leave_ends_it(prosody, inspircd, xmpp_user,
                                                                              irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    async with portal_bridge(prosody, inspircd, tmp_path) as bridge:
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        phone = await XmppUser.login(prosody, "alice", "alice-password", resource="phone")
        try:
            await phone.join(jid, "alice", timeout=T)  # no second JOIN: shown the room at once
            assert {"bob", "alice"} <= phone.occupants(jid)
            assert len(bob.lines.matching(lambda l: l.command == "JOIN" and l.nick == "alice")) == 1
            alice.say(jid, "from the laptop")
            await bob.wait_for_privmsg("#chan", "from the laptop", sender="alice", timeout=T)
            await phone.wait_for_message(jid, "from the laptop", nick="alice", timeout=T)  # reflected
            bob.privmsg("#chan", "to both")
            await alice.wait_for_message(jid, "to both", nick="bob", timeout=T)
            await phone.wait_for_message(jid, "to both", nick="bob", timeout=T)
            await alice.leave(jid, timeout=T)
            await asyncio.sleep(1.0)
            assert not bob.lines.matching(lambda l: l.command in ("PART", "QUIT") and l.nick == "alice")
            await phone.leave(jid, timeout=T)
            await bob.wait_for(lambda l: l.command == "PART" and l.nick == "alice", T)
            await wait_until(lambda: not bridge.adapters[-1].links, T, "the connection to close")
            mark = bob.lines.mark()
            bob.send("WHOIS", "alice")  # the connection is gone from the network too
            await bob.wait_for(lambda l: l.command == "401", T, after=mark)
        finally:
            await phone.close()


async def test_the_room_comes_back_after_the_irc_server_restarts(prosody, inspircd, xmpp_user, irc_user,
                                                                tmp_path):
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        await inspircd.stop()
        await inspircd.start()
        bob = await irc_user(inspircd, "bob")
        await bob.join("#chan")
        listed = set().union(*(irc_nicks(l.text) for l in bob.lines.matching(lambda l: l.command == "353")))
        if "alice" not in listed:  # she was not back before him: her JOIN is still to come
            await bob.wait_for(lambda l: l.command == "JOIN" and l.nick == "alice", 60.0)
        await alice.presences.wait_for(lambda p: p.room == jid and p.nick == "bob" and p.available, T)
        alice.say(jid, "still here")
        await bob.wait_for_privmsg("#chan", "still here", sender="alice", timeout=T)
        bob.privmsg("#chan", "welcome back")
        await alice.wait_for_message(jid, "welcome back", nick="bob", timeout=T)


async def ping(user, to: str):
    iq = user.client.make_iq_get(ito=to)
    ET.SubElement(iq.xml, "{urn:xmpp:ping}ping")
    try:
        await iq.send(timeout=T)
        return "result"
    except IqError as exc:
        return exc.iq["error"]["condition"]


async def test_self_ping_says_whether_the_resource_is_in_the_room(prosody, inspircd, xmpp_user, tmp_path):
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        assert await ping(alice, f"{jid}/alice") == "not-acceptable"  # XEP-0410: not joined
        await alice.join(jid, "alice", timeout=T)
        assert await ping(alice, f"{jid}/alice") == "result"
        assert await ping(alice, f"{jid}/someone") == "not-acceptable"
        alice.client.register_plugin("xep_0030")
        info = (await alice.client.plugin["xep_0030"].get_info(jid=jid, timeout=T))["disco_info"]
        assert ("conference", "irc") in {(i[0], i[1]) for i in info["identities"]}
        assert {"http://jabber.org/protocol/muc", "http://jabber.org/protocol/muc#self-ping-optimization"} \
            <= set(info["features"])
        form = info.xml.find("{jabber:x:data}x")
        fields = {f.get("var"): f.findtext("{jabber:x:data}value") for f in form.iter("{jabber:x:data}field")}
        assert fields["muc#roominfo_occupants"] == "1"  # she alone, in a channel she made


async def test_a_bridge_that_stops_takes_its_users_out_of_their_rooms(prosody, inspircd, xmpp_user, irc_user,
                                                                      tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
    out = await alice.presences.wait_for(lambda p: p.room == jid and 110 in p.codes and not p.available, T)
    assert 332 in out.codes  # XEP-0045: removed because the service is shutting down
    await bob.wait_for(lambda l: l.command == "QUIT" and l.nick == "alice", T)


async def test_a_user_the_portal_does_not_let_in_is_refused(prosody, inspircd, xmpp_user, tmp_path):
    async with portal_bridge(prosody, inspircd, tmp_path, users="[carol@localhost]"):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        error = presence_error(alice, jid)
        alice.client.send_presence(pto=f"{jid}/alice")
        assert (await asyncio.wait_for(error, T))["error"]["condition"] == "forbidden"


async def test_a_taken_nick_is_joined_under_another_with_status_210(prosody, inspircd, xmpp_user, irc_user,
                                                                   tmp_path):
    squatter = await irc_user(inspircd, "alice")
    await squatter.join("#chan")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        mine = alice.presences.matching(lambda p: p.room == jid and 110 in p.codes)[-1]
        assert mine.nick != "alice" and 210 in mine.codes
        assert "alice" in alice.occupants(jid)  # the other alice, from IRC


async def test_modes_are_roles_and_the_resync_of_a_client_joining_again(prosody, inspircd, xmpp_user,
                                                                       irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        mark = alice.presences.mark()
        bob.send("MODE", "#chan", "+o", "alice")
        mine = await alice.presences.wait_for(lambda p: p.room == jid and 110 in p.codes and p.available,
                                              T, after=mark)
        assert mine.role == "moderator"
        bob.send("MODE", "#chan", "-o+v", "bob", "bob")
        voiced = await alice.presences.wait_for(lambda p: p.room == jid and p.nick == "bob", T, after=mark)
        assert voiced.role == "participant"
        await alice.join(jid, "alice", timeout=T)  # a client that lost track: the whole sequence again
        assert len(bob.lines.matching(lambda l: l.command == "JOIN" and l.nick == "alice")) == 1


async def test_connections_are_capped_per_network(prosody, inspircd, xmpp_user, tmp_path):
    async with portal_bridge(prosody, inspircd, tmp_path, extra=", per_network: 1"):
        alice = await xmpp_user("alice")
        await alice.join(room(prosody), "alice", timeout=T)
        carol = await xmpp_user("carol")
        error = presence_error(carol, room(prosody))
        carol.client.send_presence(pto=f"{room(prosody)}/carol")
        pres = await asyncio.wait_for(error, T)
        assert pres["error"]["condition"] == "resource-constraint"


async def test_plumbed_puppets_keep_their_addresses_beside_the_portal(prosody, inspircd, xmpp_user, irc_user,
                                                                     tmp_path):
    text = config_text(prosody, tmp_path, irc_network("ircnet", inspircd),
                       f"  l:\n    - xmpp: {ROOM}\n    - irc: ircnet/#plumbed\n") + \
        "portal: {networks: [ircnet], users: [alice@localhost]}\n"
    bob = await irc_user(inspircd, "bob")
    await bob.join("#plumbed")
    async with running_bridge(text):
        dave = await xmpp_user("dave")
        await dave.join(ROOM, "dave", timeout=T)
        await bridge_ready(dave, [bob], "#plumbed", timeout=T)
        bob.privmsg("#plumbed", "hi")  # bob's puppet exists from now on: bob%ircnet@bridge...
        await dave.wait_for_message(ROOM, "hi", nick="bob", timeout=T)
        bob_jid = f"bob%ircnet@{prosody.component_jid}"
        dave.client.send_message(mto=bob_jid, mbody="through the relay", mtype="chat")  # not a portal user
        line = await bob.wait_for_privmsg("bob", "<dave> through the relay", timeout=T)
        assert line.nick == "relay"
        alice = await xmpp_user("alice")  # a portal user: the same address, from her own connection
        alice.client.send_message(mto=bob_jid, mbody="from my own nick", mtype="chat")
        await bob.wait_for_privmsg("bob", "from my own nick", sender="alice", timeout=T)
        bob.privmsg("#plumbed", "still plumbed")
        await dave.wait_for_message(ROOM, "still plumbed", nick="bob", timeout=T)


async def test_topics_and_departures(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    carol = await irc_user(inspircd, "carol")
    await carol.join("#chan")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        await bob.set_topic("#chan", "news \x02today\x02")
        subject = await alice.wait_for_subject(jid, "news *today*", timeout=T)
        assert subject.nick == "bob"
        alice.set_subject(jid, "set from XMPP")  # +t, and she is no operator: the room says so
        said = await alice.wait_for_message(jid, nick="", timeout=T)
        assert said.body.startswith("ircnet: ") and "op" in said.body
        bob.send("MODE", "#chan", "+o", "alice")
        await alice.presences.wait_for(
            lambda p: p.room == jid and 110 in p.codes and p.role == "moderator", T)
        alice.set_subject(jid, "set from XMPP")
        line = await bob.wait_for(lambda l: l.command == "TOPIC" and l.nick == "alice", T)
        assert line.text == "set from XMPP"
        await carol.part("#chan", "lunch")
        await alice.presences.wait_for(lambda p: p.room == jid and p.nick == "carol" and not p.available, T)
        await bob.quit("bye")
        await alice.presences.wait_for(lambda p: p.room == jid and p.nick == "bob" and not p.available, T)
        assert alice.occupants(jid) == {"alice"}


async def test_a_join_the_network_never_answers_is_given_up(prosody, tmp_path, xmpp_user, monkeypatch):
    monkeypatch.setattr(portal, "JOIN_WAIT", 2.0)

    class Nowhere:  # an IRC server that is down
        host, port = "127.0.0.1", free_port()
    async with running_bridge(portal_config(prosody, Nowhere, tmp_path)) as bridge:
        alice = await xmpp_user("alice")
        jid = room(prosody)
        error = presence_error(alice, jid)
        alice.client.send_presence(pto=f"{jid}/alice")
        pres = await asyncio.wait_for(error, T)
        assert pres["error"]["condition"] == "remote-server-timeout"
        await wait_until(lambda: not bridge.adapters[-1].links, T, "the connection to be given up")


def message_error(user, room_jid: str):
    found = asyncio.get_running_loop().create_future()

    def seen(msg):
        if msg["from"].bare == room_jid and not found.done():
            found.set_result(msg)
    user.client.add_event_handler("message_error", seen)
    return found


async def test_a_message_from_a_resource_not_in_the_room_is_refused(prosody, inspircd, xmpp_user, irc_user,
                                                                   tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        phone = await XmppUser.login(prosody, "alice", "alice-password", resource="phone")
        try:
            error = message_error(phone, jid)
            phone.say(jid, "not joined here")
            assert (await asyncio.wait_for(error, T))["error"]["condition"] == "not-acceptable"
            alice.say(jid, "joined here")
            await bob.wait_for_privmsg("#chan", "joined here", timeout=T)
            assert not bob.lines.matching(lambda l: l.text == "not joined here")
        finally:
            await phone.close()


async def test_connections_are_capped_per_user(prosody, inspircd, xmpp_user, tmp_path):
    networks = irc_network("ircnet", inspircd) + irc_network("other", inspircd, nick="relay2")
    text = config_text(prosody, tmp_path, networks, "  {}\n") + \
        "portal: {networks: [ircnet, other], users: [localhost], per_user: 1}\n"
    async with running_bridge(text):
        alice = await xmpp_user("alice")
        await alice.join(room(prosody), "alice", timeout=T)
        other = f"#chan%other@{prosody.component_jid}"
        error = presence_error(alice, other)
        alice.client.send_presence(pto=f"{other}/alice")
        pres = await asyncio.wait_for(error, T)  # RFC 6120 8.3.3.12, which slixmpp does not name
        assert pres.xml.find("{jabber:client}error/{urn:ietf:params:xml:ns:xmpp-stanzas}policy-violation") \
            is not None


async def test_a_nick_taken_on_irc_is_a_conflict_and_the_old_nick_stays(prosody, inspircd, xmpp_user,
                                                                      irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        error = presence_error(alice, jid)
        alice.client.send_presence(pto=f"{jid}/bob")  # XEP-0045 7.6: 409 conflict
        pres = await asyncio.wait_for(error, T)
        assert pres["error"]["condition"] == "conflict" and pres["from"].resource == "bob"
        alice.say(jid, "still alice")
        await bob.wait_for_privmsg("#chan", "still alice", sender="alice", timeout=T)


async def test_the_identd_names_each_connection_by_its_own_ident(prosody, inspircd, xmpp_user, irc_user,
                                                                tmp_path):
    port = free_port()
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    text = portal_config(prosody, inspircd, tmp_path) + f"identd: {{port: {port}, host: 127.0.0.1}}\n"
    async with running_bridge(text) as bridge:
        alice = await xmpp_user("alice")
        await alice.join(room(prosody), "alice", timeout=T)
        joined = await bob.wait_for(lambda l: l.command == "JOIN" and l.nick == "alice", T)
        ident = joined.source.partition("!")[2].partition("@")[0]
        assert "alice" not in ident and "localhost" not in ident  # a hash, not her JID
        transport = next(iter(bridge.adapters[-1].links.values())).client.conn.transport
        here, there = transport.get_extra_info("sockname")[1], transport.get_extra_info("peername")[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"{here} , {there}\r\n".encode())
        reply = await asyncio.wait_for(reader.read(), T)
        assert reply == f"{here} , {there} : USERID : UNIX : {ident}\r\n".encode()
        writer.close()


@pytest.mark.parametrize("inspircd", [{"webirc_password": "gateway-secret"}], indirect=True)
async def test_webirc_gives_each_user_an_address_of_their_own_not_their_jid(prosody, inspircd, xmpp_user,
                                                                           irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    networks = irc_network("ircnet", inspircd, extra=", webirc_password: gateway-secret")
    text = config_text(prosody, tmp_path, networks, "  {}\n") + \
        "portal: {networks: [ircnet], users: [localhost]}\n"
    async with running_bridge(text):
        alice = await xmpp_user("alice")
        await alice.join(room(prosody), "alice", timeout=T)
        carol = await xmpp_user("carol")
        await carol.join(room(prosody), "carol", timeout=T)
        hosts = {}
        for nick in ("alice", "carol"):
            joined = await bob.wait_for(lambda l, nick=nick: l.command == "JOIN" and l.nick == nick, T)
            hosts[nick] = joined.source.rpartition("@")[2]
        assert hosts["alice"] != hosts["carol"]
        assert all(host.startswith("fd") and "localhost" not in host for host in hosts.values())


def mam_query(user, jid: str, rsm: str = "<before/>", queryid: str = "q1"):
    """A MAM query (XEP-0313) to `jid`; returns the iq to send and the results as they come."""
    results: list = []

    def seen(msg):
        result = msg.xml.find("{urn:xmpp:mam:2}result")
        if result is not None and result.get("queryid") == queryid and msg["from"].bare == jid:
            inner = result.find("{urn:xmpp:forward:0}forwarded/{jabber:client}message")
            results.append((result.get("id"), inner.get("from").partition("/")[2],
                            inner.findtext("{jabber:client}body")))
    user.client.register_handler(Callback(f"mam {queryid}", MatchXPath(
        "{jabber:client}message/{urn:xmpp:mam:2}result"), seen))
    iq = user.client.make_iq_set(ito=jid)
    iq.xml.append(ET.fromstring(f"<query xmlns='urn:xmpp:mam:2' queryid='{queryid}'>"
                                "<set xmlns='http://jabber.org/protocol/rsm'>"
                                f"<max>2</max>{rsm}</set></query>"))
    return iq, results


async def test_history_on_join_and_by_mam(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    async with portal_bridge(prosody, inspircd, tmp_path, extra=", history: 50"):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        for n in range(3):
            bob.privmsg("#chan", f"line {n}")
        live = await alice.wait_for_message(jid, "line 2", nick="bob", timeout=T)
        assert live.stanza_id  # the id MAM knows it by
        alice.say(jid, "mine")
        await alice.wait_for_message(jid, "mine", nick="alice", timeout=T)
        phone = await XmppUser.login(prosody, "alice", "alice-password", resource="phone")
        try:
            await phone.join(jid, "alice", history=10, timeout=T)
            replayed = [(m.nick, m.body) for m in phone.messages if m.room == jid and m.delayed]
            assert replayed == [("bob", "line 0"), ("bob", "line 1"), ("bob", "line 2"), ("alice", "mine")]
            subject = [i for i, m in enumerate(phone.messages) if m.subject is not None]
            assert subject and subject[-1] == len(list(phone.messages)) - 1  # the subject comes last
            iq, results = mam_query(phone, jid)
            fin = (await iq.send(timeout=T)).xml.find("{urn:xmpp:mam:2}fin")
            assert [r[1:] for r in results] == [("bob", "line 2"), ("alice", "mine")]  # the last page
            assert fin.get("complete") != "true"
            first = fin.findtext("{http://jabber.org/protocol/rsm}set/{http://jabber.org/protocol/rsm}first")
            assert first == results[0][0] == live.stanza_id
            iq, older = mam_query(phone, jid, f"<before>{first}</before>", "q2")
            fin = (await iq.send(timeout=T)).xml.find("{urn:xmpp:mam:2}fin")
            assert [r[1:] for r in older] == [("bob", "line 0"), ("bob", "line 1")]
            assert fin.get("complete") == "true"
        finally:
            await phone.close()
        carol = await xmpp_user("carol")  # another user's copy is her own: nothing of alice's
        iq, results = mam_query(carol, jid, queryid="q3")
        await iq.send(timeout=T)
        assert results == []


async def configure_persistent(user, jid: str, on: bool) -> None:
    iq = user.client.make_iq_get(ito=jid)
    iq.xml.append(ET.fromstring("<query xmlns='http://jabber.org/protocol/muc#owner'/>"))
    form = (await iq.send(timeout=T)).xml.find("{http://jabber.org/protocol/muc#owner}query/{jabber:x:data}x")
    assert "muc#roomconfig_persistentroom" in {f.get("var") for f in form.iter("{jabber:x:data}field")}
    iq = user.client.make_iq_set(ito=jid)
    iq.xml.append(ET.fromstring(
        "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
        f"<field var='muc#roomconfig_persistentroom'><value>{int(on)}</value></field></x></query>"))
    await iq.send(timeout=T)


async def test_a_persistent_room_stays_on_irc_keeps_history_and_survives_a_restart(
        prosody, inspircd, xmpp_user, irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    jid = room(prosody)
    async with portal_bridge(prosody, inspircd, tmp_path, extra=", history: 50"):
        alice = await xmpp_user("alice")
        await alice.join(jid, "alice", timeout=T)
        await configure_persistent(alice, jid, True)
        await alice.leave(jid, timeout=T)
        bob.privmsg("#chan", "while you were out")
        await asyncio.sleep(1.0)
        assert not bob.lines.matching(lambda l: l.command in ("PART", "QUIT") and l.nick == "alice")
        await alice.join(jid, "alice", history=5, timeout=T)
        assert ("bob", "while you were out") in [(m.nick, m.body) for m in alice.messages if m.delayed]
        await alice.leave(jid, timeout=T)
    await bob.wait_for(lambda l: l.command == "QUIT" and l.nick == "alice", T)
    mark = bob.lines.mark()
    async with portal_bridge(prosody, inspircd, tmp_path, extra=", history: 50"):
        await bob.wait_for(lambda l: l.command == "JOIN" and l.nick == "alice", T, after=mark)  # by itself
        await alice.join(jid, "alice", timeout=T)
        await configure_persistent(alice, jid, False)
        await alice.leave(jid, timeout=T)
        await bob.wait_for(lambda l: l.command == "PART" and l.nick == "alice", T, after=mark)


async def test_roles_and_affiliations_given_from_xmpp_are_irc_modes(prosody, inspircd, xmpp_user, irc_user,
                                                                   tmp_path):
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        ops = room(prosody, "#ops")
        await alice.join(ops, "alice", timeout=T)  # the channel's operator
        bob = await irc_user(inspircd, "bob")
        await bob.join("#ops")
        await alice.presences.wait_for(lambda p: p.room == ops and p.nick == "bob" and p.available, T)

        async def admin(item: str):
            iq = alice.client.make_iq_set(ito=ops)
            iq.xml.append(ET.fromstring(f"<query xmlns='{NS_MUC}#admin'>{item}</query>"))
            await iq.send(timeout=T)
        mark = bob.lines.mark()
        await admin("<item nick='bob' role='moderator'/>")  # no halfops on this network: +o
        line = await bob.wait_for(lambda l: l.command == "MODE" and l.nick == "alice", T, after=mark)
        assert line.params[1:] == ("+o", "bob")
        await alice.presences.wait_for(
            lambda p: p.room == ops and p.nick == "bob" and p.role == "moderator", T)
        mark = bob.lines.mark()
        await admin("<item nick='bob' affiliation='member'/>")
        line = await bob.wait_for(lambda l: l.command == "MODE" and l.nick == "alice", T, after=mark)
        assert line.params[1:] == ("-o+v", "bob", "bob")
        await alice.presences.wait_for(
            lambda p: p.room == ops and p.nick == "bob" and p.role == "participant", T)


async def test_a_private_message_to_nobody_is_answered_with_an_error(prosody, inspircd, xmpp_user, tmp_path):
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        nobody = f"nobody%ircnet@{prosody.component_jid}"
        error = message_error(alice, nobody)
        alice.client.send_message(mto=nobody, mbody="anyone there?", mtype="chat")
        msg = await asyncio.wait_for(error, T)
        assert msg["error"]["condition"] == "item-not-found"
        assert msg["error"]["text"].startswith("ircnet: No such nick")


async def test_the_network_address_takes_commands_and_gives_the_answers(prosody, inspircd, xmpp_user,
                                                                      irc_user, tmp_path):
    await irc_user(inspircd, "bob")
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        server = f"ircnet@{prosody.component_jid}"
        alice.client.send_message(mto=server, mbody="WHOIS bob", mtype="chat")
        answer = await alice.chats.wait_for(lambda m: m.room == server and "bob" in (m.body or ""), T)
        assert "tester" in answer.body  # bob's user name, as WHOIS tells it


async def test_lines_too_old_to_send_after_an_outage_are_told_to_the_user(prosody, inspircd, xmpp_user,
                                                                         tmp_path):
    text = portal_config(prosody, inspircd, tmp_path) + "delivery: {max_age: 1}\n"
    async with running_bridge(text):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        await inspircd.stop()
        alice.say(jid, "into the void")
        await asyncio.sleep(2.5)  # older than max_age before IRC is back
        await inspircd.start()
        told = await alice.wait_for_message(jid, nick="", timeout=60.0)
        assert "1 message from you" in told.body and "dropped" in told.body


async def test_a_message_over_a_full_queue_is_refused_and_none_is_dropped(prosody, inspircd, xmpp_user,
                                                                        irc_user, tmp_path):
    """Flood control holds her lines back; once her queue is full a new message gets an error
    (RFC 6120 resource-constraint, type wait) and no reflection, and every one not refused
    reaches the channel, in order: nothing queued is dropped to make room."""
    bob = await irc_user(inspircd, "bob")
    await bob.join("#chan")
    network = irc_network("ircnet", inspircd, extra=", queue_size: 3").replace(
        "burst: 50, interval: 0.02", "burst: 1, interval: 0.3")
    text = config_text(prosody, tmp_path, network, "  {}\n") + \
        "portal: {networks: [ircnet], users: [localhost]}\n"
    async with running_bridge(text):
        alice = await xmpp_user("alice")
        jid = room(prosody)
        await alice.join(jid, "alice", timeout=T)
        refused = []
        alice.client.add_event_handler("message_error", lambda msg: refused.append(
            (msg["id"], msg["error"]["type"], msg["error"]["condition"], msg["error"]["text"])))
        ids = [alice.send(jid, f"line {i}") for i in range(10)]
        await wait_until(lambda: len(refused) + len(bob.privmsgs("#chan")) >= 10, 60.0)
        await asyncio.sleep(1.0)  # nothing more comes
        said = [line.text for line in bob.privmsgs("#chan")]
        gone = {msg_id for msg_id, *_ in refused}
        assert said == [f"line {i}" for i, msg_id in enumerate(ids) if msg_id not in gone]
        assert refused and all(r[1:3] == ("wait", "resource-constraint") for r in refused)
        assert "not sent" in refused[0][3]
        echoed = {m.id for m in alice.messages if m.room == jid and m.nick == "alice" and m.body}
        assert not echoed & gone


async def test_a_users_connection_asks_for_no_echo_of_its_own_lines(prosody, xmpp_user, tmp_path):
    """echo-message would send each of her lines back to the bridge for nothing: the relay
    alone asks for it (for its lines' msgids)."""
    ircd = await ScriptedIrcd(caps=("message-tags", "echo-message", "server-time")).start()
    text = config_text(prosody, tmp_path, irc_network("ircnet", ircd), "  {}\n") + \
        "portal: {networks: [ircnet], users: [localhost]}\n"
    try:
        async with running_bridge(text):
            alice = await xmpp_user("alice")
            await alice.join(room(prosody), "alice", timeout=T)
            mine = next(client for client in ircd.clients if client.nick == "alice")
            assert mine.lines("CAP REQ") == ["CAP REQ :server-time message-tags"]
    finally:
        await ircd.stop()


async def test_the_network_lists_its_public_channels(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    bob = await irc_user(inspircd, "bob")
    for channel in ("#one", "#two", "#hidden"):
        await bob.join(channel)
    bob.send("MODE", "#hidden", "+s")
    await bob.wait_for(lambda l: l.command == "MODE" and l.target == "#hidden", T)
    async with portal_bridge(prosody, inspircd, tmp_path):
        alice = await xmpp_user("alice")
        alice.client.register_plugin("xep_0030")
        found = await alice.client.plugin["xep_0030"].get_items(jid=f"ircnet@{prosody.component_jid}",
                                                                 timeout=T)
        jids = {item[0] for item in found["disco_items"]["items"]}
        assert {f"#one%ircnet@{prosody.component_jid}", f"#two%ircnet@{prosody.component_jid}"} <= jids
        assert not any(jid.startswith("#hidden") for jid in jids)  # secret: the server does not list it


async def test_the_component_lists_the_portal_channels_in_use_paged(prosody, inspircd, xmpp_user, irc_user,
                                                                    tmp_path):
    bob = await irc_user(inspircd, "bob")
    await bob.join("#hidden")
    bob.send("MODE", "#hidden", "+s")
    await bob.wait_for(lambda l: l.command == "MODE" and l.target == "#hidden", T)
    async with portal_bridge(prosody, inspircd, tmp_path, users="[alice@localhost, carol@localhost]"):
        alice, carol, dave = await xmpp_user("alice"), await xmpp_user("carol"), await xmpp_user("dave")
        for channel in ("#one", "#two", "#three"):
            await alice.join(room(prosody, channel), "alice", timeout=T)
        await carol.join(room(prosody, "#one"), "carol", timeout=T)
        await carol.join(room(prosody, "#hidden"), "carol", timeout=T)
        for user in (alice, carol, dave):
            user.client.register_plugin("xep_0030")
            user.client.register_plugin("xep_0059")

        async def listed(user, per_page: int) -> tuple[list[tuple[str, str]], int]:
            """Every page (XEP-0059 2.2) through slixmpp's RSM iterator."""
            iq = user.client.make_iq_get(ito=prosody.component_jid)
            iq.enable("disco_items")
            found, pages = [], 0
            async for answer in user.client.plugin["xep_0059"].iterate(iq, "disco_items", amount=per_page):
                pages += 1
                found += [(jid, name) for jid, _, name in answer["disco_items"]["items"]]
                assert int(answer["disco_items"]["rsm"]["count"]) == (4 if user is carol else 3)
            return found, pages

        c = prosody.component_jid
        seen, pages = await listed(alice, 2)
        assert sorted(seen) == sorted([(f"#one%ircnet@{c}", "#one on ircnet"), (f"#three%ircnet@{c}", "#three on ircnet"),
                               (f"#two%ircnet@{c}", "#two on ircnet")])  # once each, #hidden not shown
        assert pages == 2
        seen, _ = await listed(carol, 1)
        assert f"#hidden%ircnet@{c}" in dict(seen)  # she is in it
        assert len(seen) == 4
        answer = await dave.client.plugin["xep_0030"].get_items(jid=c, timeout=T)
        assert answer["disco_items"]["items"] == set()  # not a portal user: nothing
        info = await alice.client.plugin["xep_0030"].get_info(jid=c, timeout=T)
        assert "http://jabber.org/protocol/rsm" in info["disco_info"]["features"]


async def configure(user, component: str, **values):
    """Run the `configure` command (XEP-0050) and submit `values` to its form (if any)."""
    for plugin in ("xep_0030", "xep_0004", "xep_0050"):
        user.client.register_plugin(plugin)
    adhoc = user.client.plugin["xep_0050"]
    first = await adhoc.send_command(component, "configure", timeout=T)
    if not values:
        return first, None
    form = user.client.plugin["xep_0004"].make_form("submit")
    for var, (kind, value) in values.items():
        form.add_field(var=var, ftype=kind, value=value)
    second = await adhoc.send_command(component, "configure", action="complete", payload=form,
                                      sessionid=first["command"]["sessionid"], timeout=T)
    return first, second


async def test_a_user_sets_a_sasl_login_and_her_next_connection_logs_in(prosody, xmpp_user, tmp_path):
    """Neither Debian IRC server does SASL without services (InspIRCd's m_sasl only relays
    to one, ngIRCd has none): the scripted ircd, which speaks CAP and SASL PLAIN, stands in."""
    ircd = await ScriptedIrcd(accounts={"alice-account": "sesame"}).start()
    text = config_text(prosody, tmp_path, irc_network("saslnet", ircd), "  {}\n") + \
        f"portal: {{networks: [saslnet], users: [alice@localhost], secret_file: {tmp_path}/portal.key}}\n"
    c = prosody.component_jid
    jid = f"#chan%saslnet@{c}"
    try:
        async with running_bridge(text):
            alice, dave = await xmpp_user("alice"), await xmpp_user("dave")
            items = await _commands(alice, c)
            assert "configure" in items and "status" not in items  # hers, not the admins'
            assert "configure" not in await _commands(dave, c)
            with pytest.raises(IqError) as refused:
                await configure(dave, c)
            assert refused.value.iq["error"]["condition"] == "forbidden"

            first, done = await configure(alice, c, network=("list-single", "saslnet"),
                                          account=("text-single", "alice-account"),
                                          password=("text-private", "sesame"))
            kinds = {var: f["type"] for var, f in first["command"]["form"].get_fields().items()}
            assert kinds["password"] == "text-private"
            assert done["command"]["status"] == "completed"
            assert "alice-account" in done["command"]["notes"][0][1]
            await alice.join(jid, "alice", timeout=T)
            mine = next(client for client in ircd.clients if client.nick == "alice")
            assert mine.account == "alice-account"  # SASL PLAIN with what she gave
            assert b"sesame" not in (tmp_path / "bridge.db").read_bytes()  # sealed in the store
            assert (tmp_path / "portal.key").stat().st_mode & 0o777 == 0o600
            again, _ = await configure(alice, c)
            assert "saslnet: alice-account" in again["command"]["form"]["instructions"]
            assert "sesame" not in str(again)

            # A wrong password: her next connection stops there, and she is told (as biboumi does)
            await alice.leave(jid, timeout=T)
            await wait_until(lambda: mine.closed.is_set(), T, "the first connection to close")
            await configure(alice, c, network=("list-single", "saslnet"), account=("text-single", "alice-account"),
                            password=("text-private", "wrong"))
            error = presence_error(alice, jid)
            alice.client.send_presence(pto=f"{jid}/alice")
            pres = await asyncio.wait_for(error, T)
            assert pres["error"]["condition"] == "not-authorized"
            assert "SASL authentication failed" in pres["error"]["text"]
            told = await alice.chats.wait_for(lambda m: m.room == f"saslnet@{c}", T)
            assert "logging in as alice-account failed" in told.body
            second = ircd.clients[-1]
            await wait_until(lambda: second.closed.is_set(), T, "the failed connection to end")
            assert not second.registered.is_set() and not second.lines("JOIN")

            # Cleared: she connects without a login
            _, cleared = await configure(alice, c, network=("list-single", "saslnet"), clear=("boolean", True))
            assert "forgotten" in cleared["command"]["notes"][0][1]
            await alice.join(jid, "alice", timeout=T)
            third = ircd.clients[-1]
            assert third.account is None and not third.lines("AUTHENTICATE")
    finally:
        await ircd.stop()


async def _commands(user, component: str) -> set[str]:
    user.client.register_plugin("xep_0030")
    items = await user.client.plugin["xep_0030"].get_items(jid=component, node="http://jabber.org/protocol/commands",
                                                           timeout=T)
    return {item[1] for item in items["disco_items"]["items"]}
