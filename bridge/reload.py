"""Reloading the config while the bridge runs: SIGHUP and the admins' `reload` command.

The file is read and checked as at start; an invalid one is refused with its problems and
the running config stays. Otherwise `bridge.core.reload.plan` says what changed and it is
applied: rooms of networks that stay connected are joined and left by their adapters,
networks removed are closed (QUIT, within `CLOSE_WITHIN`), networks whose settings changed
are closed and started again with the new ones, new networks start. Everything else keeps
its connection. Keys that need a restart keep their running values, each one named.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from bridge.config import ConfigError, load_config
from bridge.config_types import Config, SilcNetworkConfig
from bridge.core.adapter import Adapter
from bridge.core.reload import Plan, endpoint_options, plan
from bridge.ops import systemd
from bridge.ops.control import Admins

if TYPE_CHECKING:
    from bridge.app import Bridge

log = structlog.get_logger(__name__)

#: How long a network being removed or restarted has to QUIT before it is cut.
CLOSE_WITHIN = 4.0


@dataclass
class Outcome:
    """What a reload did, in words for the operator (no values: they may be secrets)."""

    problems: list[str] = field(default_factory=list)  # refused: why, and nothing changed
    changes: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # keys that need a restart

    @property
    def refused(self) -> bool:
        return bool(self.problems)


class Reloader:
    def __init__(self, bridge: Bridge, path: str | None) -> None:
        self.bridge = bridge
        self.path = path
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task] = set()

    def on_signal(self) -> None:
        """SIGHUP: reload in the background (the outcome is in the log)."""
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def reload(self) -> Outcome:
        if self.path is None:
            return Outcome(["this bridge was not started from a config file: nothing to reload"])
        if self._lock.locked():
            return Outcome(["a reload is being applied: try again in a few seconds"])
        async with self._lock:
            systemd.reloading()
            try:
                return await self._reload(self.path)
            finally:
                systemd.notify(systemd.READY)

    async def _reload(self, path: str) -> Outcome:
        log.info("reload_started", path=path)
        try:  # in a thread: checking a PostgreSQL store connects to it
            new = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload_refused", path=path, line=problem.line, key=problem.path,
                          problem=problem.message)
            return Outcome([f"{path}:{problem}" for problem in exc.problems])
        for problem in new.warnings:
            log.warning("config_warning", path=problem.path, line=problem.line, problem=problem.message)
        steps = plan(self.bridge.config, new)
        await self._apply(steps)
        changes = [line for line in steps.summary() if not any(line.startswith(k + ":") for k in steps.kept)]
        kept = [line for line in steps.summary() if line not in changes]
        for line in changes:
            log.info("reload_change", change=line)
        for key in steps.kept:
            log.warning("reload_needs_restart", key=key)
        return Outcome(changes=changes, kept=kept)

    async def _apply(self, steps: Plan) -> None:
        bridge, config = self.bridge, steps.config
        router, adapters = bridge.router, bridge.router.adapters
        silc_before = {(ep.network, ep.room) for link in bridge.config.links for ep in link.endpoints
                       if _is_silc(bridge.config, ep.network)}
        bridge.config = bridge.control.config = config
        bridge.control.admins = Admins(config.admins)
        for network, room in steps.rooms_removed:
            adapters[network].remove_endpoint(room)
        router.reconfigure(config.links)
        options = {(ep.network, ep.room): endpoint_options(link, ep)
                   for link in config.links for ep in link.endpoints}
        for place in steps.rooms_added:
            adapters[place[0]].add_endpoint(place[1], options[place])
        retired = [self._unregister(name) for name in (*steps.networks_removed, *steps.networks_changed)]
        for name in steps.networks_removed:
            bridge.watch.states.pop(name, None)
        started = [self._register(bridge.network_adapter(config.networks[name]))
                   for name in (*steps.networks_changed, *steps.networks_added)]
        if bridge.metrics is not None:
            bridge.metrics.relink()
        for link in config.links:  # SILC's end-to-end encryption ends at the bridge: say so
            if any(_is_silc(config, ep.network) and (ep.network, ep.room) not in silc_before
                   for ep in link.endpoints):
                bridge.announce_silc(link)
        await asyncio.gather(*(self._retire(adapter) for adapter in retired))
        for adapter in started:  # after the old connection left: it may hold the nick
            bridge.supervise(adapter)

    def _register(self, adapter: Adapter) -> Adapter:
        bridge = self.bridge
        bridge.adapters.append(adapter)
        bridge.router.add_adapter(adapter)
        bridge.xmpp.networks[adapter.network] = adapter
        bridge.watch.adapters[adapter.network] = adapter
        bridge.control.adapters[adapter.network] = adapter
        return adapter

    def _unregister(self, name: str) -> Adapter:
        bridge = self.bridge
        adapter = bridge.router.adapters[name]
        bridge.adapters.remove(adapter)  # its supervisor does not start it again
        bridge.router.remove_adapter(name)
        del bridge.xmpp.networks[name], bridge.control.adapters[name], bridge.watch.adapters[name]
        return adapter

    async def _retire(self, adapter: Adapter) -> None:
        try:
            async with asyncio.timeout(CLOSE_WITHIN):
                await adapter.close()
        except Exception as exc:
            log.warning("adapter_close_failed", network=adapter.network, error=repr(exc))
        await self.bridge.unsupervise(adapter)
        log.info("network_closed", network=adapter.network)


def _is_silc(config: Config, network: str) -> bool:
    return isinstance(config.networks.get(network), SilcNetworkConfig)
