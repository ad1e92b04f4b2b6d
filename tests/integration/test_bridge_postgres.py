"""The whole bridge on a PostgreSQL store: it relays while its database is away, and what it
wrote meanwhile is in the database once it is back; a message older than the ids it keeps in
memory is still corrected and answered across the link."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bridge.core.events import Endpoint
from bridge.store import postgres
from tests.integration.bridge_harness import ROOM, bridge_ready, config_text, irc_network, running_bridge

CHAN = "#room"
NS_CORRECT, NS_REPLY = "urn:xmpp:message-correct:0", "urn:xmpp:reply:0"


async def test_relaying_goes_on_while_the_database_is_killed(prosody, inspircd, xmpp_user, irc_user,
                                                             tmp_path, own_postgres):
    url = own_postgres.create_database("bridge")
    text = config_text(prosody, tmp_path, irc_network("net", inspircd),
                       f"  l:\n    - xmpp: {ROOM}\n    - irc: net/{CHAN}\n")
    text = text.replace(f'sqlite://{tmp_path}/bridge.db', url)
    bob, carol = await irc_user(inspircd, "bob"), await irc_user(inspircd, "carol")
    await bob.join(CHAN)
    await carol.join(CHAN)
    async with running_bridge(text) as bridge:
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob, carol], CHAN)
        bob.privmsg(CHAN, "before")
        await alice.wait_for_message(ROOM, "before", nick="bob")

        own_postgres.kill()
        alice.say(ROOM, "while it is away")
        await bob.wait_for_privmsg(CHAN, "<alice> while it is away", sender="relay")
        bob.privmsg(CHAN, "still here")
        await alice.wait_for_message(ROOM, "still here", nick="bob")
        carol.privmsg(CHAN, "first words")  # a puppet never seen before
        await alice.wait_for_message(ROOM, "first words", nick="carol")

        for _ in range(100):  # the writer has found it gone (it commits every half second)
            if bridge.store._away:
                break
            await asyncio.sleep(0.1)
        assert bridge.store._away

        own_postgres.start()
        assert await bridge.store.commit(timeout=60.0)
        conn = await asyncpg.connect(url)
        try:
            nicks = {row["nick"] for row in await conn.fetch("SELECT nick FROM puppets")}
            alive = await conn.fetchval("SELECT value FROM cursors WHERE name = 'alive'")
        finally:
            await conn.close()
        assert {"bob", "carol"} <= nicks
        assert alive is not None
        bob.privmsg(CHAN, "after")
        await alice.wait_for_message(ROOM, "after", nick="bob")


@pytest.mark.parametrize("prosody", [{"muc_mam": True}], indirect=True)  # stanza-ids
async def test_an_old_message_is_still_corrected_and_answered_from_irc(prosody, inspircd, xmpp_user,
                                                                       irc_user, tmp_path, postgres_server,
                                                                       monkeypatch):
    monkeypatch.setattr(postgres, "MESSAGE_CACHE", 4)  # a busy day's worth, for the test
    url = postgres_server.create_database("oldids")
    text = config_text(prosody, tmp_path, irc_network("net", inspircd),
                       f"  l:\n    - xmpp: {ROOM}\n    - irc: net/{CHAN}\n")
    text = text.replace(f'sqlite://{tmp_path}/bridge.db', url)
    bob = await irc_user(inspircd, "bob", caps=("message-tags", "echo-message"))
    carol = await irc_user(inspircd, "carol")
    await bob.join(CHAN)
    await carol.join(CHAN)
    async with running_bridge(text) as bridge:
        bridge.ids.memory = 2
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob, carol], CHAN)
        alice.say(ROOM, "is it you?")
        mine = await alice.wait_for_message(ROOM, "is it you?", nick="alice")
        relayed = await bob.wait_for_privmsg(CHAN, "<alice> is it you?", sender="relay")
        bob.privmsg(CHAN, "I like tea very much")
        first = await alice.wait_for_message(ROOM, "I like tea very much", nick="bob")
        for n in range(6):  # carol's lines push both out of memory
            carol.privmsg(CHAN, f"filler {n}")
            await alice.wait_for_message(ROOM, f"filler {n}", nick="carol")
        await asyncio.sleep(0.5)  # the last stanza-ids reach the bridge
        assert bridge.ids.translate("l", Endpoint("net", CHAN), relayed.tags["msgid"],
                                    Endpoint("xmpp", ROOM)) is None  # not in memory: in the database

        mark = alice.messages.mark()
        bob.privmsg(CHAN, "s/tea/coffee/")  # his last line, older than what memory holds
        fixed = await alice.wait_for_message(ROOM, "I like coffee very much", nick="bob", after=mark)
        replace = fixed.child(NS_CORRECT, "replace")
        assert replace is not None and replace.get("id") == first.id  # XEP-0308 3

        mark = alice.messages.mark()
        bob.send_raw(f"@+draft/reply={relayed.tags['msgid']} PRIVMSG {CHAN} :yes it is")
        answer = await alice.wait_for_message(ROOM, nick="bob", after=mark)
        reply = answer.child(NS_REPLY, "reply")
        assert reply is not None and reply.get("id") == mine.stanza_id

