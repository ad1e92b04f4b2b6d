"""Private messages between SILC users and people on other networks (`bridge.core.private`).

In: a private message to the relay client (silc-spec 4.5), addressed as
`Partners.addressed` says (`alice: text`), with the channel path's signature marks.
With nobody to send it to, the sender is told how to write (at most once a minute), and
one the bridge could not deliver is answered with why. One under a private message key
(silc-spec 4.6) cannot be read: the sender is told so. Nothing is answered that is itself
a notice or an automatic reply (silc-pp 2.3.2.6 flags), so two relays never talk in a loop.

Out: a `Private` for a SILC user is a private message from the relay client rendered as in
channels (`<alice> text`), the first of each pair in an hour after a notice naming the
sender's network and room and how to answer. Only users in a channel the relay client is
in are written to: a stranger's nick may belong to anyone. What the bridge says itself
goes with the NOTICE and NOREPLY flags: no away message answers it.

An XMPP user with a SILC client of their own (`bridge.silc.users`) writes from it instead,
as themselves, and what SILC users write to that client goes to them (`received_by`), from
the writer's puppet in the MUC where the user last spoke.

A SILC user is remembered by their key (the identity's native id), not by their nick.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from bridge.core.events import Endpoint, Event, Identity, Message, MessageKind, Private
from bridge.core.private import Due, Partner, Partners, Undeliverable, help_text, hint_text
from bridge.silc import events as ev
from bridge.silc.buffer import DecodeError
from bridge.silc.channel import Channel
from bridge.silc.message import MessageFlag
from bridge.silc.session import CommandError, NotConnected, Session
from bridge.silc.text import SIGNATURE_MARKS, clean, decode_text

if TYPE_CHECKING:
    from bridge.silc.adapter import SilcAdapter
    from bridge.silc.client import SilcClient

log = structlog.get_logger(__name__)

#: Someone who writes with nobody to write to (or under a private message key) is told at
#: most once in this long; the notice naming who writes is sent once per pair in HINT_QUIET.
HELP_QUIET = 60.0
HINT_QUIET = 3600.0
#: What the bridge says itself, in private messages.
OWN_FLAGS = MessageFlag.UTF8 | MessageFlag.NOTICE | MessageFlag.NOREPLY
#: Messages never answered by the bridge itself.
UNANSWERED = MessageFlag.NOTICE | MessageFlag.AUTOREPLY | MessageFlag.NOREPLY


class SilcPrivates:
    def __init__(self, adapter: SilcAdapter) -> None:
        self.adapter = adapter
        self.partners = Partners(str)  # keyed by the SILC user's identity's native id
        self._helped = Due(HELP_QUIET)
        self._hinted = Due(HINT_QUIET)

    def received(self, event: ev.PrivateMessage) -> list[Event]:
        """A private message to the relay client."""
        adapter, user = self.adapter, event.user
        text = self._text(event, self._relay())
        if not text:
            return []
        me = adapter._identity(user)
        partner, text = self.partners.addressed(me.native_id, text)
        if partner is None:
            self._help(event, help_text(self._relay()))
            return []
        return [self._private(event, self._joined(), text, partner.nick, partner.network, partner.address)]

    def received_by(self, event: ev.PrivateMessage, client: SilcClient, to: Identity, occupant: str) -> list[Event]:
        """A private message to the own client (`client`) of XMPP user `to`: for them, at
        `occupant` (their occupant JID in the room where they last spoke)."""
        text = self._text(event, to.nick)
        if not text:
            return []
        return [self._private(event, client.joined, text, to.nick, to.network, occupant)]

    def _text(self, event: ev.PrivateMessage, written_to: str) -> str:
        """What a private message says; "" when there is nothing to pass on."""
        if event.keyed:
            self._help(event, "muc-bridge: your message was not delivered: muc-bridge reads no private "
                              f"messages under a private message key; remove the key you set for "
                              f"{written_to} and send it again.")
            return ""
        if event.flags & (MessageFlag.DATA | MessageFlag.PACKET):
            log.info("silc_private_data_skipped", network=self.adapter.network, flags=hex(event.flags))
            return ""
        return decode_text(event.data, event.flags).strip()

    def _private(self, event: ev.PrivateMessage, joined: dict[str, Channel], text: str, to_nick: str,
                 to_network: str, to_address: str) -> Private:
        """The `Private` for someone elsewhere, written where the sender shares `joined` channels."""
        adapter, user = self.adapter, event.user
        rooms = tuple(adapter._rooms[key] for key, channel in joined.items() if user.client_id in channel.members)
        kind = (MessageKind.ACTION if event.flags & MessageFlag.ACTION
                else MessageKind.NOTICE if event.flags & MessageFlag.NOTICE else MessageKind.PLAIN)
        return Private(Endpoint(adapter.network, rooms[0] if rooms else ""), adapter._identity(user),
                       SIGNATURE_MARKS[event.signature] + text, to_nick, to_network, to_address,
                       reply=user.nick, rooms=rooms, kind=kind)

    def refuse(self, event: Private, why: str) -> None:
        session = self._session()
        user = session.user_called(event.reply) if session is not None else None
        if user is None:
            log.info("silc_private_refusal_lost", network=self.adapter.network, nick=event.reply)
            return
        self._say(session, user, f"muc-bridge: your message to {event.to_nick} was not delivered: {why}")

    def reach(self, room: str, nick: str) -> str | None:
        user = self.member(nick, room)
        return user.nick if user is not None else None

    async def deliver(self, event: Private) -> None:
        """From the relay client (`<alice> text`, after a hint the first time), or from the
        sender's own client if they have one (`bridge.silc.users`)."""
        adapter, to = self.adapter, event.to_address
        session = self._session()
        if session is None:
            raise Undeliverable(f"muc-bridge is not connected to SILC network {adapter.network} just now")
        user = self.member(to) or await self._identify(session, to)
        if user is None or adapter.users.own(user):  # IDENTIFY may find an XMPP user's own client
            raise Undeliverable(f"{to} is not in any channel muc-bridge is in on SILC network "
                                f"{adapter.network}")
        user_client = adapter.users.client_of(event.sender)
        own = user_client.client if user_client is not None else None
        person = adapter._identity(user).native_id
        try:
            if own is not None:
                session = own.session
            else:
                self.partners.talked(person, Partner(event.sender.nick, event.endpoint.network, event.reply))
                if self._hinted.due((person, event.sender.key)):
                    self._say(session, user, hint_text(event.sender.nick, event.endpoint.network,
                                                       event.endpoint.room, self._relay()))
            flags, chunks = adapter._chunks(Message(event.endpoint, event.sender, event.text, event.kind),
                                            own=own is not None)
            for chunk in chunks:
                session.send_private_message(user.client_id, chunk, flags)
        except NotConnected as exc:
            raise Undeliverable(f"the connection to SILC network {adapter.network} was lost "
                                f"({exc})") from None

    def member(self, nick: str, room: str = "") -> ev.User | None:
        """The SILC user called `nick` in the joined channel `room` (any joined channel when
        ""); never an XMPP user's own client."""
        session = self._session()
        if session is None:
            return None
        channels = [c for key, c in self._joined().items() if not room or key == room.casefold()]
        return session.user_called(nick, (i for channel in channels for i in channel.members),
                                   skip=self.adapter.users.own)

    async def _identify(self, session: Session, nick: str) -> ev.User | None:
        """Someone not resolved since the relay client joined: by IDENTIFY, the command made
        for sending private messages (silc-commands IDENTIFY), if they are in a joined channel."""
        members = {i for channel in self._joined().values() for i in channel.members}
        try:
            found = [sid.data for sid, _ in await session.identify(nick) if sid.data in members]
            return await session.resolve(found[0]) if found else None
        except (CommandError, NotConnected, DecodeError, asyncio.TimeoutError) as exc:
            log.info("silc_private_identify_failed", network=self.adapter.network, reason=str(exc) or
                     type(exc).__name__)
            return None

    def _help(self, event: ev.PrivateMessage, text: str) -> None:
        """Tell someone how to write, once in HELP_QUIET; never in answer to a notice."""
        session = self._session()
        key = self.adapter._identity(event.user).native_id
        if session is None or event.flags & UNANSWERED or not self._helped.due(key):
            return
        log.info("silc_private_nobody", network=self.adapter.network, nick=event.user.nick,
                 keyed=event.keyed)
        self._say(session, event.user, text)

    def _say(self, session: Session, user: ev.User, text: str) -> None:
        try:
            session.send_private_message(user.client_id, clean(text).encode("utf-8"), OWN_FLAGS)
        except NotConnected as exc:
            log.info("silc_private_notice_lost", network=self.adapter.network, nick=user.nick,
                     reason=str(exc))

    def _session(self) -> Session | None:
        client = self.adapter._client
        return client.session if client is not None and client.connected else None

    def _joined(self) -> dict[str, Channel]:
        client = self.adapter._client
        return client.joined if client is not None else {}

    def _relay(self) -> str:
        session = self._session()
        return session.nick if session is not None and session.nick else self.adapter.config.nick
