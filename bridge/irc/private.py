"""Private messages between IRC users and people on other networks (`bridge.core.private`).

In: a PRIVMSG or /me to the relay client. `name: text` is for `name`: someone the sender
talked to privately before, else whoever has that nick in the rooms linked to the linked
channels the sender is in (a one-word name; a longer one only for someone talked to
before, so `so I think: yes` is not taken for an address). A line without a name goes to
whoever the sender talked to privately last. With nobody to send it to, the sender gets a
NOTICE saying how to write (at most once a minute; a NOTICE is never answered, RFC 2812
3.3.2), and one the bridge could not deliver gets a NOTICE saying why.

Out: a `Private` for an IRC user is a PRIVMSG from the relay client in the configured
formats (`<alice> text`), the first of each pair in an hour after a NOTICE naming the
sender's network and room and how to answer. Only nicks in a channel the relay client is in
are written to: a stranger's nick may belong to anyone.
"""

from __future__ import annotations

import collections
import re
import time
from typing import TYPE_CHECKING

import structlog
from irc.client import Event as IrcEvent

from bridge.core.events import Endpoint, Message, MessageKind, Private
from bridge.core.private import Partner, Partners, Undeliverable
from bridge.irc.formatting import irc_to_text

if TYPE_CHECKING:
    from bridge.irc.adapter import IrcAdapter

log = structlog.get_logger(__name__)

#: `name: text`, the name without colons, up to 64 characters.
_ADDRESSED = re.compile(r"([^:]{1,64}?):\s+(\S.*)", re.DOTALL)
#: Someone who writes with nobody to write to is told how at most once in this long; the
#: NOTICE naming who writes is sent once per pair in HINT_QUIET. This many are remembered.
HELP_QUIET = 60.0
HINT_QUIET = 3600.0
REMEMBERED = 1024


class IrcPrivates:
    def __init__(self, adapter: IrcAdapter) -> None:
        self.adapter = adapter
        self.partners = Partners(adapter.roster.fold)
        self._helped = _Times(HELP_QUIET)
        self._hinted = _Times(HINT_QUIET)

    def received(self, event: IrcEvent) -> None:
        """A PRIVMSG or /me to the relay client."""
        adapter, source = self.adapter, event.source
        if source is None or source.userhost is None or not adapter.client.is_me(event.target) \
                or adapter.client.is_me(source.nick) or not event.arguments:
            return
        text = irc_to_text(event.arguments[0]).strip()
        if not text:
            return
        me = source.nick
        match = _ADDRESSED.fullmatch(text)
        partner = self.partners.find(me, match[1]) if match else None
        if partner is not None:
            text = match[2]
        elif match and " " not in match[1]:
            partner, text = Partner(match[1], "", ""), match[2]
            self.partners.talked(me, partner)
        else:
            partner = self.partners.find(me, None)
        if partner is None:
            self._help(me)
            return
        rooms = tuple(adapter.rooms[c] for c in adapter.roster.channels_of(me) if c in adapter.rooms)
        kind = MessageKind.ACTION if event.type == "action" else MessageKind.PLAIN
        adapter.emit(Private(Endpoint(adapter.network, rooms[0] if rooms else ""),
                             adapter._identity(me), text, partner.nick, partner.network,
                             partner.address, reply=me, rooms=rooms, kind=kind))

    def refuse(self, event: Private, why: str) -> None:
        self._notice(event.reply, f"muc-bridge: your message to {event.to_nick} was not delivered: {why}")

    def reach(self, room: str, nick: str) -> str | None:
        channels = self.adapter.roster.channels_of(nick)
        if not channels or (room and self.adapter.roster.fold(room) not in channels) \
                or self.adapter.client.is_me(nick):
            return None
        return nick

    async def deliver(self, event: Private) -> None:
        adapter, to = self.adapter, event.to_address
        if self.reach("", to) is None:
            raise Undeliverable(f"{to} is not in any channel muc-bridge is in on IRC network "
                                f"{adapter.network}")
        self.partners.talked(to, Partner(event.sender.nick, event.endpoint.network, event.reply))
        if self._hinted.due((adapter.roster.fold(to), event.sender.key)):
            where = f", room {event.endpoint.room}" if event.endpoint.room else ""
            self._notice(to, f"{event.sender.nick} ({event.endpoint.network}{where}) writes to you "
                             f"privately through muc-bridge. To answer: /msg {adapter.client.nick} "
                             f"{event.sender.nick}: your text (a line without a name goes to whoever "
                             "you talked to last).")
        message = Message(event.endpoint, event.sender, event.text, event.kind)
        adapter.client.send(adapter._message_lines(to, message), to, str(event.endpoint), event.time)

    def _help(self, nick: str) -> None:
        if self._helped.due(self.adapter.roster.fold(nick)):
            log.info("irc_private_nobody", network=self.adapter.network, nick=nick)
            self._notice(nick, f"muc-bridge relays private messages: /msg {self.adapter.client.nick} "
                               "alice: your text, to write to alice in a room linked to a channel you "
                               "are in; a line without a name goes to whoever you talked to last.")

    def _notice(self, nick: str, text: str) -> None:
        self.adapter.client.send(self.adapter._notice_lines(nick, text), nick, "private")


class _Times:
    """When each key was last due; due again after `quiet` seconds (bounded memory)."""

    def __init__(self, quiet: float) -> None:
        self.quiet = quiet
        self._last: collections.OrderedDict[object, float] = collections.OrderedDict()

    def due(self, key: object) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.quiet:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        if len(self._last) > REMEMBERED:
            self._last.popitem(last=False)
        return True
