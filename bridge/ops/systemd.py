"""systemd service notifications (sd_notify(3)): one datagram to `$NOTIFY_SOCKET` each.

Written here rather than taken from a library: the protocol is a few lines (a Unix datagram
of `KEY=value` lines; a socket name starting with `@` is in the abstract namespace), the
small pure-Python package for it (sdnotify) has not been released since 2017 and reads no
watchdog settings, and the bindings to libsystemd need its headers and a compiler.

Without `$NOTIFY_SOCKET` (not started by systemd, or not `Type=notify`) nothing is sent.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

READY = "READY=1"
STOPPING = "STOPPING=1"
WATCHDOG = "WATCHDOG=1"
#: The longest the bridge waits for every network and room before it says READY=1
#: anyway (systemd's start timeout is 90 s by default); `STATUS=` says what is missing.
READY_WAIT = 30.0
TICK = 1.0


def notify(*fields: str) -> bool:
    """Send `fields` (`READY=1`, ...) to systemd; False if there is nobody to tell."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
    except OSError as exc:
        log.warning("systemd_notify_failed", error=exc.strerror or repr(exc))
        return False
    return True


def reloading() -> None:
    """A reload starts (READY=1 ends it); systemd 253+ wants the time with it."""
    notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


def watchdog_interval() -> float | None:
    """Seconds between two WATCHDOG=1 (half of `WatchdogSec=`), or None: no watchdog
    (or one meant for another process)."""
    usec, pid = os.environ.get("WATCHDOG_USEC", ""), os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


async def run(unready: Callable[[], list[str]]) -> None:
    """Tell systemd READY=1 once `unready()` is empty (every network connected, every
    linked room joined) or `READY_WAIT` has passed, then WATCHDOG=1 from this event loop
    (a loop stuck longer than `WatchdogSec=` gets the bridge killed and restarted), and
    `STATUS=` whenever what is missing changes."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    interval = watchdog_interval()
    loop = asyncio.get_running_loop()
    started = fed = loop.time()
    ready, status = False, None
    if interval is not None:
        notify(WATCHDOG)
    while True:
        await asyncio.sleep(min(TICK, interval or TICK))
        now, missing = loop.time(), unready()
        text = "relaying" + (f"; not yet: {', '.join(missing[:5])}" if missing else "") \
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        if not ready and (not missing or now - started >= READY_WAIT):
            ready = notify(READY, f"STATUS={text}")
            status = text
            log.info("systemd_ready", missing=len(missing))
        elif ready and text != status:
            status = text if notify(f"STATUS={text}") else status
        if interval is not None and now - fed >= interval:
            fed = now
            notify(WATCHDOG)
