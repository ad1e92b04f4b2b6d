"""Many rooms on one bridge: `python -m bench.rooms [--links 500] [--networks 3]`.

Starts Prosody and one IRC server per network on loopback in a temp dir (network 2 is an
ngIRCd, the others InspIRCd: separate server processes, as separate networks would be), then:

1. a bridge with one link, for the baseline RSS;
2. a bridge with `--links` links (`room-N@muc.localhost` <-> `netK/#room-N`, round robin over
   the networks): the time from its start until `/health` says every network is connected
   and every room and channel joined (both sides), its CPU meanwhile, and its RSS (and per link
   over the baseline);
3. one message each way through every link (an IRC user per network, one XMPP user in every
   room): lost ones counted, time until all arrived;
4. its idle CPU over `--idle` seconds (timers per room would show here);
5. Prosody killed (SIGKILL) and started again: the time until `/health` is ready again (every
   room rejoined), then a message each way through every link once more.

The servers' own limits: the IRC servers' flood limits are lifted (as in the rest of the
bench) so that relaying 2 x N messages is not a test of IRC flood control, but the bridge
keeps its own JOIN pacing (bridge/irc/joins.py) and MUC join pacing (`component.joins`,
default); InspIRCd's connect class lets a client into 1000 channels (`maxchans`, and
`<channels:users>` so that CHANLIMIT says so; the default is 20), ngIRCd has `MaxJoins = 0`
(no limit). Prosody keeps `--prosody-room-cache` rooms live (`muc_room_cache_size`, default
100 in Prosody 0.12: with more busy rooms than that, it writes rooms to disk and reads them back
all the time). Figures are printed; pass `--json FILE` to keep them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from bench import report
from bench.gateways import REPO, GatewayProcess
from bench.irc_client import IrcClient
from bench.run import quiet_logs
from bench.servers import BenchInspIRCd, BenchProsody
from bench.xmpp_client import XmppClient
from bridge.demo.servers import NgIRCd, free_port

USER, PASSWORD, NICK = "xrooms", "bench-password", "xrooms"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class RoomsProsody(BenchProsody):
    def __init__(self, workdir: Path, room_cache: int) -> None:
        super().__init__(workdir)
        self.muc_options["muc_room_cache_size"] = room_cache


class RoomsInspIRCd(BenchInspIRCd):
    """The bench's InspIRCd, with room for 1000 channels per client, said in CHANLIMIT too."""

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config_path.read_text().replace('maxchans="100"', 'maxchans="1000"')
        self.config_path.write_text(text + '<channels users="1000" opers="1000">\n')


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds used, RSS in KiB) of process `pid`."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * PAGE_KIB
    return cpu, rss


