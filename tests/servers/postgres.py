"""A real PostgreSQL server for tests: Debian's binaries, a cluster in a temp dir, loopback only.

Run in the foreground (`postgres -D dir`, no pg_ctl daemon), as `nobody` when the tests run
as root (PostgreSQL refuses root), with trust authentication for the one role `bridge`.
`stop` (fast shutdown) or `kill` (SIGKILL, as a machine loss) and `start` again on the same
data and port.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: How long a server may take to accept connections.
READY_WAIT = 30.0


class PostgresMissing(Exception):
    pass


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if not found:
        raise PostgresMissing("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): "
                              "apt-get install postgresql")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="muc-bridge-pg-"))
        self.data = self.dir / "data"
        self.proc: subprocess.Popen | None = None
        self._ids: dict = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("nobody")
            self._ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.dir.chmod(0o700)
        self._run([self.bin / "initdb", "-D", self.data, "-U", "bridge", "-A", "trust", "-E", "UTF8",
                   "--no-sync", "--no-instructions"])
        self.log = self.dir / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://bridge@127.0.0.1:{self.port}/{database}"

    def _run(self, argv: list) -> None:
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120,
                              cwd=self.dir, **self._ids)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed: {done.stderr.strip()[-2000:]}")

    def start(self) -> None:
        """Start on the data and port it had; after a kill, once the old server's processes
        (which notice their postmaster's death within moments) have let go of its memory."""
        deadline = time.monotonic() + READY_WAIT
        while True:
            try:
                return self._start_once(deadline)
            except RuntimeError:
                tail = self.log.read_text(errors="replace")[-2000:]
                if "pre-existing shared memory block" not in tail or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _start_once(self, deadline: float) -> None:
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
             "-k", str(self.dir), "-c", "fsync=off", "-c", "full_page_writes=off"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir, **self._ids)
        log.close()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            ready = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                                    "-U", "bridge", "-t", "1"], capture_output=True)
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres not ready in {READY_WAIT} s: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGINT) -> None:
        """Stop the server: SIGINT is PostgreSQL's fast shutdown, SIGKILL a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(READY_WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(READY_WAIT)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def create_database(self, name: str) -> str:
        self._run([self.bin / "createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "bridge", name])
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> None:
        self._run([self.bin / "psql", "-h", "127.0.0.1", "-p", self.port, "-U", "bridge", "-d", database, "-v", "ON_ERROR_STOP=1",
                   "-c", sql])

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
