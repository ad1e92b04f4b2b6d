"""The operator's words: who is an admin, what the security report and the chat say, from a
bridge that has not connected anywhere yet."""

from __future__ import annotations

import asyncio
from xml.etree import ElementTree as ET

import pytest

from bridge.app import Bridge
from bridge.config import parse_config
from bridge.core.events import Identity
from bridge.demo.servers import free_port
from bridge.ops import chat, http
from bridge.ops.metrics import Metrics
from bridge.xmpp.commands import CHAT_BURST, Commands
from bridge.ops.control import Admins

CONFIG = """\
component: {jid: bridge.example.org, secret: s3cret-secret}
store: {url: "sqlite://:memory:"}
admins: [ops@example.org, "*@staff.example.org"]
networks:
  libera: {type: irc, host: irc.example.net, port: 6697}
  silcnet: {type: silc, host: silc.example.net, key_dir: KEYS}
links:
  hackers:
    - xmpp: hackers@conference.example.org
    - irc: libera/#hackers
    - silc: silcnet/hackers
      passphrase: sesame
  other:
    - xmpp: other@conference.example.org
    - silc: silcnet/other
"""


@pytest.fixture
def bridge(tmp_path):
    bridge = Bridge(parse_config(CONFIG.replace("KEYS", str(tmp_path / "keys"))))
    yield bridge
    bridge.store.close()


def test_admins_are_bare_jids_or_whole_domains():
    admins = Admins(["ops@example.org", "*@staff.example.org"])
    assert "ops@example.org/laptop" in admins and "OPS@Example.org" in admins
    assert "anyone@staff.example.org/x" in admins
    assert "ops@example.net" not in admins and "staff.example.org" not in admins
    assert "evil@example.org" not in admins and "x@sub.staff.example.org" not in admins


def test_the_security_report_names_every_hop_of_the_link_once(bridge):
    control = bridge.control
    report = control.security(control.link("hackers"))
    assert report == [
        "Security of link hackers, hop by hop:",
        "- XMPP users to their servers (and server to server): unknown to the bridge; "
        "their clients and servers decide",
        "- XMPP server to the bridge (127.0.0.1:5347): not connected",
        "- IRC users to their server: unknown to the bridge; some may connect without TLS",
        "- IRC libera: TLS, certificate verified, server irc.example.net:6697",
        "- SILC users to their servers: always encrypted (SILC has no plain connection)",
        "- SILC silcnet (silc.example.net:706): not connected",
        "- SILC silcnet/hackers: channel private key from a passphrase (the SILC servers cannot read it)",
        "- SILC silcnet: the bridge decrypts channel messages to relay them, so SILC's end-to-end "
        "encryption ends at the bridge",
        "The bridge itself reads every message it relays: whoever runs it can read this conversation.",
    ]
    other = control.security(control.link("other@conference.example.org"))
    assert "- SILC silcnet/other: not joined" in other and not any("hackers" in line for line in other)
    assert control.link("libera/#HACKERS").name == "hackers" and control.link("nowhere") is None


def test_the_chat_tells_the_report_to_occupants_and_status_to_admins_only(bridge):
    control = bridge.control
    room = bridge.adapters[0].rooms["hackers@conference.example.org"]
    room.occupants["dave"] = Identity("xmpp", "dave@example.org", "dave")
    assert chat.answer(control, "dave@example.org/phone", "security hackers@conference.example.org") \
        == "\n".join(control.security(control.link("hackers")))
    refused = chat.answer(control, "dave@example.org/phone", "security other")  # not in that room
    assert refused.startswith("No linked room 'other'")
    assert chat.answer(control, "eve@example.net/x", "security hackers").startswith("No linked room")
    assert chat.answer(control, "ops@example.org/x", "security other").startswith("Security of link other")
    assert chat.answer(control, "dave@example.org/phone", "status") == "status is for the bridge's admins."
    status = chat.answer(control, "x@staff.example.org/y", "STATUS")
    assert "libera (IRC): NOT connected" in status and "libera/#hackers: NOT joined" in status
    assert "status" in chat.answer(control, "ops@example.org", "help")
    assert "status" not in chat.answer(control, "dave@example.org", "help")
    assert "nick%network@bridge.example.org" in chat.answer(control, "dave@example.org", "")


async def test_the_status_pages_answer_get_only_and_drop_a_silent_client(bridge, monkeypatch):
    monkeypatch.setattr(http, "READ_TIMEOUT", 0.3)
    port = free_port()
    server = http.StatusServer(f"127.0.0.1:{port}", Metrics(bridge.control), bridge.control)
    task = asyncio.create_task(server.run())
    try:
        async def ask(request: bytes) -> bytes:
            for _ in range(50):  # until it listens
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            writer.write(request)
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return answer

        health = await ask(b"GET /health HTTP/1.1\r\n\r\n")
        assert health.startswith(b"HTTP/1.0 503 ") and b"not ready: xmpp not connected; libera not " \
            b"connected; silcnet not connected; xmpp/hackers@conference.example.org not joined" in health
        assert (await ask(b"POST /health HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.0 405 ")
        assert b"muc_bridge_connected{network=\"libera\"} 0.0" in await ask(b"GET /metrics HTTP/1.0\r\n\r\n")
        assert await ask(b"GET /health") == b""  # never finished: closed after READ_TIMEOUT
    finally:
        task.cancel()


def test_a_flood_of_chats_gets_a_bounded_number_of_answers(bridge):
    sent: list[str] = []
    commands = Commands(bridge.control, "bridge.example.org", lambda s: sent.append(s) or True)
    chat_ = ET.fromstring("<message xmlns='jabber:component:accept' type='chat' from='x@e.example/r' "
                          "to='bridge.example.org'><body>help</body></message>")
    for _ in range(CHAT_BURST * 5):
        commands.chat(chat_)
    assert len(sent) == CHAT_BURST and commands.unanswered == CHAT_BURST * 4
    assert sent[0].startswith("<message type='chat' to='x@e.example/r' from='bridge.example.org'><body>")
