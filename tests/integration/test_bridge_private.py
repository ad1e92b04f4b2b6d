"""Private messages between an XMPP user (alice, in the MUC) and IRC users (bob, carol),
through real Prosody, InspIRCd and the bridge: what each of them sees, both ways, and the
answer to everything the bridge cannot deliver."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from tests.integration.bridge_harness import ROOM
from tests.integration.test_bridge_addresses import BOB, BRIDGE, CHAN, chat, errors, pair  # noqa: F401

OMEMO = ("<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><iv>AAAA</iv></header>"
         "<payload>AAAA</payload></encrypted>")


def from_relay(bob, after: int, command: str = "PRIVMSG"):
    return lambda: bob.lines.matching(lambda l: l.command == command and l.nick == "relay"
                                      and l.target == "bob", after=after)


async def relay_says(bob, command: str, part: str, after: int):
    return await bob.wait_for(lambda l: l.command == command and l.nick == "relay"
                              and l.target == "bob" and part in l.text, after=after)


async def test_a_muc_private_message_reaches_the_irc_user_and_the_answer_comes_back(pair):
    alice, bob = pair
    mark, room_mark = bob.lines.mark(), alice.messages.mark()
    chat(alice, f"{ROOM}/bob", "psst, bob", "pm-1")
    line = await relay_says(bob, "PRIVMSG", "psst", mark)
    assert line.text == "<alice> psst, bob"
    hint = from_relay(bob, mark, "NOTICE")()
    assert len(hint) == 1 and "alice (xmpp, room " in hint[0].text and "/msg relay alice: " in hint[0].text
    bob.privmsg("relay", "hi alice, only for you")  # a line without a name: to whoever wrote last
    answer = await alice.chats.wait_for(lambda m: m.body == "hi alice, only for you")
    assert (answer.room, answer.nick) == (ROOM, "bob")  # from bob's occupant in the room
    mark = bob.lines.mark()
    chat(alice, f"{ROOM}/bob", "/me waves", "pm-2")
    assert (await relay_says(bob, "PRIVMSG", "waves", mark)).text == "* alice waves"
    assert not from_relay(bob, mark, "NOTICE")()  # the hint comes once an hour per pair
    # nothing of it in the room, on either side
    bob.privmsg(CHAN, "back in the channel")
    await alice.wait_for_message(ROOM, "back in the channel", nick="bob")
    assert not alice.messages.matching(lambda m: m.body and "only for you" in m.body, after=room_mark)
    assert not bob.lines.matching(lambda l: l.target == CHAN and "psst" in l.text)


async def test_a_direct_chat_to_a_puppet_and_the_answer(pair):
    alice, bob = pair
    mark = bob.lines.mark()
    chat(alice, BOB, "straight to you", "direct-1")
    assert (await relay_says(bob, "PRIVMSG", "straight", mark)).text == "<alice> straight to you"
    hint = from_relay(bob, mark, "NOTICE")()
    assert "alice (xmpp) writes to you privately" in hint[0].text
    bob.privmsg("relay", "alice: got it")  # by name this time
    answer = await alice.chats.wait_for(lambda m: m.body == "got it")
    assert answer.room == BOB  # from the puppet's own JID, not through the room


async def test_an_irc_user_writes_first_by_name_and_their_puppet_joins_to_deliver_it(pair, inspircd, irc_user):
    alice, _ = pair
    carol = await irc_user(inspircd, "carol")
    await carol.join(CHAN)
    assert not alice.presences.matching(lambda p: p.nick == "carol")  # no puppet: she never spoke
    carol.privmsg("relay", "alice: a word in private")
    got = await alice.chats.wait_for(lambda m: m.body == "a word in private")
    assert (got.room, got.nick) == (ROOM, "carol")
    assert alice.presences.matching(lambda p: p.nick == "carol" and p.available)


async def test_what_cannot_be_delivered_gets_an_answer_and_nobody_is_kicked(pair, inspircd, irc_user):
    alice, bob = pair
    seen = errors(alice)
    presence_mark = alice.presences.mark()
    mark = bob.lines.mark()
    bob.privmsg("relay", "hello, relay")  # nobody to write to yet: how to write
    notice = await relay_says(bob, "NOTICE", "relays private messages", mark)
    assert "/msg relay alice: your text" in notice.text
    bob.privmsg("relay", "nobody: are you there?")
    notice = await relay_says(bob, "NOTICE", "not delivered", mark)
    assert notice.text == ("muc-bridge: your message to nobody was not delivered: nobody called "
                           f"nobody is in the rooms linked to {CHAN}")
    # dave speaks, so he has a puppet, then leaves IRC: a chat to his puppet is refused
    dave = await irc_user(inspircd, "dave")
    await dave.join(CHAN)
    dave.privmsg(CHAN, "bye all")
    await alice.wait_for_message(ROOM, "bye all", nick="dave")
    await dave.quit("gone")
    await alice.presences.wait_for(lambda p: p.nick == "dave" and not p.available)
    chat(alice, f"dave%net@{BRIDGE}", "still there?", "to-dave")
    got = await seen.wait_for(lambda e: e[5] == "to-dave")
    assert got[2] == "recipient-unavailable" and "nobody called dave" in got[3]
    # an encrypted private message is refused, never relayed as text
    msg = alice.client.make_message(mto=f"{ROOM}/bob", mbody="I sent you an OMEMO encrypted message",
                                    mtype="chat")
    msg["id"] = "secret-1"
    msg.append(ET.fromstring(OMEMO))
    msg.send()
    got = await seen.wait_for(lambda e: e[5] == "secret-1")
    assert got[:3] == ("message", f"{ROOM}/bob", "not-acceptable") and "cannot read it" in got[3]
    # the bot and the component are not people: they say whom to write to
    chat(alice, f"{ROOM}/bridge", "hello bot", "pm-bot")
    got = await seen.wait_for(lambda e: e[5] == "pm-bot")
    assert got[:3] == ("message", f"{ROOM}/bridge", "feature-not-implemented") and "not a person" in got[3]
    chat(alice, BRIDGE, "hello gateway", "to-gateway")  # the component answers a chat
    got = await alice.chats.wait_for(lambda m: m.room == BRIDGE)
    assert got.body.startswith("Unknown command 'hello'") and "nick%network@bridge.localhost" in got.body
    bob.privmsg(CHAN, "still here")
    await alice.wait_for_message(ROOM, "still here", nick="bob")
    assert not bob.lines.matching(lambda l: "OMEMO" in l.text or "still there" in l.text)
    assert not alice.presences.matching(lambda p: p.nick in ("bob", "bridge") and not p.available,
                                        after=presence_mark)


async def test_a_flood_of_private_messages_is_paced_and_the_rest_refused(pair):
    alice, bob = pair
    count = 14
    seen = errors(alice)
    mark = bob.lines.mark()
    for n in range(count):
        chat(alice, f"{ROOM}/bob", f"number {n}", f"flood-{n}")
    refused = [await seen.wait_for(lambda e, n=n: e[5] == f"flood-{n}") for n in range(10, count)]
    assert all(e[2] == "not-acceptable" and "too many private messages" in e[3] for e in refused)
    await relay_says(bob, "PRIVMSG", "number 9", mark)
    got = [l.text for l in from_relay(bob, mark)()]
    assert got == [f"<alice> number {n}" for n in range(10)]
