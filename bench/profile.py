"""Sampling the gateway with py-spy during a scenario, and the frames that dominate."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shutil
import signal
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
#: Frames every sample shares (the interpreter, runpy, the asyncio loop, the CLI):
#: left out of the "total" column, which is for finding the costly code paths.
_PLUMBING = ("(<frozen runpy>)", "(asyncio/", "(selectors.py)", "(bridge/cli.py)",
             "(bridge/__main__.py)", "(bridge/app.py)", "(<string>)")


class Profiler:
    """`async with Profiler(pid, out):` records collapsed stacks of `pid` into `out`.

    `--nonblocking` keeps py-spy from pausing the process at each sample, so the
    profiled run is not slowed much; its figures are still left out of the medians."""

    def __init__(self, pid: int, out: Path, rate: int = 250) -> None:
        self.pid = pid
        self.out = out
        self.rate = rate
        self.process: asyncio.subprocess.Process | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("py-spy") is not None

    async def __aenter__(self) -> Profiler:
        self.process = await asyncio.create_subprocess_exec(
            "py-spy", "record", "--pid", str(self.pid), "--format", "raw", "--output",
            str(self.out), "--rate", str(self.rate), "--nonblocking",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
        await asyncio.sleep(0.5)  # attaching takes a moment
        return self

    async def __aexit__(self, *exc: object) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        for sig in (signal.SIGINT, signal.SIGKILL):  # SIGINT: py-spy writes its output
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                async with asyncio.timeout(10):
                    await process.wait()
                return
            except TimeoutError:
                continue


def _frame(frame: str) -> str:
    """`name (path/file.py:123)` -> `name (path/file.py)`: one entry per function."""
    return _LINE.sub(")", frame)


def top_frames(path: Path, limit: int = 12) -> dict:
    """Self time (the sampled frame itself) and total time (anywhere on the stack)
    per function, as shares of all samples."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_frame(f) for f in stack.split(";")]
            samples += n
            own[frames[-1]] += n
            for frame in set(frames):
                total[frame] += n
    share = (lambda c: round(100 * c / samples, 1)) if samples else (lambda c: 0.0)
    return {
        "samples": samples,
        "self": [(frame, share(c)) for frame, c in own.most_common(limit)],
        "total": [(frame, share(c)) for frame, c in total.most_common()
                  if not any(p in frame for p in _PLUMBING)][:limit],
    }
