"""The bridge's addresses as an XMPP user's client sees them: who exists, what they say
about themselves, and that nothing sent to them vanishes without an answer."""

from __future__ import annotations

import asyncio

import pytest
from slixmpp.exceptions import IqError

from tests.integration.bridge_harness import (ROOM, bridge_ready, config_text, irc_network, running_bridge,
                                             silc_network)
from tests.integration.clients import Inbox
from tests.servers.scripted_ircd import ScriptedIrcd
from tests.servers.silc.server import SilcTestServer
from tests.servers.silc.user import ChannelMessage, TestUser

CHAN = "#room"
BRIDGE = "bridge.localhost"
BOB = f"bob%net@{BRIDGE}"


@pytest.fixture
async def pair(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    """alice in the MUC, bob on IRC and speaking (so his puppet exists), the bridge between."""
    text = config_text(prosody, tmp_path, irc_network("net", inspircd),
                       f"  l:\n    - xmpp: {ROOM}\n    - irc: net/{CHAN}\n")
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(text):
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob], CHAN)
        bob.privmsg(CHAN, "hi")
        await alice.wait_for_message(ROOM, "hi", nick="bob")
        for plugin in ("xep_0030", "xep_0092"):
            alice.client.register_plugin(plugin)
        yield alice, bob


def errors(alice) -> Inbox:
    """The error messages and presences alice's client receives, as (kind, from, condition, text)."""
    inbox: Inbox = Inbox("alice.errors")
    for kind in ("message", "presence"):
        alice.client.add_event_handler(
            f"{kind}_error", lambda stanza, kind=kind: inbox.append(
                (kind, str(stanza["from"]), stanza["error"]["condition"], stanza["error"]["text"],
                 stanza["error"]["type"], stanza["id"])))
    return inbox


def chat(alice, to: str, body: str, msg_id: str) -> None:
    msg = alice.client.make_message(mto=to, mbody=body, mtype="chat")
    msg["id"] = msg_id
    msg.send()


async def test_a_made_up_address_does_not_exist_for_queries_messages_or_presence(pair):
    alice = pair[0]
    seen = errors(alice)
    nobody = f"nobody%net@{BRIDGE}"
    with pytest.raises(IqError) as refused:
        await alice.client.plugin["xep_0030"].get_info(jid=nobody, timeout=5)
    assert refused.value.condition == "item-not-found" and "no such user" in refused.value.text
    with pytest.raises(IqError) as refused:
        await alice.client.plugin["xep_0092"].get_version(nobody, timeout=5)
    assert refused.value.condition == "item-not-found"
    alice.client.send_message(mto=nobody, mbody="anyone there?", mtype="chat")
    alice.client.send_presence(pto=nobody)
    for kind in ("message", "presence"):
        got = await seen.wait_for(lambda e, kind=kind: e[0] == kind)
        assert got[1:5] == (nobody, "item-not-found", got[3], "cancel") and "no such user" in got[3]


async def test_a_puppet_and_the_component_say_who_they_are(pair):
    alice = pair[0]
    disco, version = alice.client.plugin["xep_0030"], alice.client.plugin["xep_0092"]
    info = (await disco.get_info(jid=BOB, timeout=5))["disco_info"]
    assert ("client", "bot", "bob") in {(i[0], i[1], i[3]) for i in info["identities"]}  # (.., lang, name)
    assert "jabber:iq:version" in info["features"]
    about = (await version.get_version(BOB, timeout=5))["software_version"]
    assert about["name"] == "muc-bridge" and about["os"] == "IRC network net"
    about = (await version.get_version(BRIDGE, timeout=5))["software_version"]
    assert about["name"] == "muc-bridge" and about["version"]
    items = await disco.get_items(jid=BOB, timeout=5)
    assert list(items["disco_items"]["items"]) == []
    with pytest.raises(IqError) as refused:  # a namespace nobody here serves (RFC 6120 8.4)
        iq = alice.client.make_iq_get(queryxmlns="urn:example:nothing", ito=BOB)
        await iq.send(timeout=5)
    assert refused.value.condition == "service-unavailable"


