"""A soak: muc-bridge relaying a steady stream both ways for an hour, watched for leaks.

    python -m bench.soak [--minutes 60] [--rate 20] [--json soak.json] [--keep]

Starts Prosody and InspIRCd on loopback in a temp dir and muc-bridge as a subprocess
(`python -m bridge run --config ...`, JSON log lines), as `bench.run` does; one XMPP user
in room@muc.localhost and one IRC user in #room send numbered messages to each other at
`--rate` per second each way for `--minutes`. Every `--sample` seconds the bridge's RSS
(VmRSS) and CPU time are read from /proc/PID. At the end it prints, per direction, the
messages sent, received, lost, duplicated and out of order and the latency p50 / p99;
the RSS after the warm-up and at the end, and its least-squares slope (KiB per hour)
over the samples after the warm-up (and over their second half, apart from a warm-up
that lasted longer); the bridge's CPU seconds per 1000 messages; and the
bridge's warning and error log events counted by name.

The run stops by itself (every wait is bounded). The first Ctrl-C or SIGTERM ends the
stream early and still reports; a second one aborts. Exit status: 0 if every message
arrived exactly once, 1 if one was lost or duplicated or the bridge or a client failed,
130 if interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime
import json
import math
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path

from bench import report, scenarios
from bench.gateways import CHANNEL, ROOM, MucBridge
from bench.irc_client import IrcClient, IrcError
from bench.run import NICK, PASSWORD, USER, quiet_logs
from bench.scenarios import Endpoint, Phase, irc_endpoint, pace, xmpp_endpoint
from bench.servers import PROSODY_GC, BenchInspIRCd, BenchProsody
from bench.stats import percentile, sample
from bench.xmpp_client import XmppClient, XmppError

#: How long the last messages may take to arrive after the last send, and how long
#: the stream may stall (nothing new arriving) before the wait gives up.
DRAIN_S, DRAIN_IDLE_S = 30.0, 10.0
#: Slack on top of the stream's own length before the sending is cut off.
SEND_GRACE_S = 60.0
PROGRESS_S = 60.0
#: Bridge log levels counted (structlog's `add_log_level` names).
COUNTED_LEVELS = ("warning", "error", "critical")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0,
                        help="how long the stream runs (default 60)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="messages per second, each way (default 20)")
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds of the stream before the RSS baseline (default 60)")
    parser.add_argument("--sample", type=float, default=10.0,
                        help="seconds between RSS / CPU samples (default 10)")
    parser.add_argument("--prosody-gc", choices=PROSODY_GC, default="generational",
                        help="Prosody's garbage collector (default generational, as bench.run)")
    parser.add_argument("--json", type=Path,
                        help="also write the result, every sample included, to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.sample <= 0 or args.warmup < 0:
        parser.error("--rate and --sample must be above 0, --warmup at least 0")
    if args.minutes * 60 < args.warmup + 2 * args.sample:
        parser.error(f"--minutes {args.minutes:g} leaves fewer than two samples after the "
                     f"{args.warmup:g} s warm-up")
    return args


class Direction:
    """One way of the stream: the sender's messages counted as they are written, the
    observer's arrivals tracked by tag."""

    def __init__(self, name: str, sender: Endpoint, observer: Endpoint, tag: str,
                 n: int) -> None:
        self.name, self.tag, self.n = name, tag, n
        self.sent = 0
        self.arrivals = observer.board.track(tag, n)
        self._write = sender.send
        self.sender = dataclasses.replace(sender, send=self._counted)

    def _counted(self, text: str):
        written = self._write(text)
        self.sent += 1
        return written

    async def run(self, rate: float) -> None:
        await pace(self.sender, self.tag, self.n, rate)

    async def drain(self) -> None:
        """Until everything sent has arrived, or the bounded wait gives up."""
        self.arrivals.expected = self.sent  # less than n if the stream was cut short
        if self.arrivals.received >= self.sent:
            self.arrivals.complete.set()
        await self.arrivals.wait(DRAIN_S, idle=DRAIN_IDLE_S)

    def result(self) -> dict:
        a = self.arrivals
        lat = sorted(ns / 1e6 for ns in a.latencies_ns.values())

        def ms(q: float) -> float | None:
            value = percentile(lat, q)
            return None if value is None else round(value, 3)
        return {"direction": self.name, "sent": self.sent, "received": a.received,
                "lost": self.sent - a.received, "duplicated": a.duplicates,
                "out_of_order": a.out_of_order, "p50_ms": ms(50), "p99_ms": ms(99),
                "max_ms": round(lat[-1], 3) if lat else None}


