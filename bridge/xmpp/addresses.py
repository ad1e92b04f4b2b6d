"""The addresses under the component's domain, and what a stanza to each of them gets.

The domain holds the component itself (`bridge.example.org`, also the bot occupant's JID)
and one JID per puppet (`nick%network@bridge.example.org`; the store knows every one ever
made). No other address exists: a message, presence or iq to one gets `item-not-found`
(RFC 6120 8.3.3.7; XEP-0030 section 3.1 for disco), with a text. Puppets are public (they
are occupants of rooms), so saying which exist reveals nothing. What a linked room sends to
an address we do not know is left to the room logic: an error from an occupant's JID can
get it kicked.

A private message to a puppet (a chat to its JID, or a MUC private message to its
occupant) goes to `on_private` (`bridge.xmpp.private`). One to the component itself is a
chat with the bridge (`on_chat`: `bridge.xmpp.commands`); one to the bot's occupant (or to
the component, with nobody to answer) gets an error with a text saying whom to write to
instead (RFC 6120 8.3), never silence. Through a MUC the condition is `feature-not-implemented`: Prosody
kicks an occupant that answers a private message with `service-unavailable` or
`item-not-found` (muc/util.lib.lua, `kickable_error_conditions`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final
from xml.etree import ElementTree as ET

import structlog

from bridge.core.adapter import Adapter
from bridge.core.events import Identity
from bridge.store.base import Store
from bridge.xmpp.stanza import NS_STANZAS, attr, bare, child_text, resource, text

log = structlog.get_logger(__name__)

#: `Addresses.entity` of the component's own JID.
COMPONENT: Final = Identity("bridge", "component", "muc-bridge")


class Addresses:
    def __init__(self, domain: str, store: Store, send: Callable[[str], bool],
                 networks: Mapping[str, Adapter],
                 on_private: Callable[[ET.Element, Identity], None]) -> None:
        """`networks`: the other networks' adapters, by name as configured; `on_private`
        takes a private message to the puppet of an identity."""
        self.domain = domain
        self.store = store
        self.send = send
        self.networks = networks
        self.on_private = on_private
        #: Answers a chat with the component itself (`bridge.xmpp.commands`); None: an error.
        self.on_chat: Callable[[ET.Element], None] | None = None

    def entity(self, jid: str) -> Identity | None:
        """COMPONENT, the foreign identity behind a puppet JID, or None: not served here."""
        node, _, domain = bare(jid).rpartition("@")
        if domain != self.domain:
            return None
        if not node:
            return COMPONENT
        return self.store.identity_for_localpart(node)  # folded as the server routes it

    def answer(self, kind: str, xml: ET.Element, from_room: bool) -> bool:
        """Answer a message or presence that has no receiver here; True if it had none
        (the room logic is not to see it). `from_room`: it came from a linked MUC."""
        to, kind_attr = xml.get("to", ""), xml.get("type")
        if kind_attr == "error":  # never an error for an error (RFC 6120 8.3.1)
            return False
        entity = self.entity(to)
        if entity is None:
            if from_room:
                return False
            if kind == "presence" and kind_attr == "unavailable":
                return True  # the end of a directed presence: nothing to tell
            self.error(kind, xml, "cancel", "item-not-found",
                       f"{bare(to)} does not exist: this bridge has no such user")
            log.info("xmpp_no_such_address", network="xmpp", to=to, stanza=kind)
            return True
        if kind != "message" or not _private(xml, from_room):
            return False
        if entity is not COMPONENT:
            self.on_private(xml, entity)
            return True
        if not from_room and self.on_chat is not None:
            self.on_chat(xml)
            return True
        condition = "feature-not-implemented" if from_room else "service-unavailable"
        self.error(kind, xml, "cancel", condition,
                   "this is muc-bridge's bot, not a person: to write privately to someone on "
                   "another network, write to them (their nick in the room)" if from_room else
                   "muc-bridge is a gateway between chat rooms: write to the people in the rooms "
                   "it links (their addresses are nick%network@" + self.domain + ")")
        log.info("xmpp_private_refused", network="xmpp", to=to, via_room=from_room)
        return True

    def where(self, network: str) -> str:
        """`IRC network libera`: what a puppet's network is, as people say it."""
        adapter = self.networks.get(network)
        return f"{adapter.protocol if adapter is not None else ''} network {network}".strip()

    def error(self, kind: str, xml: ET.Element, error_type: str, condition: str, why: str) -> None:
        """An error stanza in answer to `xml` (RFC 6120 8.3.2): same id, addresses swapped,
        the condition and a text; not the original payload."""
        stanza_id = xml.get("id")
        self.send(f"<{kind} type='error'{'' if stanza_id is None else ' id=' + attr(stanza_id)} "
                  f"to={attr(xml.get('from', ''))} from={attr(xml.get('to', ''))}>"
                  f"<error type='{error_type}'><{condition} xmlns='{NS_STANZAS}'/>"
                  f"<text xmlns='{NS_STANZAS}' xml:lang='en'>{text(why)}</text></error></{kind}>")


def _private(xml: ET.Element, from_room: bool) -> bool:
    """A message someone wrote to one person: chat or normal, with a body (chat states and
    receipts alone need no answer); from a room, only an occupant's (a room's own messages,
    such as mediated invitations, are not private messages)."""
    if xml.get("type", "normal") not in ("chat", "normal") or child_text(xml, "body") is None:
        return False
    return not from_room or bool(resource(xml.get("from", "")))
