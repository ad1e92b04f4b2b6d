"""The test servers and test clients work: people talk through real Prosody, InspIRCd, ngIRCd."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from bridge.demo.servers import InspIRCd, ServerMissing
from tests.integration.clients import IrcUser, XmppUser, wait_until


async def test_two_xmpp_users_talk_in_a_muc_room(xmpp_user):
    alice = await xmpp_user("alice")
    bob = await xmpp_user("bob")
    await alice.join("lobby", "Alice")
    await bob.join("lobby", "Bob")
    assert {"Alice", "Bob"} <= alice.occupants("lobby")

    alice.say("lobby", "hello bob")
    alice.me("lobby", "waves")
    bob.set_subject("lobby", "today: tests")

    heard = await bob.wait_for_message("lobby", "hello bob")
    assert heard.nick == "Alice" and not heard.delayed
    action = await bob.messages.wait_for(lambda m: m.is_action)
    assert action.body == "/me waves"
    changed = await alice.wait_for_subject("lobby", "today: tests")
    assert changed.nick == "Bob" and changed.body is None

    await bob.change_nick("lobby", "Robert")
    await alice.presences.wait_for(lambda p: p.nick == "Bob" and p.new_nick == "Robert")
    await bob.leave("lobby")
    await alice.presences.wait_for(lambda p: p.nick == "Robert" and not p.available)
    assert alice.occupants("lobby") == {"Alice"}


async def test_a_new_occupant_gets_history_only_when_asked(xmpp_user):
    alice = await xmpp_user("alice")
    await alice.join("history", "alice")
    alice.say("history", "said before you came")
    await alice.wait_for_message("history", "said before you came")
    bob = await xmpp_user("bob")
    await bob.join("history", "bob", history=5)
    old = await bob.messages.wait_for(lambda m: m.body == "said before you came")
    assert old.delayed
    with pytest.raises(AssertionError):  # history is not a live message
        await bob.wait_for_message("history", "said before you came", timeout=0.3)


async def test_the_component_port_accepts_the_component_secret(prosody):
    """XEP-0114 §3: handshake = hex SHA-1 of stream id + secret."""
    reader, writer = await asyncio.open_connection(prosody.host, prosody.component_port)
    try:
        writer.write(f"<stream:stream xmlns='jabber:component:accept' "
                     f"xmlns:stream='http://etherx.jabber.org/streams' "
                     f"to='{prosody.component_jid}'>".encode())
        header = (await asyncio.wait_for(reader.read(4096), 5)).decode()
        stream_id = re.search(r"id=['\"]([^'\"]+)", header).group(1)
        digest = hashlib.sha1((stream_id + prosody.component_secret).encode()).hexdigest()
        writer.write(f"<handshake>{digest}</handshake>".encode())
        reply = await asyncio.wait_for(reader.read(4096), 5)
        assert reply.strip() == b"<handshake/>"
    finally:
        writer.close()


async def test_prosody_restart_keeps_accounts_and_ports(prosody, xmpp_user):
    alice = await xmpp_user("alice")
    await alice.join("lobby", "alice")
    ports = (prosody.c2s_port, prosody.component_port)

    await prosody.kill()
    with pytest.raises(AssertionError, match="closed"):
        await alice.messages.wait_for(lambda m: m.body == "never sent")
    await prosody.start()
    assert (prosody.c2s_port, prosody.component_port) == ports

    await alice.connect()  # same account, same password; rejoins the room
    bob = await xmpp_user("bob")
    await bob.join("lobby", "bob")
    alice.say("lobby", "back again")
    await bob.wait_for_message("lobby", "back again", nick="alice")

    await prosody.stop()
    await prosody.start()
    again = await XmppUser.login(prosody, "bob", "bob-password")  # after a clean stop too
    await again.close()
    with pytest.raises(AssertionError, match="authentication failed"):
        await XmppUser.login(prosody, "bob", "not-bob-password")


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_two_irc_users_talk_on_inspircd(inspircd, irc_user, tls):
    # Concurrently: InspIRCd completes registrations once a second, all at once.
    alice, bob = await asyncio.gather(
        irc_user(inspircd, "alice", tls=tls),
        irc_user(inspircd, "bob", tls=tls, caps=("message-tags", "server-time")))
    assert bob.acked_caps == {"message-tags", "server-time"}
    await alice.join("#lobby")
    await bob.join("#lobby")

    alice.privmsg("#lobby", "hello bob")
    alice.action("#lobby", "waves")
    heard = await bob.wait_for_privmsg("#lobby", "hello bob", sender="alice")
    assert "time" in heard.tags and "msgid" in heard.tags
    assert (await bob.wait_for(lambda l: l.action is not None)).action == "waves"

    await alice.set_topic("#lobby", "today: tests")
    assert (await bob.wait_for(lambda l: l.command == "TOPIC")).text == "today: tests"
    await alice.change_nick("alicia")
    await bob.wait_for(lambda l: l.command == "NICK" and l.nick == "alice" and l.text == "alicia")
    await alice.part("#lobby", "lunch")
    await bob.wait_for(lambda l: l.command == "PART" and l.nick == "alicia")
    await bob.quit("done")
    assert bob.lines.closed


async def test_inspircd_lifts_flood_limits_for_tests(inspircd, irc_user):
    alice, bob = await asyncio.gather(irc_user(inspircd, "alice"), irc_user(inspircd, "bob"))
    await alice.join("#flood")
    await bob.join("#flood")
    for n in range(100):
        alice.privmsg("#flood", f"line {n}")
    await bob.wait_for_privmsg("#flood", "line 99")
    assert [line.text for line in bob.privmsgs("#flood")] == [f"line {n}" for n in range(100)]


@pytest.mark.parametrize("inspircd", [{"password": "letmein"}], indirect=True)
async def test_inspircd_server_password(inspircd, irc_user):
    welcome, refused = await asyncio.gather(
        irc_user(inspircd, "alice", password="letmein"),
        irc_user(inspircd, "mallory", password="guess"), return_exceptions=True)
    assert isinstance(welcome, IrcUser)
    assert isinstance(refused, AssertionError) and "refused" in str(refused)


async def test_two_irc_users_talk_on_ngircd(ngircd, irc_user):
    alice = await irc_user(ngircd, "alice")
    bob = await irc_user(ngircd, "bob")
    await alice.join("#lobby")
    await bob.join("#lobby")
    alice.privmsg("#lobby", "hello from a classic server")
    await bob.wait_for_privmsg("#lobby", "hello from a classic server", sender="alice")
    await bob.quit("done")
    await alice.wait_for(lambda l: l.command == "QUIT" and l.nick == "bob")


async def test_a_missing_server_names_its_debian_package(tmp_path):
    class Missing(InspIRCd):
        binary = "inspircd-not-installed-here"

    with pytest.raises(ServerMissing, match=r"apt-get install -y inspircd"):
        await Missing(tmp_path).start()



async def test_the_demo_links_a_room_and_a_channel_and_cleans_up(capsys, monkeypatch):
    """`muc-bridge demo`: what it prints is enough to connect; messages cross both ways;
    stopping it stops the servers and removes its files."""
    from bridge.demo.run import run_demo

    # The demo sets up process-wide logging on the stderr of the moment, which here is
    # pytest's capture of this one test: later tests would log into a closed file.
    monkeypatch.setattr("bridge.log.setup_logging", lambda *args, **kwargs: None)

    demo = asyncio.create_task(run_demo())
    printed = ""

    def instructions_printed() -> bool:
        nonlocal printed
        printed += capsys.readouterr().out
        return "removed when the demo stops" in printed or demo.done()

    try:
        await wait_until(instructions_printed, 15, "the demo's instructions")
        assert not demo.done(), printed

        def field(pattern: str) -> str:
            return re.search(pattern, printed, re.MULTILINE).group(1)

        prosody = SimpleNamespace(host="127.0.0.1", domain="localhost",
                                  c2s_port=int(field(r"port (\d+)\s+\(STARTTLS")))
        ircd = SimpleNamespace(host="127.0.0.1", port=int(field(r"port (\d+)\s+\(plain\)")))
        room, channel = field(r"^\s+room\s+(\S+)$"), field(r"^\s+channel\s+(\S+)$")
        workdir = Path(field(r"Config, logs and data: (\S+)"))

        alice = await XmppUser.login(prosody, field(r"^\s+account\s+(\w+)@localhost$"),
                                     field(r"^\s+password\s+(\S+)$"))
        bob = await IrcUser.connect(ircd, "bob")
        await alice.join(room, "alice")
        await bob.join(channel)
        await wait_until(lambda: "bridge" in alice.occupants(room), 10, "the bridge's bot")
        await bob.wait_for(lambda l: l.command in ("JOIN", "353") and "xbridge" in l.raw, 10)

        alice.say(room, "hello from xmpp")
        line = await bob.wait_for_privmsg(channel, sender="xbridge", timeout=10)
        assert line.text == "<alice> hello from xmpp"
        bob.privmsg(channel, "hello from irc")
        heard = await alice.wait_for_message(room, "hello from irc", timeout=10)
        assert heard.nick == "bob"
        await alice.close()
        await bob.close()
    finally:
        demo.cancel()
        await asyncio.gather(demo, return_exceptions=True)
    assert not workdir.exists()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", ircd.port)