class RoomsBridge(GatewayProcess):
    name = "muc-bridge"

    def __init__(self, workdir: Path, prosody: RoomsProsody, ircds: list, links: int) -> None:
        super().__init__(workdir)
        self.prosody = prosody
        self.ircds = ircds
        self.links = links
        self.health_port = free_port()

    def config(self) -> dict:
        secret = self.workdir / "component.secret"
        secret.write_text(self.prosody.component_secret)
        secret.chmod(0o600)
        networks = {f"net{k}": {
            "type": "irc", "host": ircd.host, "port": ircd.port, "tls": False, "nick": "mbridge",
            "username": "mbridge", "flood": {"burst": 1000, "interval": 0},
        } for k, ircd in enumerate(self.ircds)}
        links = {f"l{n}": [{"xmpp": room_jid(self.prosody, n)},
                           {"irc": f"net{n % len(self.ircds)}/{channel(n)}"}]
                 for n in range(self.links)}
        return {
            "component": {"jid": self.prosody.component_jid, "server": self.prosody.host,
                          "port": self.prosody.component_port, "secret_file": str(secret)},
            "store": {"url": f"sqlite:///{self.workdir / 'bridge.db'}"},
            "log": {"level": "info", "format": "json"},
            "metrics": {"listen": f"127.0.0.1:{self.health_port}"},
            "networks": networks,
            "links": links,
        }

    async def start(self) -> None:
        path = self.workdir / "muc-bridge.yaml"
        path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
        await self._spawn(sys.executable, "-m", "bridge", "run", "--config", str(path), env=env)

    async def health(self) -> tuple[int, int]:
        """(HTTP status of /health, how many things it says are not ready)."""
        def get() -> tuple[int, int]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/health",
                                            timeout=5) as answer:
                    return answer.status, 0
            except urllib.error.HTTPError as error:
                return error.code, len(error.read().decode().splitlines())
            except OSError:
                return 0, -1
        return await asyncio.to_thread(get)

    async def until(self, ready: bool, timeout: float) -> float:
        """Wait until /health is (or is no longer) 200; the time it happened."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check_alive()
            status, missing = await self.health()
            if (status == 200) == ready:
                return time.monotonic()
            if missing != last and missing > 0:
                last = missing
            await asyncio.sleep(0.2)
        raise TimeoutError(f"/health not {'ready' if ready else 'unready'} within {timeout} s "
                           f"({last} things not ready); see {self.log_path}")


def channel(n: int) -> str:
    return f"#room-{n}"


def room_jid(prosody, n: int) -> str:
    return prosody.room_jid(f"room-{n}")


class Users:
    """One XMPP user in every room and one IRC user per network in its channels, counting
    what reaches them."""

    def __init__(self, prosody, ircds: list, links: int) -> None:
        self.prosody, self.ircds, self.links = prosody, ircds, links
        self.xmpp: XmppClient | None = None
        self.irc: list[IrcClient] = []
        self.heard: set[tuple[str, str]] = set()

    async def connect_xmpp(self) -> None:
        self.xmpp = await XmppClient(self.prosody.host, self.prosody.c2s_port,
                                     self.prosody.domain, USER, PASSWORD).login()
        self.xmpp.on_message = lambda room, nick, body, _: self.heard.add((room, body))
        for n in range(self.links):
            await self.xmpp.join(room_jid(self.prosody, n), NICK, timeout=30)

    async def connect_irc(self) -> None:
        for k, ircd in enumerate(self.ircds):
            client = await IrcClient(ircd.host, ircd.port, f"irooms{k}").connect()
            client.on_privmsg = lambda sender, target, text, _: self.heard.add((target.lower(), text))
            self.irc.append(client)
            for n in range(k, self.links, len(self.ircds)):
                await client.join(channel(n))

    async def round(self, tag: str, timeout: float) -> dict:
        """One message each way through every link; how many were lost, how long it took."""
        self.heard.clear()
        expected = set()
        started = time.monotonic()
        for n in range(self.links):
            irc = self.irc[n % len(self.ircds)]
            irc.send(IrcClient.privmsg(channel(n), f"{tag} irc {n}"))
            expected.add((room_jid(self.prosody, n), f"{tag} irc {n}"))
            self.xmpp.send(XmppClient.groupchat(room_jid(self.prosody, n), f"{tag} xmpp {n}"))
            expected.add((channel(n), f"<{NICK}> {tag} xmpp {n}"))
            if n % 50 == 49:
                await asyncio.sleep(0)
        deadline = time.monotonic() + timeout
        while not expected <= self.heard and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        arrived = expected & self.heard
        return {"messages": len(expected), "lost": len(expected - arrived),
                "all_arrived_s": round(time.monotonic() - started, 2)}

    def close(self) -> None:
        if self.xmpp is not None:
            self.xmpp.close()
        for client in self.irc:
            client.close()


async def measure(args: argparse.Namespace, workdir: Path) -> dict:
    prosody = RoomsProsody(workdir / "prosody", args.prosody_room_cache)
    ircds = [NgIRCd(workdir / f"ngircd{k}") if k == 2 else RoomsInspIRCd(workdir / f"inspircd{k}")
             for k in range(args.networks)]
    servers = [prosody, *ircds]
    users = Users(prosody, ircds, args.links)
    figures: dict = {"links": args.links, "networks": args.networks,
                     "irc_servers": [server.binary for server in ircds],
                     "prosody_room_cache": args.prosody_room_cache}
    try:
        for server in servers:
            await server.start()
        await prosody.register(USER, PASSWORD)
        await users.connect_xmpp()
        await users.connect_irc()

        print("baseline: a bridge with one link", flush=True)
        base = RoomsBridge(workdir / "bridge-1", prosody, ircds[:1], 1)
        await base.start()
        try:
            await base.until(True, 60)
            await asyncio.sleep(2)
            figures["baseline_rss_kib"] = proc_stats(base.pid)[1]
        finally:
            await base.stop()

        print(f"a bridge with {args.links} links", flush=True)
        bridge = RoomsBridge(workdir / "bridge", prosody, ircds, args.links)
        prosody_cpu = proc_stats(prosody._process.pid)[0]  # the bench reads the pid only
        started = time.monotonic()
        await bridge.start()
        try:
            ready = await bridge.until(True, args.timeout)
            cpu, rss = proc_stats(bridge.pid)
            figures |= {"start_to_all_joined_s": round(ready - started, 2), "start_cpu_s": round(cpu, 2),
                        "rss_kib": rss,
                        "start_prosody_cpu_s": round(proc_stats(prosody._process.pid)[0] - prosody_cpu, 2),
                        "rss_per_link_kib": round((rss - figures["baseline_rss_kib"]) / max(1, args.links - 1), 1)}
            print(f"  all joined after {figures['start_to_all_joined_s']} s", flush=True)
            cpu0 = proc_stats(bridge.pid)[0]
            figures["round1"] = await users.round("first", args.timeout)
            figures["round1"]["bridge_cpu_s"] = round(proc_stats(bridge.pid)[0] - cpu0, 2)
            print(f"  round 1: {figures['round1']}", flush=True)
            cpu0 = proc_stats(bridge.pid)[0]
            await asyncio.sleep(args.idle)
            figures["idle_cpu_percent"] = round(100 * (proc_stats(bridge.pid)[0] - cpu0) / args.idle, 2)
            figures["rss_after_round_kib"] = proc_stats(bridge.pid)[1]
            print(f"  idle CPU {figures['idle_cpu_percent']} %", flush=True)

            print("  Prosody killed and started again", flush=True)
            users.xmpp.close()
            killed = time.monotonic()
            await prosody.kill()
            await prosody.start()
            back = time.monotonic()
            cpu0 = proc_stats(bridge.pid)[0]
            await bridge.until(False, 30)
            rejoined = await bridge.until(True, args.timeout)
            figures |= {"rejoin_after_restart_s": round(rejoined - back, 2),
                        "rejoin_after_kill_s": round(rejoined - killed, 2),
                        "rejoin_cpu_s": round(proc_stats(bridge.pid)[0] - cpu0, 2),
                        "rejoin_prosody_cpu_s": round(proc_stats(prosody._process.pid)[0], 2)}
            print(f"  all rejoined {figures['rejoin_after_restart_s']} s after Prosody was back",
                  flush=True)
            await users.connect_xmpp()
            figures["round2"] = await users.round("second", args.timeout)
            print(f"  round 2: {figures['round2']}", flush=True)
            cpu, rss = proc_stats(bridge.pid)
            figures |= {"rss_end_kib": rss, "bridge_cpu_total_s": round(cpu, 2)}
        finally:
            await bridge.stop()
    finally:
        users.close()
        for server in servers:
            with contextlib.suppress(Exception):
                await server.stop()
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.rooms", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--links", type=int, default=500)
    parser.add_argument("--networks", type=int, default=3, help="IRC networks (default 3)")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured")
    parser.add_argument("--timeout", type=float, default=300.0, help="for each wait")
    parser.add_argument("--prosody-room-cache", type=int, default=1000,
                        help="Prosody's muc_room_cache_size (its default is 100)")
    parser.add_argument("--json", type=Path, help="append the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs()
    workdir = Path(tempfile.mkdtemp(prefix="muc-bridge-rooms-"))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()
    try:
        figures = await measure(args, workdir)
    finally:
        if args.keep:
            print(f"logs and configs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    figures |= {"date": date, "machine": report.machine(), "versions": report.versions(),
                "load_before": load_before, "load_after": os.getloadavg()}
    print(json.dumps(figures, indent=1))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(figures) + "\n")
    lost = figures["round1"]["lost"] + figures["round2"]["lost"]
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
