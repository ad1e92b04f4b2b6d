"""What an operator can see and do on the running bridge, in words: status, the security
report of a link, reconnecting a network, the puppets and removing one.

Everything here reads the adapters through their contract (`connected`, `joined`,
`security`) and the router's queues; the XMPP commands and the chat with the component
(`bridge.xmpp.commands`) put it into forms and messages.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import structlog

from bridge.config_types import Config, LinkConfig
from bridge.core.adapter import Adapter
from bridge.core.events import Endpoint
from bridge.core.router import Router
from bridge.ops.watch import Watch

if TYPE_CHECKING:
    from bridge.reload import Outcome
    from bridge.xmpp.adapter import XmppAdapter
    from bridge.xmpp.room import Puppet

log = structlog.get_logger(__name__)

#: The hops the bridge cannot see, as it says them.
CLIENTS_UNKNOWN = {
    "XMPP": "XMPP users to their servers (and server to server): unknown to the bridge; "
            "their clients and servers decide",
    "IRC": "IRC users to their server: unknown to the bridge; some may connect without TLS",
    "SILC": "SILC users to their servers: always encrypted (SILC has no plain connection)",
}
BRIDGE_READS = ("The bridge itself reads every message it relays: whoever runs it can read "
                "this conversation.")


class Admins:
    """Bare JIDs and `*@domain` patterns (lower-cased by the config)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.jids = {p for p in patterns if not p.startswith("*@")}
        self.domains = {p[2:] for p in patterns if p.startswith("*@")}

    def __contains__(self, jid: str) -> bool:
        bare = jid.partition("/")[0].lower()
        return bare in self.jids or bare.rpartition("@")[2] in self.domains and "@" in bare


@dataclass(frozen=True)
class PuppetEntry:
    room: str
    nick: str  # its nick in the room
    network: str
    name: str  # the user's nick on their network


class Control:
    def __init__(self, config: Config, router: Router, adapters: Iterable[Adapter],
                 xmpp: XmppAdapter, watch: Watch) -> None:
        self.config = config
        self.router = router
        self.adapters: dict[str, Adapter] = {a.network: a for a in adapters}
        self.xmpp = xmpp
        self.watch = watch
        self.admins = Admins(config.admins)
        #: Read the config file again and apply it (`bridge.reload`); the bridge sets it.
        self.reload: Callable[[], Awaitable[Outcome]] | None = None

    # -- what is there ---------------------------------------------------

    def link(self, name: str) -> LinkConfig | None:
        """The link called `name`, or the one with the room `name` (a MUC JID, or
        network/room)."""
        wanted = name.strip().lower()
        for link in self.config.links:
            if link.name.lower() == wanted or any(
                    wanted in (ep.room.lower(), f"{ep.network}/{ep.room}".lower()) for ep in link.endpoints):
                return link
        return None

    def networks(self) -> list[str]:
        return list(self.adapters)

    # -- status ----------------------------------------------------------

    def network_status(self, name: str) -> str:
        self.watch.sample()  # up to date, not up to a second old
        state = self.watch.states[name]
        again = f", reconnected {state.reconnects} times" if state.reconnects else ""
        transport = "; ".join(self.adapters[name].security()[:1])
        usage = self.adapters[name].own_clients()
        own = "" if usage is None else (f" XMPP users' own connections: {usage.open} of at most {usage.cap}, "
                                        f"{usage.refused} lines said by the relay for want of one.")
        return f"{'connected' if state.up else 'NOT connected'} since {_when(state.since)}{again}. {transport}{own}"

    def endpoint_status(self, network: str, room: str) -> str:
        adapter = self.adapters[network]
        queue = self.router.queues.get(Endpoint(network, room))
        parts = ["joined" if adapter.in_room(room) else "NOT joined",
                 f"{len(queue.items) if queue else 0} waiting to be delivered"]
        if network == "xmpp" and room in self.xmpp.rooms:
            parts.append(f"{len(self.xmpp.rooms[room].puppets)} puppets in the room")
        return ", ".join(parts)

    def link_status(self, link: LinkConfig) -> list[str]:
        return [f"{ep.network}/{ep.room}: {self.endpoint_status(ep.network, ep.room)}"
                for ep in link.endpoints]

    def status(self) -> list[str]:
        lines = ["Networks:"]
        lines += [f"  {name} ({self.adapters[name].protocol}): {self.network_status(name)}"
                  for name in self.adapters]
        lines.append("Links:")
        for link in self.config.links:
            lines.append(f"  {link.name}:")
            lines += [f"    {line}" for line in self.link_status(link)]
        return lines

    def unready(self) -> list[str]:
        """What keeps the bridge from being ready: networks not connected, rooms not joined."""
        self.watch.sample()
        problems = [f"{name} not connected" for name, a in self.adapters.items() if not a.connected()]
        problems += [f"{ep.network}/{ep.room} not joined" for link in self.config.links
                     for ep in link.endpoints if not self.adapters[ep.network].in_room(ep.room)]
        return problems

    # -- security ----------------------------------------------------------

    def security(self, link: LinkConfig) -> list[str]:
        """Each hop of `link`, and what protects it as far as the bridge knows."""
        lines = [f"Security of link {link.name}, hop by hop:"]
        for ep in link.endpoints:
            adapter = self.adapters[ep.network]
            hops = [CLIENTS_UNKNOWN.get(adapter.protocol, "users to their servers: unknown to the bridge"),
                    *adapter.security(ep.room)]
            lines += [f"- {hop}" for hop in hops if f"- {hop}" not in lines]
        lines.append(BRIDGE_READS)
        return lines

    def may_see(self, jid: str, link: LinkConfig) -> bool:
        """Admins, and occupants of the link's MUC rooms the bridge knows the real JID of."""
        if jid in self.admins:
            return True
        bare = jid.partition("/")[0].lower()
        for ep in link.endpoints:
            room = self.xmpp.rooms.get(ep.room) if ep.network == "xmpp" else None
            if room is not None and any(o.native_id.lower() == bare for o in room.occupants.values()):
                return True
        return False

    def post_security(self, link: LinkConfig) -> None:
        """Say the report in the link's MUC rooms."""
        self.router.announce([Endpoint(ep.network, ep.room) for ep in link.endpoints if ep.network == "xmpp"],
                             "\n".join(self.security(link)))

    # -- actions -----------------------------------------------------------

    def reconnect(self, network: str) -> str:
        adapter = self.adapters.get(network)
        if adapter is None:
            return f"There is no network {network!r}."
        log.info("operator_reconnect", network=network)
        adapter.reconnect()
        return f"{network}: reconnecting."

    def puppets(self) -> list[PuppetEntry]:
        return [PuppetEntry(room.jid, p.nick, p.identity.network, p.identity.nick)
                for room in self.xmpp.rooms.values() for p in room.puppets.values()]

    def kick(self, room_jid: str, nick: str) -> bool:
        """The puppet called `nick` leaves the room and stays out a while (as after a kick:
        its user speaks through the bot meanwhile). False: no such puppet."""
        room = self.xmpp.rooms.get(room_jid)
        puppet: Puppet | None = next((p for p in room.puppets.values() if p.nick == nick), None) if room else None
        if puppet is None:
            return False
        log.info("operator_kick", room=room_jid, puppet=puppet.jid)
        room.kicks.hold(puppet.identity)
        room.leave(puppet, "removed by the bridge's operator")
        return True


def _when(stamp: float) -> str:
    ago = max(0, int(time.time() - stamp))
    text = datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{text} ({ago // 3600}h{ago % 3600 // 60:02d}m ago)"
