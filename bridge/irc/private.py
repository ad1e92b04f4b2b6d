"""Private messages between IRC users and people on other networks (`bridge.core.private`).

In: a PRIVMSG or /me to the relay client, addressed as `Partners.addressed` says
(`alice: text`). With nobody to send it to, the sender gets a NOTICE saying how to write
(at most once a minute; a NOTICE is never answered, RFC 2812 3.3.2), and one the bridge
could not deliver gets a NOTICE saying why.

Out: a `Private` for an IRC user is a PRIVMSG from the relay client in the configured
formats (`<alice> text`), the first of each pair in an hour after a NOTICE naming the
sender's network and room and how to answer. Only nicks in a channel the relay client is in
are written to: a stranger's nick may belong to anyone.

An XMPP user with an IRC connection of their own (`bridge.irc.plumbed`) writes from it
instead, as themselves, and what IRC users write to that connection goes to them
(`received_by`), from the writer's puppet in the MUC where the user last spoke.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from irc.client import Event as IrcEvent

from bridge.core.events import Endpoint, Identity, Message, MessageKind, Private
from bridge.core.private import Due, Partner, Partners, Undeliverable, help_text, hint_text
from bridge.irc.formatting import irc_to_text

if TYPE_CHECKING:
    from bridge.irc.adapter import IrcAdapter

log = structlog.get_logger(__name__)

#: Someone who writes with nobody to write to is told how at most once in this long; the
#: NOTICE naming who writes is sent once per pair in HINT_QUIET.
HELP_QUIET = 60.0
HINT_QUIET = 3600.0


class IrcPrivates:
    def __init__(self, adapter: IrcAdapter) -> None:
        self.adapter = adapter
        self.partners = Partners(adapter.roster.fold)
        self._helped = Due(HELP_QUIET)
        self._hinted = Due(HINT_QUIET)

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
        partner, text = self.partners.addressed(me, text)
        if partner is None:
            self._help(me)
            return
        kind = MessageKind.ACTION if event.type == "action" else MessageKind.PLAIN
        adapter.emit(self._private(me, text, kind, partner.nick, partner.network, partner.address))

    def received_by(self, nick: str, text: str, kind: MessageKind, to: Identity, occupant: str) -> Private:
        """What `nick` wrote to the own connection of XMPP user `to` (`bridge.irc.plumbed`):
        for them, at `occupant` (their occupant JID in the room where they last spoke)."""
        return self._private(nick, text, kind, to.nick, to.network, occupant)

    def _private(self, nick: str, text: str, kind: MessageKind, to_nick: str, to_network: str,
                 to_address: str) -> Private:
        """The `Private` of `nick`'s for someone elsewhere, written where `nick` is."""
        adapter = self.adapter
        rooms = tuple(adapter.rooms[c] for c in adapter.roster.channels_of(nick) if c in adapter.rooms)
        return Private(Endpoint(adapter.network, rooms[0] if rooms else ""), adapter._identity(nick), text,
                       to_nick, to_network, to_address, reply=nick, rooms=rooms, kind=kind)

    def refuse(self, event: Private, why: str) -> None:
        self._notice(event.reply, f"muc-bridge: your message to {event.to_nick} was not delivered: {why}")

    def reach(self, room: str, nick: str) -> str | None:
        channels = self.adapter.roster.channels_of(nick)
        if not channels or (room and self.adapter.roster.fold(room) not in channels) \
                or self.adapter.client.is_me(nick) or self.adapter.users.own(nick):
            return None
        return nick

    async def deliver(self, event: Private) -> None:
        adapter, to = self.adapter, event.to_address
        if self.reach("", to) is None:
            raise Undeliverable(f"{to} is not in any channel muc-bridge is in on IRC network "
                                f"{adapter.network}")
        message = Message(event.endpoint, event.sender, event.text, event.kind)
        own = adapter.users.client_of(event.sender)
        if own is not None:  # from the sender's own connection, as themselves
            client = own.link.client
        else:
            client = adapter.client
            self.partners.talked(to, Partner(event.sender.nick, event.endpoint.network, event.reply))
            if self._hinted.due((adapter.roster.fold(to), event.sender.key)):
                self._notice(to, hint_text(event.sender.nick, event.endpoint.network, event.endpoint.room,
                                           adapter.client.nick))
        client.send(adapter._message_lines(to, message, own), to, str(event.endpoint), event.time)

    def _help(self, nick: str) -> None:
        if self._helped.due(self.adapter.roster.fold(nick)):
            log.info("irc_private_nobody", network=self.adapter.network, nick=nick)
            self._notice(nick, help_text(self.adapter.client.nick))

    def _notice(self, nick: str, text: str) -> None:
        self.adapter.client.send(self.adapter._notice_lines(nick, text), nick, "private")
