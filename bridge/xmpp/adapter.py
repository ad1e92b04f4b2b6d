"""The XMPP side of every link: one component, one Room per linked MUC.

When the stream comes up, the rooms are joined in a steady stream (`component.joins`, a
token bucket: `bridge.core.pacing`) rather than in one write, in config order; a room's puppets
come back with it and count against the same budget; a room something is to be delivered to
goes to the head of the queue. Self-pings are spread over `ping_interval` likewise.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

import structlog

from bridge.config_types import ComponentConfig, PortalConfig
from bridge.core.adapter import Adapter, EventSink
from bridge.core.events import Event, Identity, NickChange, Private
from bridge.core.idmap import MessageIds
from bridge.core.pacing import PacedQueue
from bridge.core.portal import PortalNetworks
from bridge.core.ratelimit import TokenBucket
from bridge.store.base import Store
from bridge.store.sealed import SaslCredentials
from bridge.xmpp.addresses import Addresses
from bridge.xmpp.commands import Commands
from bridge.xmpp.component import Component
from bridge.xmpp.portal import Portal
from bridge.xmpp.portal_commands import PortalCommands
from bridge.xmpp.private import Privates
from bridge.xmpp.queries import Queries
from bridge.xmpp.room import Room
from bridge.xmpp.stanza import bare

if TYPE_CHECKING:
    from bridge.ops.control import Control

log = structlog.get_logger(__name__)


class XmppAdapter(Adapter):
    protocol = "XMPP"

    def __init__(self, config: ComponentConfig, emit: EventSink, store: Store,
                 max_age: float = 300.0, ids: MessageIds | None = None) -> None:
        super().__init__("xmpp", emit)
        self.config = config
        self.store = store
        self.ids = ids if ids is not None else MessageIds(store)  # (an empty one is falsy)
        self.max_age = max_age
        self.rooms: dict[str, Room] = {}
        #: The other networks, by name (the bridge fills it): what puppets are.
        self.networks: dict[str, Adapter] = {}
        self.component = Component(config, self._on_stanza, self._online, self._offline,
                                   setup=lambda stream: self.queries.setup(stream))
        self.privates = Privates(self)
        self.addresses = Addresses(config.jid, store, self.component.send, self.networks,
                                   self.privates.received_message)
        self.queries = Queries(self.addresses, self.networks, self.component.dispatch)
        self.component.outgoing.on_stanza_id = self._stanza_id
        self.portal: Portal | None = None  # portal rooms, when the config opens any
        self.joins = PacedQueue(self._join, TokenBucket(config.joins.burst, config.joins.interval))

    def serve_portal(self, config: PortalConfig, networks: PortalNetworks,
                     credentials: SaslCredentials) -> Portal:
        """Serve portal rooms (`bridge.xmpp.portal`) for the users' connections `networks`,
        and the users' `configure` command for their SASL `credentials`."""
        self.portal = Portal(config, self.config.jid, networks, self.component.send, self.store,
                             lambda jid: jid in self.rooms)
        self.queries.portal_rooms = self.portal.in_use
        self.queries.user_commands = PortalCommands(config, self.config.jid, credentials)
        return self.portal

    def operate(self, control: Control) -> None:
        """Answer admins' commands and the chat with the component (`bridge.ops.control`)."""
        commands = Commands(control, self.config.jid, self.component.send)
        self.queries.commands = commands
        self.addresses.on_chat = commands.chat

    def add_endpoint(self, room: str, options: Mapping[str, Any]) -> None:
        self.rooms[room] = Room(room, dict(options), self.config, self.component, self.store, self.emit,
                                self.ids)
        self.rooms[room].max_age = self.max_age
        self.component.ping_target = room.partition("@")[2]  # the MUC service answers pings
        if self.component.online:  # added by a reload: joined in turn with the others
            self.joins.add(room)

    def remove_endpoint(self, room: str) -> None:
        self.rooms.pop(room).close("unlinked from the bridge")
        if self.rooms:
            self.component.ping_target = next(iter(self.rooms)).partition("@")[2]

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.component.run())
            tasks.create_task(self.joins.run(), name="xmpp joins")
            tasks.create_task(self._housekeeping())

    async def deliver(self, room: str, event: Event) -> None:
        await self.store.prepare(_identities(event))  # puppets in memory before they are needed
        if isinstance(event, Private):
            await self.privates.deliver(event)
        else:
            if room in self.joins:  # not joined yet: it goes next
                self.joins.first(room)
            await self.rooms[room].deliver(event)

    def reach(self, room: str, nick: str) -> str | None:
        return self.privates.reach(room, nick)

    def refuse(self, event: Private, why: str) -> None:
        self.privates.refuse(event, why)

    def is_own(self, identity: Identity) -> bool:
        if identity.network != "xmpp":
            return False
        domain = identity.native_id.partition("@")[2].partition("/")[0]
        if domain == self.config.jid or identity.native_id == self.config.jid:
            return True
        room = self.rooms.get(bare(identity.native_id))
        return room is not None and room.is_own_nick(identity.nick)

    def security(self, room: str | None = None) -> list[str]:
        """The component link: TLS where configured (`tls: true`), else plain XEP-0114 TCP,
        as safe as the path it takes."""
        c = self.config
        where = f"XMPP server to the bridge ({c.server}:{c.port})"
        peer = self.component.peer()
        if peer is None:
            return [f"{where}: not connected"]
        tls = self.component.tls_session()
        if tls is not None:
            verified = (f"certificate verified for {c.certificate_name}" if c.tls_verify
                        else "certificate NOT verified")
            return [f"{where}: TLS {tls.version()} ({tls.cipher()[0]}), {verified}"]
        if ipaddress.ip_address(peer.partition("%")[0]).is_loopback:
            return [f"{where}: loopback, on this machine (plain TCP, no TLS)"]
        return [f"{where}: plain TCP from {peer}, NOT encrypted: keep it on a private network, "
                "or use TLS where the server offers it (component.tls)"]

    def connected(self) -> bool:
        return self.component.online

    def in_room(self, room: str) -> bool:
        return room in self.rooms and self.rooms[room].joined.is_set()

    def reconnect(self) -> None:
        self.component.abort()

    async def close(self) -> None:
        if self.portal is not None:
            self.portal.close()
        for room in self.rooms.values():
            for puppet in list(room.puppets.values()):
                room.leave(puppet, "bridge shutting down")
        await self.component.close()

    # -- connection lifecycle --------------------------------------------

    async def _online(self) -> None:
        self.joins.bucket.reset()
        for jid in self.rooms:
            self.joins.add(jid)
        if self.portal is not None:
            self.portal.online()

    def _join(self, jid: str) -> int:
        """Join one room (with its puppets) if the stream is still up: the presences sent."""
        room = self.rooms[jid]
        if not self.component.online:
            return 0
        room.online()
        return 1 + len(room.puppets)

    def _offline(self) -> None:
        self.joins.clear()
        for room in self.rooms.values():
            room.offline()

    async def _housekeeping(self) -> None:
        """Self-ping every room and let its idle puppets go, once per `ping_interval`, for as
        long as the adapter runs (a failure in one round is logged; the next round comes all
        the same). The rooms take their turns spread over the interval, not all at once:
        500 rooms make 8 pings a second, not 500 in one write every minute."""
        while True:
            rooms = list(self.rooms.values())
            spacing = self.config.ping_interval / (len(rooms) + 1)
            try:
                async with asyncio.TaskGroup() as pings:
                    for room in rooms:
                        await asyncio.sleep(spacing)
                        if self.component.online:
                            room.sweep_idle()
                            pings.create_task(room.self_ping())
                    await asyncio.sleep(spacing)
                    if self.portal is not None and self.component.online:
                        pings.create_task(self.portal.probe(self.component.query))
            except Exception:
                log.exception("xmpp_housekeeping_failed", network="xmpp")

    def _stanza_id(self, msg_id: str, sender: str, stanza_id: str) -> None:
        room = self.rooms.get(bare(sender))
        if room is not None:
            room.meaning.learned(msg_id, stanza_id)

    # -- incoming stanzas --------------------------------------------------

    def _on_stanza(self, kind: str, xml: ET.Element) -> None:
        if kind == "iq" and xml.get("type") in ("result", "error"):
            self.component.resolve(xml)
            return
        if self.portal is not None and self.portal.take(kind, xml):
            return
        if kind == "iq":
            self.queries.handle(xml)
            return
        room = self.rooms.get(bare(xml.get("from", "")))
        if self.addresses.answer(kind, xml, from_room=room is not None):
            return
        if room is not None:
            (room.on_presence if kind == "presence" else room.on_message)(xml, xml.get("to", ""))


def _identities(event: Event) -> list[Identity]:
    """Who may get a puppet from delivering `event`."""
    if isinstance(event, NickChange):
        return [event.sender, event.new_identity]
    return [event.sender]
