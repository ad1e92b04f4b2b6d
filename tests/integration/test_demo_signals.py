"""`muc-bridge demo` cleans up however it is stopped: closing its terminal (SIGHUP), SIGHUP or
SIGTERM stop its Prosody and InspIRCd and remove its temporary directory (which holds the
component secret), as Ctrl-C does."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"Config, logs and data: (\S+).*irc_joined", re.S)


def _take_terminal() -> None:
    """In the child, after setsid: make stdin (the pty) the controlling terminal, so that
    closing the other end hangs it up as closing a terminal window does."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _read_until_ready(fd: int, process: subprocess.Popen, timeout: float) -> Path:
    """Read the demo's output until it has printed its instructions and the bridge is in the
    IRC channel; return its temporary directory."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
            if match := READY.search(out.decode(errors="replace")):
                return Path(match.group(1))
    raise AssertionError(f"demo not ready within {timeout} s (exit {process.poll()}):\n"
                         + out.decode(errors="replace")[-3000:])


def _processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is inside `directory` (the demo's servers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (Path(os.readlink(entry / "cwd")).is_relative_to(directory)
                    and "State:\tZ" not in (entry / "status").read_text()):
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("stop", ["terminal closed", "SIGHUP", "SIGTERM"])
def test_demo_stops_its_servers_and_removes_its_files(stop):
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "bridge", "demo"], cwd=ROOT,
                               stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                               preexec_fn=_take_terminal)
    os.close(slave)
    workdir, servers = None, []
    try:
        workdir = _read_until_ready(master, process, timeout=60)
        servers = _processes_in(workdir)
        assert len(servers) == 2, f"expected Prosody and InspIRCd under {workdir}: {servers}"
        if stop == "terminal closed":
            os.close(master)  # the kernel sends SIGHUP to the demo, the session's leader
            master = None
        else:
            process.send_signal(getattr(signal, stop))
        # 0: the clean-up ran to its end, with nothing raised (such as a log line written
        # to the hung-up terminal) that could cut it short.
        assert process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(map(_alive, servers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in servers if _alive(pid)] == []
        assert not workdir.exists()
    finally:
        if master is not None:
            os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        for pid in servers:  # what a failed clean-up left behind, so later tests do not trip
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