class SoakBridge(MucBridge):
    """muc-bridge with only the link the soak streams through (room@muc.localhost <->
    #room): bench.run's idle n-way link would only add to what is measured."""

    def config(self) -> dict:
        config = super().config()
        del config["links"]["nway"]
        return config


@dataclasses.dataclass(frozen=True)
class Sample:
    t_s: float  # seconds since the stream started
    cpu_s: float
    rss_kib: int


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.prosody = BenchProsody(workdir / "prosody", gc=args.prosody_gc)
        self.ircd = BenchInspIRCd(workdir / "inspircd")
        self.bridge = SoakBridge(workdir / "muc-bridge", self.prosody, self.ircd)
        self.clients: list[XmppClient | IrcClient] = []
        self.ways: list[Direction] = []
        self.samples: list[Sample] = []
        self.failures: list[str] = []
        self.servers_cpu: dict[str, float] = {}
        self.stream_s = 0.0
        self.sending = False
        self.interrupted = False
        #: Set when the stream ends: all sent, a failure, or a signal.
        self.stop = asyncio.Event()

    # -- the run -------------------------------------------------------------------

    async def run(self) -> None:
        await self.prosody.start()
        await self.ircd.start()
        await self.prosody.register(USER, PASSWORD)
        await self.bridge.start()
        phase = await self._connect()
        await scenarios.ready(phase)
        n = round(self.args.minutes * 60 * self.args.rate)
        self.ways = [Direction("irc_to_xmpp", phase.irc, phase.xmpp, phase.tag("soak_i"), n),
                     Direction("xmpp_to_irc", phase.xmpp, phase.irc, phase.tag("soak_x"), n)]
        servers = {"prosody": self.prosody._process.pid, "inspircd": self.ircd._process.pid}
        before = {name: sample(pid).cpu_s for name, pid in servers.items()}
        print(f"soak: {n} messages each way at {self.args.rate:g}/s for "
              f"{self.args.minutes:g} min; bridge pid {self.bridge.pid}, log "
              f"{self.bridge.log_path}", flush=True)
        start = asyncio.get_running_loop().time()
        self._sample(start)
        watcher = asyncio.create_task(self._watch(start))
        try:
            await self._stream()
            self.stream_s = asyncio.get_running_loop().time() - start
            await asyncio.gather(*(way.drain() for way in self.ways))
        finally:
            watcher.cancel()
            await asyncio.wait([watcher])
        if self.bridge.process.returncode is None:
            self._sample(start)
        self.servers_cpu = {name: round(sample(pid).cpu_s - before[name], 2)
                            for name, pid in servers.items()}

    async def _connect(self) -> Phase:
        prosody, ircd = self.prosody, self.ircd
        xmpp = await XmppClient(prosody.host, prosody.c2s_port, prosody.domain, USER,
                                PASSWORD).login()
        self.clients.append(xmpp)
        irc = await IrcClient(ircd.host, ircd.port, "ibench").connect()
        self.clients.append(irc)
        await irc.join(CHANNEL)
        room = prosody.room_jid(ROOM)
        await xmpp.join(room, NICK)
        return Phase(self.bridge.name, self.bridge.pid, xmpp_endpoint("xmpp", xmpp, room, NICK),
                     irc_endpoint("irc", irc, CHANNEL))

    async def _stream(self) -> None:
        """Both ways at once until `stop`: both have sent everything, a failure or a
        signal; or until the stream's length plus a grace has passed."""
        self.sending = True
        sending = asyncio.create_task(self._send_both())
        try:
            await asyncio.wait_for(self.stop.wait(), self.args.minutes * 60 + SEND_GRACE_S)
        except TimeoutError:
            self.failures.append("the stream did not finish in time (event loop stalled?)")
        finally:
            self.sending = False
            sending.cancel()
            await asyncio.wait([sending])

    async def _send_both(self) -> None:
        await asyncio.gather(*(self._send(way) for way in self.ways))
        self.stop.set()

    async def _send(self, way: Direction) -> None:
        try:
            await way.run(self.args.rate)
        except (IrcError, XmppError, OSError) as exc:
            self._fail(f"{way.name}: sending stopped after {way.sent} messages: {exc}")

    async def _watch(self, start: float) -> None:
        """A sample every `--sample` seconds on an absolute schedule, a progress line
        every minute; a dead bridge stops the stream. Bounded by the stream's length."""
        loop = asyncio.get_running_loop()
        every = self.args.sample
        end = start + self.args.minutes * 60 + SEND_GRACE_S + DRAIN_S
        next_progress = start + PROGRESS_S
        for i in range(1, math.ceil((end - start) / every) + 1):
            await asyncio.sleep(max(0.0, start + i * every - loop.time()))
            if self.bridge.process.returncode is not None:
                self._fail(f"the bridge exited ({self.bridge.process.returncode}):\n"
                           f"{self.bridge.log_tail()}")
                return
            self._sample(start)
            if loop.time() >= next_progress:
                next_progress += PROGRESS_S
                self._progress()

    def _sample(self, start: float) -> None:
        s = sample(self.bridge.pid)
        t = asyncio.get_running_loop().time() - start
        self.samples.append(Sample(round(t, 2), s.cpu_s, s.rss_kib))

    def _progress(self) -> None:
        last = self.samples[-1]
        ways = "  ".join(f"{w.name} {w.arrivals.received}/{w.sent}" for w in self.ways)
        print(f"  [{int(last.t_s) // 60:3d}:{int(last.t_s) % 60:02d}] {ways}  "
              f"RSS {last.rss_kib:,} KiB  CPU {last.cpu_s:.1f} s", flush=True)

    def _fail(self, failure: str) -> None:
        self.failures.append(failure)
        self.stop.set()

    def interrupt(self) -> bool:
        """A signal: end the stream early and report (True), or, outside the stream,
        let the caller abort (False)."""
        if not self.sending:
            return False
        self.interrupted = True
        self.stop.set()
        return True

    async def close(self) -> None:
        for client in self.clients:
            client.close()
        with contextlib.suppress(Exception):
            await self.bridge.stop()
        for server in (self.prosody, self.ircd):
            with contextlib.suppress(Exception):
                await server.stop()

    # -- the result ----------------------------------------------------------------

    def result(self) -> dict:
        ways = [way.result() for way in self.ways]
        after = [s for s in self.samples if s.t_s >= self.args.warmup]
        first, last = (self.samples[0], self.samples[-1]) if self.samples else (None, None)
        sent = sum(w["sent"] for w in ways)
        cpu = last.cpu_s - first.cpu_s if first else None
        events, not_json = log_events(self.bridge.log_path)
        return {
            "minutes": self.args.minutes, "rate": self.args.rate,
            "stream_s": round(self.stream_s, 1), "interrupted": self.interrupted,
            "failures": self.failures, "ways": ways,
            "warmup_s": self.args.warmup, "samples_after_warmup": len(after),
            "rss_start_kib": after[0].rss_kib if after else None,
            "rss_end_kib": last.rss_kib if last else None,
            "rss_min_kib": min(s.rss_kib for s in after) if after else None,
            "rss_max_kib": max(s.rss_kib for s in after) if after else None,
            "rss_slope_kib_per_h": rss_slope(after),
            "rss_slope_second_half_kib_per_h": rss_slope(after[len(after) // 2:]),
            "bridge_cpu_s": round(cpu, 2) if cpu is not None else None,
            "cpu_s_per_1k": round(cpu / (sent / 1000), 4) if cpu is not None and sent else None,
            "servers_cpu_s": self.servers_cpu,
            "store_kib": store_kib(self.bridge.workdir),
            "log_events": dict(events.most_common()), "log_lines_not_json": not_json,
        }

    def ok(self, result: dict) -> bool:
        return not self.failures and not any(w["lost"] or w["duplicated"]
                                             for w in result["ways"])


def rss_slope(samples: list[Sample]) -> float | None:
    """Least-squares slope of RSS over time, KiB per hour (None under two samples)."""
    if len(samples) < 2:
        return None
    fit = statistics.linear_regression([s.t_s / 3600 for s in samples],
                                       [s.rss_kib for s in samples])
    return round(fit.slope, 1)


def log_events(path: Path) -> tuple[collections.Counter, int]:
    """The bridge's events at warning and above, counted by "level event", and the
    number of lines that are not JSON (tracebacks, stray prints)."""
    events: collections.Counter = collections.Counter()
    not_json = 0
    with contextlib.suppress(FileNotFoundError), open(path, errors="replace") as log:
        for line in log:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                not_json += 1
                continue
            if not isinstance(entry, dict):
                not_json += 1
            elif entry.get("level") in COUNTED_LEVELS:
                events[f"{entry['level']} {entry.get('event')}"] += 1
    return events, not_json


def store_kib(workdir: Path) -> int:
    """The bridge's SQLite store on disk, its journal files included."""
    return sum(p.stat().st_size for p in workdir.glob("bridge.db*")) // 1024


def print_result(result: dict, header: dict) -> None:
    """The result as markdown, ready for docs/performance.md."""
    fmt = report.fmt
    print(f"\nCommand: `{header['command']}`  \nDate: {header['date']}  \n"
          f"Machine: {header['machine']}  \nVersions: {header['versions']}  \n"
          f"Stream: {result['stream_s']:g} s at {result['rate']:g} msg/s each way"
          + (" (interrupted)" if result["interrupted"] else "") + "\n")
    columns = ("sent", "received", "lost", "duplicated", "out_of_order", "p50_ms", "p99_ms",
               "max_ms")
    print("| direction | " + " | ".join(c.replace("_", " ") for c in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for way in result["ways"]:
        print(f"| {way['direction']} | " + " | ".join(fmt(way[c]) for c in columns) + " |")
    slope, late = result["rss_slope_kib_per_h"], result["rss_slope_second_half_kib_per_h"]
    print(f"\nBridge RSS after the {result['warmup_s']:g} s warm-up: "
          f"{fmt(result['rss_start_kib'])} KiB; at the end: {fmt(result['rss_end_kib'])} KiB "
          f"(min {fmt(result['rss_min_kib'])}, max {fmt(result['rss_max_kib'])}); slope "
          f"{'–' if slope is None else f'{slope:+,.1f}'} KiB/h (least squares over "
          f"{result['samples_after_warmup']} samples; over their second half "
          f"{'–' if late is None else f'{late:+,.1f}'} KiB/h)  ")
    servers = ", ".join(f"{k} {v:g} s" for k, v in result["servers_cpu_s"].items())
    print(f"Bridge CPU: {fmt(result['bridge_cpu_s'])} s, {fmt(result['cpu_s_per_1k'])} s per "
          f"1000 messages sent (both ways); meanwhile {servers}  ")
    print(f"Bridge store on disk at the end: {fmt(result['store_kib'])} KiB  ")
    events = result["log_events"]
    print("Bridge log, warning and above: "
          + (", ".join(f"`{k}` x{v}" for k, v in events.items()) if events else "none")
          + f"; lines not JSON: {result['log_lines_not_json']}")
    for failure in result["failures"]:
        print(f"\n**Failed:** {failure}")


def _on_signals(soak: Soak) -> None:
    """The first SIGINT / SIGTERM during the stream ends it early (the result is still
    printed); any other cancels the run, whose `finally` stops every process."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()

    def handle() -> None:
        if not soak.interrupt():
            task.cancel()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handle)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs()
    workdir = Path(tempfile.mkdtemp(prefix="muc-bridge-soak-"))
    soak = Soak(args, workdir)
    _on_signals(soak)
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        try:
            await soak.run()
        except Exception as exc:  # noqa: BLE001 - reported with what was measured so far
            soak.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            await soak.close()
        machine, versions = report.machine(), report.versions()
        header = {
            "command": "python -m bench.soak " + shlex.join(sys.argv[1:] if argv is None
                                                            else argv),
            "date": started.strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{machine['cpus']} CPUs ({machine['cpu_model']}), "
                       f"{machine['ram_gib']} GiB RAM, Linux {machine['kernel']}",
            "versions": ", ".join(f"{k} {versions[k]}"
                                  for k in ("prosody", "inspircd", "python", "muc-bridge")),
        }
        result = soak.result()
        print("\n" + json.dumps({**header, **result}), flush=True)
        print_result(result, header)
        if args.json:
            args.json.write_text(json.dumps(
                {**header, **result, "samples": [dataclasses.asdict(s) for s in soak.samples]},
                indent=1) + "\n")
            print(f"\nresult and samples written to {args.json}")
    finally:
        if args.keep:
            print(f"\nlogs and configs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if soak.interrupted:
        return 130
    return 0 if soak.ok(result) else 1


if __name__ == "__main__":
    try:
        raise SystemExit(asyncio.run(main()))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\naborted: servers and bridge stopped", file=sys.stderr)
        raise SystemExit(130) from None
