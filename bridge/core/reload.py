"""What a reload changes: the running config against the one just read, as a pure function.

`plan(old, new)` says which networks come and go, which restart with new settings, which
rooms each kept network joins or leaves, and which keys cannot change while the bridge runs
(the component link, the store, the metrics address, logging, delivery, the portal, the identd): those
keep their running values, and the plan names each such key. `bridge.reload` applies it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

from bridge.config_types import Config, EndpointConfig, LinkConfig

#: Sections a running bridge cannot take on: they stay as they were until a restart.
RESTART_ONLY = ("component", "store", "metrics", "log", "delivery", "portal", "identd")

#: (network, room): one endpoint, as the adapters know it.
Place = tuple[str, str]


def endpoint_options(link: LinkConfig, ep: EndpointConfig) -> dict[str, Any]:
    """What an adapter is told about one of its rooms (`Adapter.add_endpoint`)."""
    return {"topic": ep.topic, "puppets": ep.puppets, "passphrase": ep.passphrase, "link": link.name,
            "xmpp_users": ep.xmpp_users}


@dataclass(frozen=True)
class Plan:
    config: Config  # what runs from now on: the new config, less what needs a restart
    networks_added: tuple[str, ...] = ()
    networks_removed: tuple[str, ...] = ()
    networks_changed: tuple[str, ...] = ()  # settings changed: reconnect with the new ones
    #: Rooms of networks that stay connected; a room whose options changed (puppets,
    #: passphrase, link) is in both: it is left and joined again.
    rooms_added: tuple[Place, ...] = ()
    rooms_removed: tuple[Place, ...] = ()
    links_changed: bool = False  # routes (or only topic directions) differ
    admins_changed: bool = False
    kept: tuple[str, ...] = ()  # keys that need a restart, with their running values kept

    @property
    def changes(self) -> bool:
        return bool(self.networks_added or self.networks_removed or self.networks_changed
                    or self.rooms_added or self.rooms_removed or self.links_changed
                    or self.admins_changed)

    def summary(self) -> list[str]:
        """One line per change, for the log and the operator; no values (secrets)."""
        lines = [f"network {name}: added, connecting" for name in self.networks_added]
        lines += [f"network {name}: removed, disconnecting" for name in self.networks_removed]
        lines += [f"network {name}: settings changed, reconnecting" for name in self.networks_changed]
        lines += [f"{net}/{room}: joining" for net, room in self.rooms_added]
        lines += [f"{net}/{room}: leaving" for net, room in self.rooms_removed]
        if self.links_changed and not lines:
            lines.append("links: changed (topic directions)")
        if self.admins_changed:
            lines.append("admins: changed")
        lines += [f"{key}: cannot change while the bridge runs; restart to apply it "
                  "(the running value stays)" for key in self.kept]
        return lines or ["nothing changed"]


def plan(old: Config, new: Config) -> Plan:
    """How to get from the running `old` config to `new`."""
    kept = tuple(key for section in RESTART_ONLY
                 for key in _differences(section, getattr(old, section), getattr(new, section)))
    config = replace(new, **{section: getattr(old, section) for section in RESTART_ONLY
                             if any(k == section or k.startswith(section + ".") for k in kept)})
    added = tuple(name for name in new.networks if name not in old.networks)
    removed = tuple(name for name in old.networks if name not in new.networks)
    changed = tuple(name for name in new.networks
                    if name in old.networks and new.networks[name] != old.networks[name])
    steady = {"xmpp", *(name for name in new.networks if name in old.networks and name not in changed)}
    before, after = _rooms(old.links, steady), _rooms(new.links, steady)
    rooms_removed = tuple(place for place, options in before.items() if after.get(place) != options)
    rooms_added = tuple(place for place, options in after.items() if before.get(place) != options)
    return Plan(config, added, removed, changed, rooms_added, rooms_removed,
                links_changed=old.links != new.links, admins_changed=old.admins != new.admins,
                kept=kept)


def _rooms(links: tuple[LinkConfig, ...], networks: set[str]) -> dict[Place, tuple]:
    """Each room of `networks` with what its adapter is told about it (the topic direction
    is the router's alone: changing it needs no rejoin)."""
    rooms: dict[Place, tuple] = {}
    for link in links:
        for ep in link.endpoints:
            if ep.network in networks:
                options = endpoint_options(link, ep)
                del options["topic"]
                rooms[(ep.network, ep.room)] = tuple(sorted(options.items()))
    return rooms


def _differences(path: str, old: Any, new: Any) -> Iterator[str]:
    """The dotted keys whose values differ (the values themselves are never named)."""
    if old == new:
        return
    if is_dataclass(old) and is_dataclass(new) and type(old) is type(new):
        for f in fields(old):
            yield from _differences(f"{path}.{f.name}", getattr(old, f.name), getattr(new, f.name))
    else:
        yield path
