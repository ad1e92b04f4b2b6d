"""The running bridge: store, router and one adapter per network."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import structlog

from bridge.config_types import Config, IrcNetworkConfig, LinkConfig, SilcNetworkConfig
from bridge.core.adapter import Adapter
from bridge.core.backoff import Backoff
from bridge.core.events import Endpoint
from bridge.core.idmap import MessageIds
from bridge.core.notices import gap_text
from bridge.core.router import Router
from bridge.irc.adapter import IrcAdapter
from bridge.irc.identd import Identd
from bridge.ops.control import Control
from bridge.ops.http import StatusServer
from bridge.ops import systemd
from bridge.ops.metrics import Metrics
from bridge.ops.watch import Watch
from bridge.irc.users import IrcUsers
from bridge.reload import Reloader
from bridge.silc.adapter import SilcAdapter
from bridge.store import open_store
from bridge.store.base import Store
from bridge.store.sealed import SaslCredentials
from bridge.xmpp.adapter import XmppAdapter
from bridge.xmpp.component import HandshakeRefused

log = structlog.get_logger(__name__)

#: How often pending store writes are committed (the most a crash can lose).
COMMIT_INTERVAL = 0.5
#: How often message-id mappings older than the store keeps them are deleted.
PRUNE_INTERVAL = 3600.0
#: An adapter that ran this long before failing starts again without waiting long.
STABLE_AFTER = 60.0


def open_config_store(config: Config, term: int | None = None) -> Store:
    """The store `config` names, with its limits; `term`: a standby's lead (`bridge.standby`)."""
    days = 24 * 3600.0
    return open_store(config.store.url, term=term, puppet_ttl=config.store.puppet_days * days,
                      message_ttl=config.store.message_days * days, message_limit=config.store.message_limit)


