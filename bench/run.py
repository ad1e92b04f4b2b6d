"""Run the benchmark suite: `python -m bench.run [--n 2000] [--scenarios ...] [--repeat 3]`.

Starts Prosody and InspIRCd on loopback in a temp dir (and, for nway, the project's
SILC test server as a subprocess: tests/servers/silc), then for each gateway
(muc-bridge, muc-bridge in portal mode, then biboumi with and without its message
history) connects the load
clients, runs the scenarios `--repeat` times and prints one JSON line and a table
line per run; at the end the medians, the muc-bridge / biboumi ratios and the
issue's targets, and the same into docs/performance.md. Every process it started
is stopped on the way out, Ctrl-C included.

`--rounds R` goes through the whole sequence (the floor and every gateway) R times, so
that the gateways take turns: a change in the machine's other load then weighs on all of
them alike instead of on whichever ran during it. Medians are over every round's runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import structlog

from bench import report, scenarios
from bench.gateways import (
    CHANNEL, NWAY_CHANNELS, NWAY_ROOM, REPO, ROOM, SILC_CHANNEL, Biboumi, GatewayProcess,
    MucBridge, MucBridgePortal,
)
from bench.irc_client import IrcClient
from bench.profile import Profiler, top_frames
from bench.scenarios import Phase, irc_endpoint, xmpp_endpoint
from bench.servers import PROSODY_GC, BenchInspIRCd, BenchProsody
from bench.silc import SilcServer, silc_endpoint
from bench.xmpp_client import XmppClient, XmppError
from tests.servers.silc import TestUser

SCENARIOS = ("irc_to_xmpp", "xmpp_to_irc", "paced", "nway", "puppet_scale")
#: Scenarios biboumi and muc-bridge's portal are measured in (a portal room is one user's
#: IRC connection: no n-way links, no puppets).
BASELINE_SCENARIOS = ("irc_to_xmpp", "xmpp_to_irc", "paced")
#: Burst scenarios profiled with --profile.
PROFILED = ("irc_to_xmpp", "xmpp_to_irc", "paced", "nway")
PROFILED_RUNS = 3  # runs of each under one py-spy session, for enough samples
GATEWAYS = ("floor", "muc-bridge", "muc-bridge-portal", "biboumi", "biboumi-nohist")
USER, USER2, PASSWORD, NICK = "xbench", "xbench2", "bench-password", "xbench"
#: The channel and room of the no-gateway floor measurements.
FLOOR_CHANNEL, FLOOR_ROOM = "#floor", "floor"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="messages per burst (default 2000)")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS),
                        metavar="NAME", help=f"which to run (default all: {' '.join(SCENARIOS)})")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (medians reported)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="times the whole sequence of gateways runs, taking turns (medians "
                             "over all rounds' runs; default 1)")
    parser.add_argument("--puppets", default="200,2000",
                        help="K values for puppet_scale, comma-separated (default 200,2000)")
    parser.add_argument("--silc-n", type=int,
                        help="messages the SILC user sends in nway (default: --n; the SILC "
                             "test server is pure Python, lower this if it falls behind)")
    parser.add_argument("--no-silc", action="store_true",
                        help="nway without the SILC channel")
    parser.add_argument("--paced-n", type=int, default=300, help="messages each way in paced")
    parser.add_argument("--rate", type=float, default=50.0, help="paced rate, msg/s")
    parser.add_argument("--gateways", nargs="+", choices=GATEWAYS,
                        default=list(GATEWAYS), metavar="NAME",
                        help=f"which to measure (default: {' '.join(GATEWAYS)})")
    parser.add_argument("--no-biboumi", action="store_true",
                        help="skip the biboumi baseline (same as --gateways muc-bridge)")
    parser.add_argument("--profile", action="store_true",
                        help="after the measured runs, one more run of each burst scenario "
                             "under py-spy (not in the medians); top frames in the report")
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "performance.md",
                        help="markdown file whose results block is rewritten")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/ alone")
    parser.add_argument("--json", type=Path, help="also append the JSON lines to this file")
    parser.add_argument("--prosody-gc", choices=PROSODY_GC, default="generational",
                        help="Prosody's garbage collector (default generational; `default` "
                             "is Prosody's own incremental set-up, about half the MUC floor)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    args = parser.parse_args(argv)
    args.puppets = [int(k) for k in args.puppets.split(",") if k.strip()]
    if args.no_biboumi:
        args.gateways = [g for g in args.gateways if not g.startswith("biboumi")]
    return args


class Suite:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rows: list[dict] = []
        self.profiles: dict[str, dict] = {}
        self.failures: list[str] = []
        self.prosody = BenchProsody(workdir / "prosody", gc=args.prosody_gc)
        self.ircd = BenchInspIRCd(workdir / "inspircd")
        #: The SILC test server, for the SILC channel of the nway link.
        self.silc = (SilcServer(workdir / "silc") if "nway" in args.scenarios
                     and not args.no_silc else None)
        self.clients: list[XmppClient | IrcClient] = []
        self.silc_user: TestUser | None = None

    async def run(self) -> None:
        await self.prosody.start()
        await self.ircd.start()
        if self.silc is not None:
            await self.silc.start()
        for user in (USER, USER2):
            await self.prosody.register(user, PASSWORD)
        for round_ in range(1, self.args.rounds + 1):
            if self.args.rounds > 1:
                print(f"\n#### round {round_} of {self.args.rounds}", flush=True)
            await self._round(self.workdir / f"round-{round_}")

    async def _round(self, workdir: Path) -> None:
        """The floor, then each gateway in turn."""
        if "floor" in self.args.gateways:
            await self._floor()
        bridge = MucBridge(workdir / "muc-bridge", self.prosody, self.ircd,
                           silc_port=self.silc.port if self.silc else None)
        if bridge.name in self.args.gateways:
            await self._phase(bridge, self.args.scenarios)
        baseline = [s for s in self.args.scenarios if s in BASELINE_SCENARIOS]
        portal = MucBridgePortal(workdir / "muc-bridge-portal", self.prosody, self.ircd)
        if portal.name in self.args.gateways:
            await self._phase(portal, baseline)
        for history in (True, False):
            gateway = Biboumi(workdir / f"biboumi-{history}", self.prosody, self.ircd,
                              [self.prosody.jid(USER)], history)
            if gateway.name in self.args.gateways:
                await self._phase(gateway, baseline)

    async def close(self) -> None:
        for client in self.clients:
            client.close()
        await self._close_silc_user()
        for server in (self.prosody, self.ircd, self.silc):
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.stop()

    async def _close_silc_user(self) -> None:
        if self.silc_user is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.silc_user.close()
            self.silc_user = None

    async def _phase(self, gateway: GatewayProcess, wanted: list[str]) -> None:
        """Measure one gateway; if it fails (dies, never relays), say so and go on."""
        if not wanted:
            return
        print(f"\n== {gateway.name} ==", flush=True)
        try:
            await gateway.start()
            phase = await self._connect(gateway)
            await scenarios.ready(phase)
            # All runs of one scenario before the next: puppet_scale (last) leaves the
            # most state behind, and must not weigh on the others' later repeats.
            for name in [s for s in SCENARIOS if s in wanted]:
                for _ in range(self.args.repeat):
                    for row in await self._scenario(phase, name):
                        row["gateway"] = gateway.name
                        self._record(row)
                    gateway.check_alive()
                if self.args.profile and isinstance(gateway, MucBridge) and name in PROFILED:
                    await self._profile(gateway, phase, name)
        except Exception as exc:  # noqa: BLE001 - one gateway's failure is a result too
            self.failures.append(f"{gateway.name}: {exc}")
            print(f"!! {gateway.name} failed: {exc}\n{gateway.log_tail()}", flush=True)
        finally:
            for client in self.clients:
                client.close()
            self.clients.clear()
            await self._close_silc_user()
            await gateway.stop()

    async def _floor(self) -> None:
        """The servers alone, measured like the gateways: IRC to IRC, XMPP to XMPP."""
        print("\n== floor (no gateway) ==", flush=True)
        prosody, ircd = self.prosody, self.ircd
        try:
            ends = []
            for nick in ("ibench", "ibench2"):
                client = await IrcClient(ircd.host, ircd.port, nick).connect()
                self.clients.append(client)
                await client.join(FLOOR_CHANNEL)
                ends.append(irc_endpoint(nick, client, FLOOR_CHANNEL))
            room = prosody.room_jid(FLOOR_ROOM)
            for user in (USER, USER2):
                client = await XmppClient(prosody.host, prosody.c2s_port, prosody.domain, user,
                                          PASSWORD).login()
                self.clients.append(client)
                await client.join(room, user)
                ends.append(xmpp_endpoint(user, client, room, user))
            phase = Phase("floor", None, ends[3], ends[1], others=self._others())
            for _ in range(self.args.repeat):
                for row in await scenarios.floor(phase, *ends, self.args.n, self.args.paced_n,
                                                 self.args.rate):
                    self._record(row)
        finally:
            for client in self.clients:
                client.close()
            self.clients.clear()

    def _others(self) -> dict[str, int]:
        """The servers' and the bench's own CPU use, to see who is the bottleneck.
        (bridge.demo.servers keeps its process private; the bench only reads its pid.)"""
        pids = {"prosody": self.prosody._process.pid, "inspircd": self.ircd._process.pid,
                "bench": os.getpid()}
        if self.silc is not None:
            pids["silc"] = self.silc.pid
        return pids

    async def _scenario(self, phase: Phase, name: str) -> list[dict]:
        n = self.args.n
        if name == "irc_to_xmpp":
            return await scenarios.irc_to_xmpp(phase, n)
        if name == "xmpp_to_irc":
            return await scenarios.xmpp_to_irc(phase, n)
        if name == "paced":
            return await scenarios.paced(phase, self.args.paced_n, self.args.rate)
        if name == "nway":
            return await scenarios.nway(phase, n, {"silc": self.args.silc_n or n})
        rows = []
        for k in self.args.puppets:
            rows += await scenarios.puppet_scale(phase, k)
        return rows

    async def _connect(self, gateway: GatewayProcess) -> Phase:
        prosody, ircd = self.prosody, self.ircd
        xmpp = await XmppClient(prosody.host, prosody.c2s_port, prosody.domain, USER,
                                PASSWORD).login()
        self.clients.append(xmpp)
        irc = await IrcClient(ircd.host, ircd.port, "ibench").connect()
        self.clients.append(irc)
        await irc.join(CHANNEL)
        others = self._others()
        if isinstance(gateway, (Biboumi, MucBridgePortal)):  # the user's own IRC connection
            room = gateway.room_jid(CHANNEL)
            await join_served(xmpp, room, NICK)
            return Phase(gateway.name, gateway.pid, xmpp_endpoint("xmpp", xmpp, room, NICK),
                         irc_endpoint("irc", irc, CHANNEL), CHANNEL, ircd.host, ircd.port,
                         xmpp, room, others=others)
        room = prosody.room_jid(ROOM)
        await xmpp.join(room, NICK)
        nway = ()
        if "nway" in self.args.scenarios:
            nway_room = prosody.room_jid(NWAY_ROOM)
            await xmpp.join(nway_room, NICK)
            irc2 = await IrcClient(ircd.host, ircd.port, "ibench2").connect()
            self.clients.append(irc2)
            await irc.join(NWAY_CHANNELS[0])
            await irc2.join(NWAY_CHANNELS[1])
            nway = (xmpp_endpoint("xmpp", xmpp, nway_room, NICK),
                    irc_endpoint("irc1", irc, NWAY_CHANNELS[0]),
                    irc_endpoint("irc2", irc2, NWAY_CHANNELS[1]))
            if self.silc is not None:
                self.silc_user = TestUser("sbench", self.silc.port)
                await self.silc_user.connect()
                await self.silc_user.join(SILC_CHANNEL)
                nway += (silc_endpoint("silc", self.silc_user, SILC_CHANNEL),)
        return Phase(gateway.name, gateway.pid, xmpp_endpoint("xmpp", xmpp, room, NICK),
                     irc_endpoint("irc", irc, CHANNEL), CHANNEL, ircd.host, ircd.port,
                     xmpp, room, nway, others)

    async def _profile(self, gateway: MucBridge, phase: Phase, name: str) -> None:
        """More runs of scenario `name` under py-spy; printed, not in the medians."""
        if not Profiler.available():
            print("--profile: py-spy not found (pip install py-spy); skipped", flush=True)
            return
        out = self.workdir / f"profile-{name}.txt"
        async with Profiler(gateway.pid, out):
            for _ in range(PROFILED_RUNS):
                for row in await self._scenario(phase, name):
                    row["gateway"], row["profiled"] = gateway.name, True
                    report.print_row(row)
        self.profiles[name] = top_frames(out)
        print(f"  py-spy top frames during {name}:", flush=True)
        for frame, share in self.profiles[name]["self"][:8]:
            print(f"    {share:5.1f}%  {frame}", flush=True)

    def _record(self, row: dict) -> None:
        self.rows.append(row)
        report.print_row(row)
        if self.args.json:
            with open(self.args.json, "a") as f:
                f.write(json.dumps(row) + "\n")


async def join_served(xmpp: XmppClient, room: str, nick: str, timeout: float = 30.0) -> None:
    """Join a room the gateway serves itself, trying again while its component is not yet
    connected (the XMPP server answers for it then: remote-server-timeout)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await xmpp.join(room, nick, timeout=timeout)
            except XmppError as exc:
                if "remote-server-timeout" not in str(exc) and "service-unavailable" not in str(exc):
                    raise
            await asyncio.sleep(0.5)


