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
from bridge.config_types import Config
from bridge.store.base import StoreUnavailable
from bridge.store.lease import Lease, LeaseLost

log = structlog.get_logger(__name__)


async def run_standby(config: Config) -> None:
    """Lead when the lease allows, until SIGTERM/SIGINT (or a fatal error of the bridge)."""
    lease = Lease(config.store.url)
    try:
        while True:
            _stop_on_signals(asyncio.current_task())
            term = await lease.acquire()
            try:
                # The store is read now, not at start: the cursors and message ids the last
                # leader wrote (its term is over: nothing it writes from now on lands).
                store = await asyncio.to_thread(open_config_store, config, term)
            except (StoreUnavailable, LeaseLost) as exc:
                log.error("lead_store_unavailable", term=term, error=str(exc))
                await lease.release()
                continue
            bridge = Bridge(config, store)
            gc.collect()
            gc.freeze()  # as `muc-bridge run` does (bridge.cli)
            if not await _lead(bridge, lease):
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


def _stop_on_signals(task: asyncio.Task) -> None:
    """While standing by, SIGTERM and SIGINT end `task` (a leading `Bridge.run` takes them
    over, and has them back here after it)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