class Bridge:
    def __init__(self, config: Config, path: str | None = None, store: Store | None = None) -> None:
        """`path`: the config file `config` came from, read again on a reload; `store`: one
        already open (a standby's leader opens it to take the lead)."""
        self.config = config
        self.stopping = False
        self.store = store or open_config_store(config)
        self.ids = MessageIds(self.store, limit=config.store.message_limit)
        # A standby's leader delivers nothing before its store has what led to it.
        self.router = Router(config.links, max_age=config.delivery.max_age,
                             barrier=self.store if config.store.standby else None, ids=self.ids)
        xmpp = XmppAdapter(config.component, self.router.receive, self.store, config.delivery.max_age,
                           self.ids)
        self.xmpp = xmpp
        # One identd for every IRC connection made for a user, portal or plumbed.
        self.identd = Identd(config.identd.host, config.identd.port) if config.identd else None
        self.adapters: list[Adapter] = [xmpp]
        self.supervisors: dict[Adapter, asyncio.Task] = {}
        for net in config.networks.values():
            self.adapters.append(self.network_adapter(net))
            xmpp.networks[net.name] = self.adapters[-1]
        for adapter in self.adapters:
            self.router.add_adapter(adapter)
        self.watch = Watch({adapter.network: adapter for adapter in self.adapters})
        self.control = Control(config, self.router, list(self.adapters), xmpp, self.watch)
        self.reloader = Reloader(self, path)
        self.control.reload = self.reloader.reload
        xmpp.operate(self.control)
        self.metrics = Metrics(self.control) if config.metrics is not None else None
        if self.metrics is not None:
            self.router.stats = self.metrics  # before the first event: every one is counted
        if config.portal.networks:  # portal users' own IRC connections: no link, no router
            logins = SaslCredentials(self.store, config.portal.secret_file)
            users = IrcUsers(config.portal, config.networks, max_age=config.delivery.max_age,
                             credentials=logins.get, identd=self.identd)
            users.view = xmpp.serve_portal(config.portal, users, logins)
            self.adapters.append(users)

    def network_adapter(self, net: IrcNetworkConfig | SilcNetworkConfig) -> Adapter:
        if isinstance(net, IrcNetworkConfig):
            return IrcAdapter(net, self.router.receive, max_age=self.config.delivery.max_age, ids=self.ids,
                              identd=self.identd)
        return SilcAdapter(net, self.router.receive, self.store)

    async def run(self) -> None:
        """Run until cancelled or SIGTERM/SIGINT; leave politely."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, task.cancel)
        if self.reloader.path is not None:  # a file to read again (the demo has none: SIGHUP is its own)
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGHUP, self.reloader.on_signal)
        log.info("bridge_starting", links=len(self.config.links), networks=len(self.config.networks))
        for link in self.config.links:
            self.announce_silc(link)
            self._announce_downtime(link)
        tasks = [asyncio.create_task(self.router.run(), name="router"),
                 asyncio.create_task(self._commit_loop(), name="store commits"),
                 asyncio.create_task(self.watch.run(), name="network watch"),
                 asyncio.create_task(systemd.run(self.control.unready), name="systemd")]
        for adapter in self.adapters:
            self.supervise(adapter)
        tasks += self.supervisors.values()
        if self.identd is not None:
            tasks.append(asyncio.create_task(self.identd.run(), name="identd"))
        if self.metrics is not None:
            pages = StatusServer(self.config.metrics.listen, self.metrics, self.control)
            tasks.append(asyncio.create_task(pages.run(), name="metrics and health"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.cancelled():  # a network a reload retired
                    continue
                if task.exception() is not None:
                    log.error("bridge_task_failed", task=task.get_name(), error=repr(task.exception()))
                task.result()  # a fatal error (a refused component secret) ends the bridge
        finally:
            self.stopping = True  # an adapter that ends now is not started again
            systemd.notify(systemd.STOPPING)
            await self._leave()  # while still connected, so the goodbyes go out
            tasks += self.supervisors.values()  # networks a reload added
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.store.aclose()
            log.info("bridge_stopped")

    async def _leave(self) -> None:
        """Every adapter leaves at once (queued lines out, then goodbyes), within 4 s."""
        async def leave(adapter: Adapter) -> None:
            try:
                async with asyncio.timeout(4.0):
                    await adapter.close()
            except Exception as exc:
                log.warning("adapter_close_failed", network=adapter.network, error=repr(exc))
        await asyncio.gather(*(leave(adapter) for adapter in self.adapters))

    def supervise(self, adapter: Adapter) -> None:
        self.supervisors[adapter] = asyncio.create_task(self._supervise(adapter),
                                                        name=f"adapter {adapter.network}")

    async def unsupervise(self, adapter: Adapter) -> None:
        """Stop running `adapter` (a reload removed or replaced it; it was closed)."""
        task = self.supervisors.pop(adapter)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _supervise(self, adapter: Adapter) -> None:
        """Run one adapter for as long as the bridge runs (and it is one of the bridge's:
        a reload may retire it). One that fails (a SILC key_dir it cannot write, a bug) is
        logged and started again after a backoff, while the other networks relay; only a
        refused component secret ends the bridge."""
        backoff = Backoff(initial=5.0, maximum=300.0)
        while True:
            started = time.monotonic()
            try:
                await adapter.run()
                if self.stopping or adapter not in self.adapters:
                    return
                log.error("adapter_stopped", network=adapter.network)
            except Exception as exc:
                if _refused(exc):
                    raise
                if self.stopping or adapter not in self.adapters:
                    return
                log.error("adapter_failed", network=adapter.network, error=_describe(exc))
            if time.monotonic() - started >= STABLE_AFTER:
                backoff.reset()
            await backoff.wait()

    async def _commit_loop(self) -> None:
        pruned = time.monotonic()
        while True:
            await asyncio.sleep(COMMIT_INTERVAL)
            self.store.set_cursor("alive", time.time())
            self.store.flush()
            if time.monotonic() - pruned > PRUNE_INTERVAL:  # old message ids go by age too
                pruned = time.monotonic()
                self.store.prune(keep=self.ids.limit)

    def _announce_downtime(self, link: LinkConfig) -> None:
        """After a restart: what IRC and SILC said while the bridge was down is gone
        (their servers keep no history for us); say so on the rest of the link. XMPP rooms
        replay what was missed themselves."""
        last = self.store.cursor("alive")
        if not isinstance(last, (int, float)):
            return
        now = time.time()
        for ep in link.endpoints:
            if ep.network == "xmpp":
                continue
            others = [Endpoint(o.network, o.room) for o in link.endpoints if o is not ep]
            self.router.announce(others, gap_text(f"{ep.network}/{ep.room}", last, now))

    def announce_silc(self, link: LinkConfig) -> None:
        """Say, once per start, that SILC's end-to-end encryption ends at the bridge:
        in each SILC channel of the link and in its MUC rooms."""
        adapters = {adapter.network: adapter for adapter in self.adapters}
        for ep in link.endpoints:
            adapter = adapters[ep.network]
            if not isinstance(adapter, SilcAdapter):
                continue
            elsewhere = [f"{o.network}/{o.room}" for o in link.endpoints if o is not ep]
            self.router.announce(
                [Endpoint(o.network, o.room) for o in link.endpoints if o is ep or o.network == "xmpp"],
                adapter.e2e_notice(ep.room, elsewhere))


def _refused(exc: BaseException) -> bool:
    """A refused component secret, possibly inside an exception group: retrying cannot help."""
    if isinstance(exc, BaseExceptionGroup):
        return any(_refused(inner) for inner in exc.exceptions)
    return isinstance(exc, HandshakeRefused)


def _describe(exc: BaseException) -> str:
    """An exception for the log, groups unwrapped (never message text: adapters raise none)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"
