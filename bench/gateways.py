"""The gateways under test, each a subprocess whose /proc entry the bench reads:
muc-bridge (`python -m bridge run`) and biboumi (Debian's package) as a baseline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from pathlib import Path

import yaml

from bench.servers import BenchInspIRCd, BenchProsody
from bridge.demo.servers import find_binary

REPO = Path(__file__).resolve().parent.parent

#: The linked rooms: `room` for the two-way scenarios, `nway` for MUC + two IRC channels
#: (+ the SILC channel `nway` when the bench runs a SILC server).
ROOM = "room"
CHANNEL = "#room"
NWAY_ROOM = "nway"
NWAY_CHANNELS = ("#nway1", "#nway2")
SILC_NETWORK = "silcnet"
SILC_CHANNEL = "nway"


class GatewayProcess:
    """A subprocess with bounded start and stop; its output goes to a log file."""

    name = "gateway"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{self.name}.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def _spawn(self, *args: str, env: dict[str, str] | None = None) -> None:
        with open(self.log_path, "ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                cwd=self.workdir, env=env, start_new_session=True)

    def check_alive(self) -> None:
        if self.process is None or self.process.returncode is not None:
            raise RuntimeError(f"{self.name} is not running; see {self.log_path}:\n"
                               f"{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self, timeout: float = 5.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                async with asyncio.timeout(timeout):
                    await process.wait()
                return
            except TimeoutError:
                continue


class MucBridge(GatewayProcess):
    """muc-bridge linking room@muc.localhost <-> #room and nway@ <-> #nway1 <-> #nway2
    (<-> silcnet/nway if `silc_port` is given)."""

    name = "muc-bridge"
    network = "bench"

    def __init__(self, workdir: Path, prosody: BenchProsody, ircd: BenchInspIRCd,
                 log_level: str = "info",
                 silc_port: int | None = None) -> None:
        self.name = "muc-bridge"
        super().__init__(workdir)
        self.prosody = prosody
        self.ircd = ircd
        self.log_level = log_level
        self.config_path = workdir / "muc-bridge.yaml"
        self.relay_nick = "mbridge"
        self.silc_port = silc_port

    def config(self) -> dict:
        secret = self.workdir / "component.secret"
        secret.write_text(self.prosody.component_secret)
        secret.chmod(0o600)
        net = self.network
        networks = {net: {
            "type": "irc", "host": self.ircd.host, "port": self.ircd.port, "tls": False,
            "nick": self.relay_nick, "username": "mbridge",
            "flood": {"burst": 1000, "interval": 0},  # the bench network has no flood limits
        }}
        nway = [{"xmpp": self.prosody.room_jid(NWAY_ROOM)},
                *({"irc": f"{net}/{ch}"} for ch in NWAY_CHANNELS)]
        if self.silc_port is not None:
            networks[SILC_NETWORK] = {"type": "silc", "host": "127.0.0.1", "port": self.silc_port,
                                      "nick": self.relay_nick,
                                      "key_dir": str(self.workdir / "silc-keys")}
            nway.append({"silc": f"{SILC_NETWORK}/{SILC_CHANNEL}"})
        return {
            "component": {"jid": self.prosody.component_jid, "server": self.prosody.host,
                          "port": self.prosody.component_port, "secret_file": str(secret)},
            "store": {"url": f"sqlite:///{self.workdir / 'bridge.db'}"},
            "log": {"level": self.log_level, "format": "json"},
            "networks": networks,
            "links": {
                "bench": [{"xmpp": self.prosody.room_jid(ROOM)}, {"irc": f"{net}/{CHANNEL}"}],
                "nway": nway,
            },
        }

    async def start(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
        args = ["run", "--config", str(self.config_path)]
        await self._spawn(sys.executable, "-m", "bridge", *args, env=env)
        await asyncio.sleep(0.2)
        self.check_alive()


class MucBridgePortal(MucBridge):
    """muc-bridge in portal mode only (no links): the bench user joins `#room%bench@component`
    with a connection of their own, as with biboumi; no history kept (`portal.history` 0)."""

    def __init__(self, workdir: Path, prosody: BenchProsody, ircd: BenchInspIRCd) -> None:
        super().__init__(workdir, prosody, ircd)
        self.name = "muc-bridge-portal"
        self.log_path = workdir / f"{self.name}.log"

    def room_jid(self, channel: str) -> str:
        return f"{channel}%{self.network}@{self.prosody.component_jid}"

    def config(self) -> dict:
        config = super().config()
        config["networks"] = {self.network: config["networks"][self.network]}
        config["links"] = {}
        config["portal"] = {"networks": [self.network], "users": ["*"], "history": 0,
                            "secret_file": str(self.workdir / "portal.key")}
        return config


class Biboumi(GatewayProcess):
    """biboumi serving irc.localhost; its users reach InspIRCd as `127.0.0.1`, with
    their options (ports, throttling, history) written into its database first."""

    name = "biboumi"
    irc_server = "127.0.0.1"

    def __init__(self, workdir: Path, prosody: BenchProsody, ircd: BenchInspIRCd,
                 users: list[str], history: bool) -> None:
        self.name = "biboumi" if history else "biboumi-nohist"
        super().__init__(workdir)
        self.prosody = prosody
        self.ircd = ircd
        self.users = users  # bare JIDs whose options are set
        self.history = history
        self.db_path = workdir / "biboumi.sqlite"
        self.config_path = workdir / "biboumi.cfg"

    def room_jid(self, channel: str) -> str:
        return f"{channel}%{self.irc_server}@{self.prosody.biboumi_jid}"

    def _write_config(self, port: int) -> None:
        self.config_path.write_text("\n".join([
            f"hostname={self.prosody.biboumi_jid}",
            f"password={self.prosody.biboumi_secret}",
            "xmpp_server_ip=127.0.0.1",
            f"port={port}",
            f"db_name={self.db_path}",
            "log_level=2",
            "identd_port=0",
            f"policy_directory={self.workdir}",
            "realname_customization=true",
        ]) + "\n")

    async def _create_schema(self, binary: str) -> None:
        """biboumi makes its tables when it starts: start it against a closed port
        (it exits at once when the XMPP server cannot be reached)."""
        self._write_config(port=1)
        await self._spawn(binary, str(self.config_path))
        try:
            async with asyncio.timeout(10):
                await self.process.wait()
        finally:
            await self.stop()
        if not self.db_path.exists():
            raise RuntimeError(f"biboumi made no database:\n{self.log_tail()}")

    def _write_options(self) -> None:
        """Per-user settings (user.rst, "Ad-hoc commands"): connect to InspIRCd's plain
        port only, throttle limit -1 (no throttling), history recorded or not."""
        with contextlib.closing(sqlite3.connect(self.db_path)) as db, db:
            for owner in self.users:
                db.execute("DELETE FROM globaloptions_ WHERE owner_ = ?", (owner,))
                db.execute("DELETE FROM ircserveroptions_ WHERE owner_ = ? AND server_ = ?",
                           (owner, self.irc_server))
                db.execute("INSERT INTO globaloptions_ (owner_, maxhistorylength_, recordhistory_,"
                           " persistent_) VALUES (?, 20, ?, 0)", (owner, int(self.history)))
                db.execute(
                    "INSERT INTO ircserveroptions_ (owner_, server_, pass_, tlsports_, ports_,"
                    " username_, realname_, verifycert_, trustedfingerprint_, encodingout_,"
                    " encodingin_, maxhistorylength_, address_, nick_, saslpassword_,"
                    " throttlelimit_) VALUES (?, ?, '', '', ?, '', '', 0, '', '', '', 20, '',"
                    " '', '', -1)", (owner, self.irc_server, str(self.ircd.port)))

    async def start(self) -> None:
        binary = find_binary("biboumi")
        if binary is None:
            raise RuntimeError("biboumi not found: apt-get install -y biboumi")
        if self.db_path.exists():
            self.db_path.unlink()
        await self._create_schema(binary)
        self._write_options()
        self._write_config(self.prosody.component_port)
        await self._spawn(binary, str(self.config_path))
        await asyncio.sleep(0.3)
        self.check_alive()
