"""The SILC test server (tests/servers/silc) in a process of its own, so a test can SIGKILL it
and start it again on the same port (same host key: `cached_key_pair` keeps it on disk).

    python -m tests.faults.silc_server PORT      # prints "ready" once it listens
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import structlog

from tests.servers.silc.server import SilcTestServer

REPO = Path(__file__).resolve().parents[2]


class SilcServerProcess:
    """`start()`, `kill()` (SIGKILL), `stop()`; `port` is kept across restarts."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.log_path = log_path
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 15.0) -> None:
        with open(self.log_path, "ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.faults.silc_server", str(self.port),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log,
                cwd=REPO, start_new_session=True)
        try:
            async with asyncio.timeout(timeout):
                while (line := await self._process.stdout.readline()) != b"ready\n":
                    if not line:
                        raise RuntimeError(f"the SILC test server exited: see {self.log_path}")
        except BaseException:
            await self.kill()
            raise

    async def kill(self) -> None:
        await self._end(signal.SIGKILL)

    async def stop(self) -> None:
        await self._end(signal.SIGTERM)

    async def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            async with asyncio.timeout(5.0):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def _serve(port: int) -> None:
    async with SilcTestServer(port=port):
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


if __name__ == "__main__":
    # stdout carries only "ready": the server's own log goes to stderr (the log file)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(_serve(int(sys.argv[1])))
