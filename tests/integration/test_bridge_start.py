"""Starting and restarting: one broken network does not stop the others, and a restart
says what the bridge could not hear while it was down."""

from __future__ import annotations

import asyncio

from tests.integration.bridge_harness import ROOM, bridge_ready, config_text, irc_network, running_bridge
from tests.integration.test_bridge_relay import CHAN, link


async def test_a_network_that_cannot_start_is_retried_while_the_others_relay(
        prosody, inspircd, xmpp_user, irc_user, tmp_path, capsys):
    # A damaged key file: the config is valid (check-config reads no keys), SILC fails as it starts.
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "silc.prv.pem").write_text("not a key")
    (keys / "silc.prv.pem").chmod(0o600)
    networks = (irc_network("net", inspircd)
                + f"  silcnet: {{type: silc, host: 127.0.0.1, port: 9, key_dir: {keys}}}\n")
    text = config_text(prosody, tmp_path, networks,
                       link(f"xmpp: {ROOM}", f"irc: net/{CHAN}", "silc: silcnet/chan"))
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    async with running_bridge(text):
        alice = await xmpp_user("alice")
        await alice.join(ROOM, "alice")
        await bridge_ready(alice, [bob], CHAN)
        alice.say(ROOM, "still relayed")
        await bob.wait_for_privmsg(CHAN, "<alice> still relayed")
        bob.privmsg(CHAN, "both ways")
        await alice.wait_for_message(ROOM, "both ways", nick="bob")
    log = capsys.readouterr().out
    assert "adapter_failed" in log and "silcnet" in log and "ValueError" in log


async def test_a_restarted_bridge_says_irc_messages_of_its_downtime_may_be_missing(
        prosody, inspircd, xmpp_user, irc_user, tmp_path):
    text = config_text(prosody, tmp_path, irc_network("net", inspircd),
                       link(f"xmpp: {ROOM}", f"irc: net/{CHAN}"))
    bob = await irc_user(inspircd, "bob")
    await bob.join(CHAN)
    alice = await xmpp_user("alice")
    await alice.join(ROOM, "alice")
    async with running_bridge(text):
        await bridge_ready(alice, [bob], CHAN)
        await asyncio.sleep(0.6)  # one store commit: the bridge was alive until now
    mark = alice.messages.mark()
    bob.privmsg(CHAN, "said while the bridge was down")
    async with running_bridge(text):
        notice = await alice.wait_for_message(
            ROOM, None, nick="bridge", timeout=15, after=mark)
    assert f"messages from net/{CHAN} between" in notice.body and "may be missing" in notice.body
