"""One of several instances on one PostgreSQL store (`store.standby: true`): stand by,
connected to the database only, until this one leads; then run the bridge until it stops
or loses the lead, and stand by again. Who leads, and why two never relay at once:
`bridge.store.lease`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal

import structlog

from bridge.app import Bridge, open_config_store
from bridge.config import ConfigError, load_config
from bridge.config_types import Config
from bridge.core.reload import plan
from bridge.store.base import StoreUnavailable
from bridge.store.lease import Lease, LeaseLost

log = structlog.get_logger(__name__)


async def run_standby(config: Config, path: str | None = None) -> None:
    """Lead when the lease allows, until SIGTERM/SIGINT (or a fatal error of the bridge).
    SIGHUP while standing by reads `path` again for the next lead; while leading, the
    bridge reloads (`bridge.reload`) and its config is the one kept."""
    lease = Lease(config.store.url)
    latest = _Latest(config, path)
    try:
        while True:
            _stop_on_signals(asyncio.current_task(), latest)
            term = await lease.acquire()
            config = latest.config
            try:
                # The store is read now, not at start: the cursors and message ids the last
                # leader wrote (its term is over: nothing it writes from now on lands).
                store = await asyncio.to_thread(open_config_store, config, term)
            except (StoreUnavailable, LeaseLost) as exc:
                log.error("lead_store_unavailable", term=term, error=str(exc))
                await lease.release()
                continue
            bridge = Bridge(config, path, store=store)
            gc.collect()
            gc.freeze()  # as `muc-bridge run` does (bridge.cli)
            led = await _lead(bridge, lease)
            latest.config = bridge.config  # with the reloads applied while it led
            if not led:
                return
            log.warning("stepped_down", term=term)
    finally:
        await lease.release()


async def _lead(bridge: Bridge, lease: Lease) -> bool:
    """Run `bridge` while the lead lasts. True if it was lost (the bridge has stopped: its
    networks closed, its deliveries held since the lead was found lost); False if the
    bridge stopped by itself (SIGTERM, which `Bridge.run` answers)."""
    leading = asyncio.create_task(bridge.run(), name="bridge")
    held = asyncio.create_task(lease.hold(bridge.router.pause), name="lease")
    await asyncio.wait({leading, held}, return_when=asyncio.FIRST_COMPLETED)
    if not leading.done():
        leading.cancel()
        await asyncio.gather(leading, return_exceptions=True)
        held.result()  # a bug in the lease's watch ends the process rather than hide it
        return True
    held.cancel()
    await asyncio.gather(held, return_exceptions=True)
    if not leading.cancelled():
        leading.result()  # a refused component secret, say: the standbys would fail alike
    return False


class _Latest:
    """The config the next lead starts with: SIGHUP while standing by reads the file again
    (what needs a restart keeps its running value, as a leader's reload does)."""

    def __init__(self, config: Config, path: str | None) -> None:
        self.config = config
        self.path = path
        self._reading: set[asyncio.Task] = set()

    def on_signal(self) -> None:
        if self.path is None:
            return
        task = asyncio.get_running_loop().create_task(self._read(self.path), name="reread")
        self._reading.add(task)
        task.add_done_callback(self._reading.discard)

    async def _read(self, path: str) -> None:
        try:
            new = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload_refused", path=path, line=problem.line, key=problem.path,
                          problem=problem.message)
            return
        steps = plan(self.config, new)
        self.config = steps.config
        for key in steps.kept:
            log.warning("reload_needs_restart", key=key)
        log.info("reload_standing_by", path=path)


def _stop_on_signals(task: asyncio.Task, latest: _Latest) -> None:
    """While standing by, SIGTERM and SIGINT end `task` and SIGHUP reads the config again
    (a leading `Bridge.run` takes them over, and has them back here after it)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        loop.add_signal_handler(signal.SIGHUP, latest.on_signal)
