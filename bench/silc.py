"""SILC in the bench: the project's spec-written test server in its own process (so its
CPU is read from /proc like Prosody's and InspIRCd's), and a SILC user whose channel
messages are counted as they are decrypted.

`python -m bench.silc PORT_FILE` runs the server on a free loopback port, writes the
port into PORT_FILE and serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

import structlog

from bench.gateways import REPO, GatewayProcess
from bench.scenarios import Endpoint
from bench.stats import Board
from tests.servers.silc import SilcTestServer, TestUser

class SilcServer(GatewayProcess):
    """The SILC test server as a subprocess of the bench."""

    name = "silc-server"
    host = "127.0.0.1"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.port_file = workdir / "port"
        self.port = 0

    async def start(self, timeout: float = 20.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        await self._spawn(sys.executable, "-m", "bench.silc", str(self.port_file), env=env)
        async with asyncio.timeout(timeout):
            while not self.port_file.exists() or not self.port_file.read_text().strip():
                self.check_alive()
                await asyncio.sleep(0.05)
        self.port = int(self.port_file.read_text())


def silc_endpoint(name: str, user: TestUser, channel: str) -> Endpoint:
    """`TestUser.say` encodes and writes without suspending; the relay client's lines
    arrive here as `<nick> text`, which the board's token search reads through."""
    board = Board()

    def on_text(msg_channel: str, text: str) -> None:
        if msg_channel == channel:
            board.feed(text, time.perf_counter_ns())
    user.on_text = on_text
    return Endpoint(name, lambda text: user.say(channel, text), user.stream.writer.drain, board)


async def _serve(port_file: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with SilcTestServer() as server:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(server.port))
        tmp.rename(port_file)
        await stop.wait()


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(Path(sys.argv[1])))
