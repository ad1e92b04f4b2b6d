"""Private messages between XMPP users and people on other networks (`bridge.core.private`).

In: a MUC private message to a puppet's occupant (XEP-0045 7.5), or a chat to a puppet's
JID, becomes a `Private` for the person the puppet speaks for; its `reply` is the sender's
occupant JID or full JID. An encrypted one is refused (the other network cannot read it).
Out: a `Private` from someone elsewhere comes from their puppet: through the room when its
`to_address` is an occupant of a linked room (the puppet joins first if it must), else as
a chat from the puppet's JID.

What cannot be delivered is answered with an error stanza to the message refused (RFC 6120
8.3): `not-acceptable` through a MUC (Prosody kicks an occupant that answers a private
message with `recipient-unavailable`, `item-not-found` or `service-unavailable`;
muc/util.lib.lua), `recipient-unavailable` for a direct chat; with the reason as text.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

import structlog

from bridge.core.events import Endpoint, Identity, MessageKind, Private
from bridge.core.private import Undeliverable
from bridge.xmpp import semantics
from bridge.xmpp.stanza import NS_MUC_USER, attr, bare, child_text, resource, text

if TYPE_CHECKING:
    from bridge.xmpp.adapter import XmppAdapter

log = structlog.get_logger(__name__)

#: Private messages remembered (sender, id -> the address written to) to answer with an error.
RECEIVED = 1024
#: How long a puppet's join may take before its private message is given up.
JOIN_WAIT = 10.0


class Privates:
    def __init__(self, adapter: XmppAdapter) -> None:
        self.adapter = adapter
        self.received: collections.OrderedDict[tuple[str, str], str] = collections.OrderedDict()

    def received_message(self, xml: ET.Element, to: Identity) -> None:
        """A private message to the puppet of `to` (someone on another network)."""
        adapter, sender_jid = self.adapter, xml.get("from", "")
        room = adapter.rooms.get(bare(sender_jid))
        if room is not None:
            nick = resource(sender_jid)
            sender, endpoint = room.occupants.get(nick) or Identity("xmpp", sender_jid, nick), room.endpoint
        else:
            sender = Identity("xmpp", bare(sender_jid), bare(sender_jid).partition("@")[0] or sender_jid)
            endpoint = Endpoint("xmpp", "")
        body = child_text(xml, "body") or ""
        kind, body = (MessageKind.ACTION, body[4:]) if body.startswith("/me ") else (MessageKind.PLAIN, body)
        event = Private(endpoint, sender, body, to.nick, to.network, reply=sender_jid, kind=kind,
                        native_id=xml.get("id"))
        self.received[(sender_jid, xml.get("id", ""))] = xml.get("to", "")
        if len(self.received) > RECEIVED:
            self.received.popitem(last=False)
        encrypted = semantics.read(xml, body).encrypted
        if encrypted:
            self.refuse(event, f"this {encrypted}-encrypted message was not delivered: "
                               f"{adapter.addresses.where(to.network)} cannot read it")
            return
        adapter.emit(event)

    def refuse(self, event: Private, why: str) -> None:
        written_to = self.received.pop((event.reply, event.native_id or ""), None)
        if written_to is None:
            log.info("xmpp_private_refusal_lost", network="xmpp", room=event.endpoint.room)
            return
        via_room = bool(event.endpoint.room)
        xml = ET.Element("message", {"from": event.reply, "to": written_to})
        if event.native_id is not None:
            xml.set("id", event.native_id)
        self.adapter.addresses.error("message", xml, "cancel" if via_room else "wait",
                                     "not-acceptable" if via_room else "recipient-unavailable",
                                     f"muc-bridge: {why}")

    def reach(self, room_jid: str, nick: str) -> str | None:
        rooms = [self.adapter.rooms[room_jid]] if room_jid in self.adapter.rooms else \
            ([] if room_jid else list(self.adapter.rooms.values()))
        for room in rooms:
            if nick in room.occupants and not room.is_own_nick(nick):
                return f"{room.jid}/{nick}"
        return None

    async def deliver(self, event: Private) -> None:
        body = f"/me {event.text}" if event.kind is MessageKind.ACTION else event.text
        room = self.adapter.rooms.get(bare(event.to_address))
        if room is None:  # a direct chat: from the puppet's own JID
            record = self.adapter.store.puppet(event.sender)
            self._send(f"{record.localpart}@{self.adapter.config.jid}/bridge", event.to_address, body, "")
            return
        nick = resource(event.to_address)
        if nick not in room.occupants:
            raise Undeliverable(f"{nick} is not in {room.jid} any more")
        puppet = room.puppet_for(event.sender)
        if puppet is None:
            raise Undeliverable(f"{room.jid} is too busy for one more person from elsewhere just now; "
                                "try again in a minute")
        try:
            async with asyncio.timeout(JOIN_WAIT):
                await puppet.ready.wait()
        except TimeoutError:
            raise Undeliverable(f"{event.sender.nick} could not join {room.jid} to write to {nick}") from None
        puppet.last_active = time.monotonic()
        self._send(puppet.jid, event.to_address, body, f"<x xmlns='{NS_MUC_USER}'/>")

    def _send(self, sender: str, to: str, body: str, extra: str) -> None:
        component = self.adapter.component
        component.send(f"<message type='chat' to={attr(to)} from={attr(sender)} id='{component.new_id()}'>"
                       f"<body>{text(body)}</body>{extra}</message>")