async def test_a_puppets_vcard_says_what_whois_says(pair):
    alice, bob = pair
    alice.client.register_plugin("xep_0054")
    bob.send("AWAY", "gone fishing")
    await bob.wait_for(lambda l: l.command == "306")  # RPL_NOWAWAY
    card = (await alice.client.plugin["xep_0054"].get_vcard(BOB, timeout=10))["vcard_temp"]
    assert card["FN"] == "test user bob"  # the real name bob's client registered with
    assert card["NICKNAME"] == ["bob"]
    desc = card["DESC"]
    assert "IRC network net" in desc and "Real name: test user bob" in desc
    assert "Away: gone fishing" in desc
    info = (await alice.client.plugin["xep_0030"].get_info(jid=BOB, timeout=5))["disco_info"]
    assert "vcard-temp" in info["features"]
    card = (await alice.client.plugin["xep_0054"].get_vcard(BRIDGE, timeout=10))["vcard_temp"]
    assert card["FN"] == "muc-bridge" and "IRC" in card["DESC"]


async def test_the_vcard_of_someone_who_left_irc_says_so(pair, inspircd, irc_user):
    alice = pair[0]
    alice.client.register_plugin("xep_0054")
    carol = await irc_user(inspircd, "carol")
    await carol.join(CHAN)
    carol.privmsg(CHAN, "bye all")
    await alice.wait_for_message(ROOM, "bye all", nick="carol")
    await carol.quit()
    await alice.presences.wait_for(lambda p: p.nick == "carol" and not p.available)
    card = (await alice.client.plugin["xep_0054"].get_vcard(f"carol%net@{BRIDGE}", timeout=10))
    assert card["vcard_temp"]["FN"] == "carol"
    assert "Not on net right now" in card["vcard_temp"]["DESC"]


@pytest.mark.timeout(90)
async def test_a_silc_puppets_vcard_shows_the_key_fingerprint(prosody, xmpp_user, tmp_path):
    async with SilcTestServer() as silc:
        networks = silc_network("silcnet", silc, tmp_path)
        links = f"  l:\n    - xmpp: {ROOM}\n    - silc: silcnet/hackers\n"
        async with TestUser("sam", silc.port) as sam:
            await sam.join("hackers")
            alice = await xmpp_user("alice")
            await alice.join(ROOM, "alice")
            async with running_bridge(config_text(prosody, tmp_path, networks, links)):
                await bridge_ready(alice, [], CHAN)
                await sam.wait_for(ChannelMessage, timeout=15, text=lambda t: "end-to-end" in t)
                await sam.say("hackers", "hello from silc")
                await alice.wait_for_message(ROOM, "hello from silc", nick="sam")
                alice.client.register_plugin("xep_0054")
                alice.client.register_plugin("xep_0092")
                jid = f"sam%silcnet@{BRIDGE}"
                card = (await alice.client.plugin["xep_0054"].get_vcard(jid, timeout=10))["vcard_temp"]
                fp = sam.fingerprint.upper()
                shown = " ".join(fp[i:i + 4] for i in range(0, len(fp), 4))
                assert card["FN"] == "sam"
                assert f"Public key fingerprint: {shown}" in card["DESC"]
                assert "SILC network silcnet" in card["DESC"]
                about = (await alice.client.plugin["xep_0092"].get_version(jid, timeout=5))
                assert about["software_version"]["os"] == "SILC network silcnet"


async def test_the_vcard_shows_the_account_whois_gives(prosody, xmpp_user, tmp_path):
    """InspIRCd has no services to log in to: the scripted ircd answers WHOIS with an
    account (RPL_WHOISACCOUNT, 330) instead."""
    ircd = await ScriptedIrcd(caps=("account-tag",)).start()
    text = config_text(prosody, tmp_path, irc_network("net", ircd),
                       f"  l:\n    - xmpp: {ROOM}\n    - irc: net/{CHAN}\n")
    try:
        async with running_bridge(text):
            alice = await xmpp_user("alice")
            await alice.join(ROOM, "alice")
            await bridge_ready(alice, [], CHAN)
            relay = await ircd.client()
            await relay.expect(f"JOIN {CHAN}")
            relay.send(f"@account=bobacct :bob!b@127.0.0.1 PRIVMSG {CHAN} :hi")
            await alice.wait_for_message(ROOM, "hi", nick="bob")
            alice.client.register_plugin("xep_0054")
            asked = asyncio.create_task(alice.client.plugin["xep_0054"].get_vcard(BOB, timeout=10))
            await relay.expect("WHOIS bob")
            relay.reply("311", "bob", "b", "127.0.0.1", "*", "Bob Builder")
            relay.reply("330", "bob", "bobacct", "is logged in as")
            relay.reply("318", "bob", "End of /WHOIS list.")
            card = (await asked)["vcard_temp"]
            assert card["FN"] == "Bob Builder" and "Account: bobacct" in card["DESC"]
            assert "Away" not in card["DESC"]
    finally:
        await ircd.stop()
