"""WHOIS for contact cards: answers matched by nick, bounded questions and memory."""

import asyncio
from types import SimpleNamespace

from bridge.irc import whois as whois_module
from bridge.irc.whois import CACHE_SIZE, MAX_PENDING, Whois


class FakeClient:
    registered = True

    def __init__(self) -> None:
        self.handlers: dict[str, list] = {}
        self.sent: list[str] = []

    def on(self, name, handler) -> None:
        self.handlers.setdefault(name, []).append(handler)

    def control(self, line: str) -> None:
        self.sent.append(line)

    def reply(self, name: str, *arguments: str) -> None:
        for handler in self.handlers.get(name, ()):
            handler(SimpleNamespace(type=name, arguments=list(arguments), target="relay"))


async def test_the_reply_for_a_nick_gathers_its_numerics_and_is_cached():
    client = FakeClient()
    whois = Whois(client, str.lower)
    asked = asyncio.create_task(whois.ask("Bob"))
    await asyncio.sleep(0)
    assert client.sent == ["WHOIS Bob"]
    client.reply("whoisuser", "bob", "~b", "host", "*", "Bob \x02Builder\x02")
    client.reply("whoisaccount", "bob", "bobacct", "is logged in as")
    client.reply("away", "bob", "lunch")
    client.reply("away")  # an away-notify AWAY of someone else: not part of the answer
    client.reply("endofwhois", "bob", "End of /WHOIS list.")
    reply = await asked
    assert (reply.online, reply.realname, reply.account, reply.away) == \
        (True, "Bob *Builder*", "bobacct", "lunch")
    assert await whois.ask("BOB") is reply and client.sent == ["WHOIS Bob"]


async def test_questions_at_once_are_bounded_and_unanswered_ones_give_up(monkeypatch):
    monkeypatch.setattr(whois_module, "TIMEOUT", 0.05)
    client = FakeClient()
    whois = Whois(client, str.lower)
    asked = [asyncio.create_task(whois.ask(f"nick{n}")) for n in range(MAX_PENDING + 3)]
    assert await asyncio.gather(*asked) == [None] * (MAX_PENDING + 3)
    assert len(client.sent) == MAX_PENDING
    assert not whois._pending  # given up: a later question asks again
    assert await whois.ask("has space") is None and len(client.sent) == MAX_PENDING


async def test_a_nick_that_is_not_there():
    client = FakeClient()
    whois = Whois(client, str.lower)
    asked = asyncio.create_task(whois.ask("ghost"))
    await asyncio.sleep(0)
    client.reply("nosuchnick", "ghost", "No such nick")
    client.reply("endofwhois", "ghost", "End of /WHOIS list.")
    assert (await asked).online is False


async def test_the_cache_keeps_the_newest_answers_only():
    client = FakeClient()
    whois = Whois(client, str.lower)
    for n in range(CACHE_SIZE + 10):
        asked = asyncio.create_task(whois.ask(f"nick{n}"))
        await asyncio.sleep(0)
        client.reply("endofwhois", f"nick{n}", "End of /WHOIS list.")
        await asked
    assert len(whois._cache) == CACHE_SIZE and "nick0" not in whois._cache
