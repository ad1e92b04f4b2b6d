"""The XMPP side of every link: one component, one Room per linked MUC."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree as ET

import structlog

from bridge import __version__
from bridge.config_types import ComponentConfig
from bridge.core.adapter import Adapter, EventSink
from bridge.core.events import Event, Identity
from bridge.core.idmap import MessageIds
from bridge.store.base import Store
from bridge.xmpp.component import Component
from bridge.xmpp.room import Room
from bridge.xmpp.stanza import (
    NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_STANZAS, NS_VERSION, attr, bare, local,
)

log = structlog.get_logger(__name__)

FEATURES = (NS_DISCO_INFO, NS_DISCO_ITEMS, "http://jabber.org/protocol/muc", NS_PING,
            NS_VERSION, "jid\\20escaping")


class XmppAdapter(Adapter):
    def __init__(self, config: ComponentConfig, emit: EventSink, store: Store,
                 max_age: float = 300.0, ids: MessageIds | None = None) -> None:
        super().__init__("xmpp", emit)
        self.config = config
        self.store = store
        self.ids = ids or MessageIds(store)
        self.max_age = max_age
        self.rooms: dict[str, Room] = {}
        self.component = Component(config, self._on_stanza, self._online, self._offline)
        self.component.outgoing.on_stanza_id = self._stanza_id

    def add_endpoint(self, room: str, options: Mapping[str, Any]) -> None:
        self.rooms[room] = Room(room, dict(options), self.config, self.component, self.store, self.emit,
                                self.ids)
        self.rooms[room].max_age = self.max_age
        self.component.ping_target = room.partition("@")[2]  # the MUC service answers pings

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.component.run())
            tasks.create_task(self._housekeeping())

    async def deliver(self, room: str, event: Event) -> None:
        await self.rooms[room].deliver(event)

    def is_own(self, identity: Identity) -> bool:
        if identity.network != "xmpp":
            return False
        domain = identity.native_id.partition("@")[2].partition("/")[0]
        if domain == self.config.jid or identity.native_id == self.config.jid:
            return True
        room = self.rooms.get(bare(identity.native_id))
        return room is not None and room.is_own_nick(identity.nick)

    def security(self) -> list[str]:
        return [f"xmpp: component link to {self.config.server}:{self.config.port} "
                "(XEP-0114: plain TCP, keep it on loopback or a private network)"]

    async def close(self) -> None:
        for room in self.rooms.values():
            for puppet in list(room.puppets.values()):
                room.leave(puppet, "bridge shutting down")
        await self.component.close()

    # -- connection lifecycle --------------------------------------------

    async def _online(self) -> None:
        for room in self.rooms.values():
            room.online()

    def _offline(self) -> None:
        for room in self.rooms.values():
            room.offline()

    async def _housekeeping(self) -> None:
        """Self-ping every room and let idle puppets go, for as long as the adapter runs
        (a failure in one round is logged; the next round comes all the same)."""
        while True:
            await asyncio.sleep(self.config.ping_interval)
            if not self.component.online:
                continue
            try:
                for room in self.rooms.values():
                    room.sweep_idle()
                await asyncio.gather(*(room.self_ping() for room in self.rooms.values()))
            except Exception:
                log.exception("xmpp_housekeeping_failed", network="xmpp")

    def _stanza_id(self, msg_id: str, sender: str, stanza_id: str) -> None:
        room = self.rooms.get(bare(sender))
        if room is not None:
            room.meaning.learned(msg_id, stanza_id)

    # -- incoming stanzas --------------------------------------------------

    def _on_stanza(self, kind: str, xml: ET.Element) -> None:
        sender = xml.get("from", "")
        to = xml.get("to", "")
        room = self.rooms.get(bare(sender))
        if kind == "iq":
            self._on_iq(xml, sender, to)
        elif room is not None:
            (room.on_presence if kind == "presence" else room.on_message)(xml, to)

    def _on_iq(self, xml: ET.Element, sender: str, to: str) -> None:
        kind = xml.get("type")
        if kind in ("result", "error"):
            self.component.resolve(xml)
            return
        query = xml[0] if len(xml) else None
        ns = query.tag[1:].partition("}")[0] if query is not None else ""
        iq_id = xml.get("id", "")
        head = f"<iq type='result' id={attr(iq_id)} to={attr(sender)} from={attr(to)}>"
        if kind == "get" and ns == NS_DISCO_INFO and local(query.tag) == "query":
            self.component.send(f"{head}{self._disco_info(to)}</iq>")
        elif kind == "get" and ns == NS_DISCO_ITEMS:
            self.component.send(f"{head}<query xmlns='{NS_DISCO_ITEMS}'/></iq>")
        elif kind == "get" and ns == NS_PING:
            self.component.send(f"{head}</iq>")
        elif kind == "get" and ns == NS_VERSION:
            self.component.send(f"{head}<query xmlns='{NS_VERSION}'><name>muc-bridge</name>"
                                f"<version>{__version__}</version></query></iq>")
        else:
            self.component.send(
                f"<iq type='error' id={attr(iq_id)} to={attr(sender)} from={attr(to)}>"
                f"<error type='cancel'><service-unavailable xmlns='{NS_STANZAS}'/></error></iq>")

    def _disco_info(self, to: str) -> str:
        """XEP-0030 identity and features of the component or of a puppet."""
        node = bare(to).partition("@")[0] if "@" in to else ""
        if node:
            identity = self.store.identity_for_localpart(node)
            name = identity.nick if identity else node
            ident = f"<identity category='client' type='bot' name={attr(name)}/>"
        else:
            ident = "<identity category='gateway' type='irc' name='muc-bridge'/>" \
                    "<identity category='component' type='generic' name='muc-bridge'/>"
        features = "".join(f"<feature var={attr(f)}/>" for f in FEATURES)
        return f"<query xmlns='{NS_DISCO_INFO}'>{ident}{features}</query>"
