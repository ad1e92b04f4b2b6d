"""A room's messages that are more than text, both ways (see `bridge.xmpp.semantics`).

From the room: an encrypted message is never relayed as text; the rest of the link gets
one line saying so and the sender a private message from the bot (XEP-0045 7.5). A
correction, retraction, reaction or reply becomes its event, naming its target by the
id the rest of the link knows it by (`MessageIds`). Towards the room: corrections,
retractions, reactions and replies from other networks come from the puppet that said
the message (or the bot, when it said it for them), when the target is known.
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

import structlog

from bridge.core.events import BRIDGE, Identity, Message, MessageKind, Reaction, Retraction
from bridge.xmpp import semantics
from bridge.xmpp.stanza import NS_MUC_USER, attr, text

if TYPE_CHECKING:
    from bridge.xmpp.room import Room

log = structlog.get_logger(__name__)

#: A sender told about an encrypted message is not told again for this long (nor is
#: the rest of the link, about them).
ENCRYPTED_QUIET = 30.0
#: Recent messages remembered (who said it, how it began) for reply quotes, and the
#: reaction sets per message and person, for turning one reaction into XEP-0444's full set.
RECENT = 1024
QUOTE = 60  # characters of the replied-to message in a reply's fallback quote


class RoomMeaning:
    def __init__(self, room: Room) -> None:
        self.room = room
        self.told: dict[str, float] = {}  # sender key -> when last told of encryption
        self.said: collections.OrderedDict[str, tuple[str, str]] = collections.OrderedDict()
        self.reactions: collections.OrderedDict[tuple[str, tuple[str, str]], tuple[str, ...]] = \
            collections.OrderedDict()

    @property
    def link(self) -> str:
        return self.room.options.get("link", "")

    # -- from the room ---------------------------------------------------

    def relay(self, xml: ET.Element, identity: Identity, body: str, native_id: str | None,
              when: float | None) -> None:
        room, ep = self.room, self.room.endpoint
        meaning = semantics.read(xml, body)
        late = {} if when is None else {"late": True, "time": when}
        if meaning.encrypted:
            self._encrypted(identity, meaning.encrypted)
        elif meaning.retracts:
            room.emit(Retraction(ep, identity, self._canonical(meaning.retracts), **late))
        elif meaning.reacts_to:
            self._reacted(identity, self._canonical(meaning.reacts_to), meaning.reactions, late)
        elif meaning.body:
            kind, text_ = ((MessageKind.ACTION, meaning.body[4:]) if meaning.body.startswith("/me ")
                           else (MessageKind.PLAIN, meaning.body))
            replaces = self._canonical(meaning.replaces) if meaning.replaces else None
            if replaces is None:
                self.remember(xml.get("id"), native_id, identity.nick, text_)
            room.emit(Message(ep, identity, text_, kind, native_id=native_id, replaces=replaces,
                              reply_to=self._canonical(meaning.reply_to) if meaning.reply_to else None,
                              reply_nick=meaning.reply_nick, **late))

    def remember(self, client_id: str | None, native_id: str | None, nick: str, body: str) -> None:
        """A message said in the room (relayed, or sent by us): its names and beginning."""
        if native_id is None:
            return
        if client_id and client_id != native_id:
            self.room.ids.remember(self.link, self.room.endpoint, native_id, self.room.endpoint, client_id)
        self.said[native_id] = (nick, body[:QUOTE])
        if len(self.said) > RECENT:
            self.said.popitem(last=False)

    def learned(self, msg_id: str, stanza_id: str) -> None:
        """Our message `msg_id` is `stanza_id` in the room: replies and reactions name that."""
        ep = self.room.endpoint
        self.room.ids.alias(self.link, ep, msg_id, stanza_id)
        if msg_id in self.said:
            self.said[stanza_id] = self.said[msg_id]

    def _canonical(self, msg_id: str) -> str:
        """The id the rest of the link knows a room message by (whichever name it was given);
        one not in memory stays as it came: the router's read-ahead finds it by that name."""
        ep = self.room.endpoint
        return self.room.ids.translate(self.link, ep, msg_id, ep) or msg_id

    def _encrypted(self, identity: Identity, name: str) -> None:
        now = time.monotonic()
        if now - self.told.get(identity.native_id, -ENCRYPTED_QUIET) < ENCRYPTED_QUIET:
            return
        if len(self.told) > RECENT:
            self.told.clear()
        self.told[identity.native_id] = now
        room = self.room
        room.log.info("muc_encrypted_not_relayed", encryption=name)
        room.emit(Message(room.endpoint, BRIDGE, f"muc-bridge: an encrypted message ({name}) from "
                          f"{identity.nick} could not be relayed", MessageKind.NOTICE))
        self.tell(identity.nick, f"Your {name}-encrypted message was not relayed: the IRC and SILC "
                                 "users linked to this room cannot read it. Send it unencrypted to "
                                 "have it relayed.")

    def tell(self, nick: str, body: str) -> None:
        """A private message from the bot to occupant `nick` (XEP-0045 7.5)."""
        room = self.room
        room.component.send(
            f"<message type='chat' to={attr(room.jid + '/' + nick)} from={attr(room.bot_jid)} "
            f"id='{room.component.new_id()}'><body>{text(body)}</body><x xmlns='{NS_MUC_USER}'/></message>")

    def _reacted(self, identity: Identity, target: str, emojis: tuple[str, ...], late: dict) -> None:
        """XEP-0444 sends the whole set: what was added and what taken back since the last."""
        key = (target, identity.key)
        before = self.reactions.get(key, ())
        self._keep_reactions(key, emojis)
        ep = self.room.endpoint
        for emoji in emojis:
            if emoji not in before:
                self.room.emit(Reaction(ep, identity, target, emoji, **late))
        for emoji in before:
            if emoji not in emojis:
                self.room.emit(Reaction(ep, identity, target, emoji, removed=True, **late))

    def _keep_reactions(self, key: tuple[str, tuple[str, str]], emojis: tuple[str, ...]) -> None:
        self.reactions[key] = emojis
        self.reactions.move_to_end(key)
        if len(self.reactions) > RECENT:
            self.reactions.popitem(last=False)

    # -- towards the room --------------------------------------------------

    def target(self, event: Message | Retraction | Reaction, origin_id: str | None,
               sent: bool = False) -> str | None:
        """The room's id for message `origin_id` of `event`'s endpoint, if it was relayed here
        (the id it was `sent` with, else the room's stanza-id when known)."""
        if origin_id is None:
            return None
        return self.room.ids.translate(self.link, event.endpoint, origin_id, self.room.endpoint, sent)

    def payload(self, event: Message, body: str) -> str:
        """The inside of the stanza that says `event` here: a correction or a reply when
        its target is known, else the text (a correction marked as one)."""
        if event.replaces is not None:
            target = self.target(event, event.replaces, sent=True)
            if target is not None:
                return semantics.correction_stanza(body, target)
            return f"<body>{text('* ' + body)}</body>"
        target = self.target(event, event.reply_to)
        if target is not None:
            nick, start = self.said.get(target, (event.reply_nick or "", ""))
            quote = f"> {nick}: {start}\n" if nick else ""
            return semantics.reply_stanza(body, target, f"{self.room.jid}/{nick}", quote)
        return f"<body>{text(body)}</body>"

    def retraction(self, event: Retraction) -> str | None:
        target = self.target(event, event.target)
        return semantics.retraction_stanza(target) if target is not None else None

    def reaction(self, event: Reaction) -> str | None:
        target = self.target(event, event.target)
        if target is None:
            return None
        key = (target, event.sender.key)
        before = self.reactions.get(key, ())
        now = tuple(e for e in before if e != event.emoji) + (() if event.removed else (event.emoji,))
        self._keep_reactions(key, now)
        return semantics.reactions_stanza(target, now)
