"""Operating the bridge from an XMPP client, as its admin and as anyone else, against real
Prosody and InspIRCd: the ad-hoc commands (XEP-0050) and the chat with the component."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families
from slixmpp.exceptions import IqError

from bridge.demo.servers import free_port
from tests.integration.bridge_harness import ROOM, bridge_ready, config_text, irc_network, running_bridge
from tests.servers.silc.server import SilcTestServer
from tests.servers.silc.user import TestUser

CHAN = "#room"
BRIDGE = "bridge.localhost"
NS_COMMANDS = "http://jabber.org/protocol/commands"


@pytest.fixture
async def ops(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    """alice (admin) and dave (not) in the MUC, bob on IRC and speaking (his puppet is in
    the room), erin logged in but in no room; the bridge between."""
    text = config_text(prosody, tmp_path, irc_network("net", inspircd),
                       f"  l:\n    - xmpp: {ROOM}\n    - irc: net/{CHAN}\n") + "admins: [alice@localhost]\n"
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(text) as bridge:
        alice, dave, erin = [await xmpp_user(name) for name in ("alice", "dave", "erin")]
        await alice.join(ROOM, "alice")
        await dave.join(ROOM, "dave")
        await bridge_ready(alice, [bob], CHAN)
        bob.privmsg(CHAN, "hi")
        await alice.wait_for_message(ROOM, "hi", nick="bob")
        for user in (alice, dave, erin):
            for plugin in ("xep_0030", "xep_0004", "xep_0050"):
                user.client.register_plugin(plugin)
        yield bridge, alice, dave, erin, bob


async def command(user, node: str, **values):
    """Run `node`; with `values`, submit them to the form it answers with. Both answers."""
    adhoc = user.client.plugin["xep_0050"]
    first = await adhoc.send_command(BRIDGE, node, timeout=10)
    if not values:
        return first, None
    form = user.client.plugin["xep_0004"].make_form("submit")
    for var, (kind, value) in values.items():
        form.add_field(var=var, ftype=kind, value=value)
    second = await adhoc.send_command(BRIDGE, node, action="complete", payload=form,
                                      sessionid=first["command"]["sessionid"], timeout=10)
    return first, second


def fields(answer) -> dict:
    return {var: field for var, field in answer["command"]["form"].get_fields().items()}


async def test_an_admin_lists_the_commands_and_sees_the_status(ops):
    _, alice, *_ = ops
    items = await alice.client.plugin["xep_0030"].get_items(jid=BRIDGE, node=NS_COMMANDS, timeout=5)
    assert sorted(i[1] for i in items["disco_items"]["items"]) == ["puppets", "reconnect", "reload", "security", "status"]
    info = await alice.client.plugin["xep_0030"].get_info(jid=BRIDGE, timeout=5)
    assert NS_COMMANDS in info["disco_info"]["features"]
    info = await alice.client.plugin["xep_0030"].get_info(jid=BRIDGE, node="status", timeout=5)
    assert ("automation", "command-node") in {i[:2] for i in info["disco_info"]["identities"]}
    assert "jabber:x:data" in info["disco_info"]["features"]
    answer, _ = await command(alice, "status")
    assert answer["command"]["status"] == "completed"
    got = fields(answer)
    assert got["network/net"]["value"].startswith("connected since ")
    assert "no TLS (plain text)" in got["network/net"]["value"]
    assert got["network/xmpp"]["value"].startswith("connected since ")
    assert got["link/l"]["value"] == [
        f"xmpp/{ROOM}: joined, 0 waiting to be delivered, 1 puppets in the room",
        f"net/{CHAN}: joined, 0 waiting to be delivered"]


async def test_an_admin_gets_the_security_report_of_a_link_and_posts_it(ops):
    _, alice, *_ = ops
    form, report = await command(alice, "security", link=("list-single", "l"), post=("boolean", True))
    assert form["command"]["status"] == "executing"
    assert [o["value"] for o in fields(form)["link"].get_options()] == ["l"]
    assert report["command"]["status"] == "completed"
    hops = fields(report)["report"]["value"]
    assert any(h.startswith("- XMPP users to their servers") and "unknown to the bridge" in h for h in hops)
    assert any("XMPP server to the bridge" in h and "loopback" in h for h in hops)
    assert "- IRC net: no TLS (plain text), server 127.0.0.1:%d" % ops[0].config.networks["net"].port in hops
    posted = await alice.wait_for_message(ROOM, nick="bridge")
    assert posted.body.startswith("Security of link l, hop by hop:") and "IRC net: no TLS" in posted.body


async def test_an_admin_reconnects_a_network(ops):
    _, alice, _, _, bob = ops
    mark = bob.lines.mark()
    form, done = await command(alice, "reconnect", network=("list-single", "net"))
    assert [o["value"] for o in fields(form)["network"].get_options()] == ["xmpp", "net"]
    assert done["command"]["notes"] == [("info", "net: reconnecting.")]
    await bob.lines.wait_for(lambda l: l.command == "QUIT" and l.nick == "relay", after=mark)
    await bob.lines.wait_for(lambda l: l.command == "JOIN" and l.nick == "relay", timeout=20, after=mark)


async def test_an_admin_lists_the_puppets_and_removes_one(ops):
    _, alice, _, _, bob = ops
    form, done = await command(alice, "puppets", remove=("list-multi", [f"{ROOM}/bob"]))
    options = fields(form)["remove"].get_options()
    assert [(o["value"], o["label"]) for o in options] == [(f"{ROOM}/bob", f"bob in {ROOM} (bob on net)")]
    assert done["command"]["notes"] == [("info", f"Removed 1: {ROOM}/bob")]
    await alice.presences.wait_for(lambda p: p.room == ROOM and p.nick == "bob" and not p.available)
    bob.privmsg(CHAN, "still here")  # held out: through the bot
    await alice.wait_for_message(ROOM, "<bob> still here", nick="bridge")


async def test_anyone_else_is_refused_and_sees_no_commands(ops):
    _, _, dave, erin, _ = ops
    for user in (dave, erin):
        with pytest.raises(IqError) as refused:
            await command(user, "status")
        assert refused.value.condition == "forbidden"
        assert refused.value.etype == "auth"
        items = await user.client.plugin["xep_0030"].get_items(jid=BRIDGE, node=NS_COMMANDS, timeout=5)
        assert list(items["disco_items"]["items"]) == []


async def ask(user, body: str) -> str:
    mark = user.chats.mark()
    user.client.send_message(mto=BRIDGE, mbody=body, mtype="chat")
    return (await user.chats.wait_for(lambda m: m.room == BRIDGE, after=mark)).body


async def test_the_component_answers_help_and_security_in_a_chat(ops):
    _, alice, dave, erin, _ = ops
    assert "security <room>" in await ask(dave, "help")
    assert "status" not in await ask(dave, "help")
    report = await ask(dave, f"security {ROOM}")
    assert report.startswith("Security of link l, hop by hop:")
    assert "IRC net: no TLS (plain text)" in report and "The bridge itself reads every message" in report
    assert await ask(dave, "security #room") == report  # the IRC side names the same link
    refused = await ask(erin, f"security {ROOM}")  # not in the room
    assert refused.startswith("No linked room") and "IRC" not in refused
    assert await ask(dave, "status") == "status is for the bridge's admins."
    status = await ask(alice, "status")
    assert f"net/{CHAN}: joined" in status and "net (IRC): connected since" in status
    assert (await ask(dave, "frobnicate")).startswith("Unknown command 'frobnicate'.")


# -- metrics and health ------------------------------------------------------------


@pytest.fixture
async def watched(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    """The bridge with its metrics page, alice in the MUC, bob on IRC."""
    port = free_port()
    text = config_text(prosody, tmp_path, irc_network("net", inspircd),
                       f"  l:\n    - xmpp: {ROOM}\n    - irc: net/{CHAN}\n") + \
        f"metrics: {{listen: '127.0.0.1:{port}'}}\n"
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(text):
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob], CHAN)
        yield port, alice, bob


async def get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = answer.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def sample(port: int, name: str, **labels) -> float | None:
    _, page = await get(port, "/metrics")
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


async def until(check, timeout: float = 30.0):
    """Poll `check()` (async) until it returns something true; that value."""
    async with asyncio.timeout(timeout):
        while not (value := await check()):
            await asyncio.sleep(0.2)
    return value


async def test_the_metrics_page_counts_the_messages_relayed(watched):
    port, alice, bob = watched
    for i in range(3):
        alice.say(ROOM, f"to irc {i}")
    for i in range(2):
        bob.privmsg(CHAN, f"to xmpp {i}")
    await bob.wait_for_privmsg(CHAN, "<alice> to irc 2")
    await alice.wait_for_message(ROOM, "to xmpp 1", nick="bob")
    relayed = "muc_bridge_messages_relayed_total"
    assert await until(lambda: _equals(port, 3, relayed, link="l", source="xmpp", target="net"))
    assert await until(lambda: _equals(port, 2, relayed, link="l", source="net", target="xmpp"))
    assert await sample(port, "muc_bridge_relay_latency_seconds_count", target="net") == 3
    assert await sample(port, "muc_bridge_connected", network="net") == 1
    assert await sample(port, "muc_bridge_room_joined", network="xmpp", room=ROOM) == 1
    assert await sample(port, "muc_bridge_puppets", room=ROOM) == 1  # bob's
    assert await sample(port, "muc_bridge_queue_depth", network="net", room=CHAN) == 0
    assert (await get(port, "/nothing"))[0] == 404


async def _equals(port: int, value: float, name: str, **labels) -> bool:
    return await sample(port, name, **labels) == value


async def test_health_is_unready_while_the_irc_server_is_down(watched, inspircd):
    port = watched[0]
    assert await get(port, "/health") == (200, "ready\n")
    await inspircd.stop()
    status, body = await until(lambda: _unready(port))
    assert status == 503 and "net not connected" in body and f"net/{CHAN} not joined" in body
    await inspircd.start()
    assert await until(lambda: _ready(port), timeout=60)
    assert await sample(port, "muc_bridge_reconnects_total", network="net") == 1


async def _unready(port: int):
    answer = await get(port, "/health")
    return answer if answer[0] == 503 else None


async def _ready(port: int) -> bool:
    return await get(port, "/health") == (200, "ready\n")


async def test_the_security_report_of_a_link_with_silc_names_its_session_and_channel_key(
        prosody, xmpp_user, tmp_path):
    async with SilcTestServer() as silc, TestUser("sam", silc.port) as sam:
        await sam.join("hackers")
        networks = (f"  silcnet: {{type: silc, host: 127.0.0.1, port: {silc.port}, nick: relay, "
                    f"key_dir: {tmp_path}/silc-keys}}\n")
        links = f"  l:\n    - xmpp: {ROOM}\n    - silc: silcnet/hackers\n      xmpp_users: connect\n"
        async with running_bridge(config_text(prosody, tmp_path, networks, links)):
            alice = await xmpp_user("alice")
            await alice.join(ROOM, "alice")  # after the bot, who created the room: it sees her JID
            await bridge_ready(alice, [], CHAN)

            async def joined() -> str | None:
                report = await ask(alice, f"security {ROOM}")
                return report if "silcnet/hackers: server-distributed" in report else None
            report = await until(joined)
    hops = report.splitlines()
    session = next(h for h in hops if h.startswith(f"- SILC silcnet (127.0.0.1:{silc.port}): session "))
    assert "hmac-sha" in session and "perfect forward secrecy on" in session
    assert "- SILC silcnet/hackers: server-distributed channel key (" in report
    assert "SILC servers can read it" in report
    assert "so SILC's end-to-end encryption ends at the bridge" in report
    assert "- SILC users to their servers: always encrypted (SILC has no plain connection)" in hops
    own = next(h for h in hops if h.startswith("- SILC silcnet/hackers: XMPP users who speak"))
    assert "appear as SILC clients of their own (their nick), at most 20 at once" in own
    assert "the bridge holds the private keys" in own and "not the JID itself" in own


async def test_xmpp_users_own_connections_are_counted_and_in_the_security_report(
        prosody, inspircd, xmpp_user, irc_user, tmp_path):
    port = free_port()
    text = config_text(prosody, tmp_path, irc_network("net", inspircd, extra=", xmpp_user_clients: 1"),
                       f"  l:\n    - xmpp: {ROOM}\n    - irc: net/{CHAN}\n      xmpp_users: connect\n") + \
        f"metrics: {{listen: '127.0.0.1:{port}'}}\nadmins: [alice@localhost]\n"
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(text):
        alice, carol = await xmpp_user("alice"), await xmpp_user("carol")
        await alice.join(ROOM, "alice")
        await carol.join(ROOM, "carol")
        await bridge_ready(alice, [bob], CHAN)
        alice.say(ROOM, "one")  # her connection is made: the cap is 1
        await bob.wait_for(lambda l: l.command == "JOIN" and l.nick == "alice[x]")
        for n in range(2):  # carol's lines go through the relay
            carol.say(ROOM, f"carol {n}")
            await bob.wait_for_privmsg(CHAN, f"<carol> carol {n}", sender="relay")
        assert await sample(port, "muc_bridge_own_clients", network="net") == 1
        assert await sample(port, "muc_bridge_own_clients_cap", network="net") == 1
        assert await sample(port, "muc_bridge_own_clients_refused_total", network="net") == 2
        assert await sample(port, "muc_bridge_own_clients", network="xmpp") is None

        report = await ask(alice, f"security {ROOM}")
        line = next(h for h in report.splitlines() if h.startswith(f"- IRC net/{CHAN}: "))
        assert "XMPP users who speak appear as IRC connections of their own (their nick with [x])" in line
        assert "at most 1 at once" in line and "a hash of their JID" in line and "not the JID itself" in line
        assert "the bridge's own address" in line and "alice@localhost" not in report
        for plugin in ("xep_0030", "xep_0004", "xep_0050"):
            alice.client.register_plugin(plugin)
        status, _ = await command(alice, "status")
        assert "XMPP users' own connections: 1 of at most 1, 2 lines said by the relay for want of one." \
            in fields(status)["network/net"]["value"]