def quiet_logs() -> None:
    """The server launchers log at debug; the bench prints its own lines."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _stop_on_signals() -> None:
    """SIGINT (Ctrl-C) and SIGTERM cancel the run once; the `finally` blocks then stop
    every process (each stop is bounded), and further signals are ignored meanwhile."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    stopping: list[bool] = []

    def stop() -> None:
        if not stopping:
            stopping.append(True)
            task.cancel()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs()
    _stop_on_signals()
    workdir = Path(tempfile.mkdtemp(prefix="muc-bridge-bench-"))
    suite = Suite(args, workdir)
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        await suite.run()
    finally:
        await suite.close()
        if args.keep:
            print(f"\nlogs and configs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    table = report.medians(suite.rows)
    report.print_summary(table)
    if not args.no_docs:
        header = {"command": "python -m bench.run " + shlex.join(sys.argv[1:] if argv is None
                                                                 else argv),
                  "date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": report.machine(),
                  "versions": report.versions(), "prosody_gc": args.prosody_gc,
                  "repeat": args.repeat * args.rounds, "n": args.n,
                  "failures": suite.failures}
        report.write_docs(args.docs, report.markdown(table, header, suite.profiles))
        print(f"\nresults written to {args.docs}")
    for failure in suite.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if suite.failures else 0


if __name__ == "__main__":
    try:
        raise SystemExit(asyncio.run(main()))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted: servers and gateways stopped", file=sys.stderr)
        raise SystemExit(130) from None
