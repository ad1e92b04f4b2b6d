"""The whole bridge on a PostgreSQL store: it relays while its database is away, and what it
wrote meanwhile is in the database once it is back."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.integration.bridge_harness import ROOM, bridge_ready, config_text, irc_network, running_bridge

CHAN = "#room"


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
