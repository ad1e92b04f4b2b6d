"""Fault scenarios: the bridge between real servers, every upstream link through a fault proxy,
numbered messages flowing both ways while something breaks.

    async with FaultRun("irc blackhole", tmp_path, networks=(XMPP, IRC)) as run:
        await run.blackhole(IRC, seconds=10)
        result = await run.finish()
    result.check()

Set-up: Prosody (MUC `room@muc.localhost`), InspIRCd (`#room`) and, when SILC is in the
scenario, the SILC test server in a process of its own (channel `room`). The bridge (in-process
by default, or `python -m bridge run` with JSON logs when it must be killed) reaches each server
through its own `FaultProxy`: component port, IRC port, SILC port. People talk directly to their
servers: alice in the MUC, bob on IRC (with `echo-message`), sam on SILC (sol, a second SILC user,
only watches). Each sends `<network>-<n>` (`xmpp-00017`) at `RATE` per second from the start to
the end of the run. Links run with `ping_timeout: SHORT_TIMEOUT` unless a scenario asks for the
defaults.

Faults, each marking its start and end: `blackhole(network, seconds)` and `reset(network)` of the
bridge's link (see FaultProxy), `inject(network, data, boundary)` toward the bridge between two
lines or stanzas, `kill_server(network)` (SIGKILL, started again on the same ports; its person
comes back and talks for a second while the bridge is still refused, so every run has messages
sent while the bridge was away; the fault ends when the bridge may connect again), and
`kill_bridge()` (a bridge run as a subprocess). Blackholes, resets and server kills strike at the
worst moment for delivery, not at random: just after the bridge wrote a relayed message to that
server, which has taken it but not yet confirmed it; so a run's result does not depend on luck.

What is recorded, per message: when it was sent, when its own server confirmed it (the MUC
reflects it to alice; InspIRCd echoes it to bob; sol sees sam's), and when it arrived at each
other network (live, or marked as late with an XEP-0203 delay). Per run: when the
fault started and ended, the bridge's log events (structlog, captured in-process or parsed from
the subprocess's JSON lines), the notices the bridge posted.

How "reached the bridge" is counted (what the scenario holds the bridge to): a message counts
once its own server confirmed it, because from then on it was the bridge's to take (by being
connected, by rejoining with history, by asking again). Excused are only messages that arrived
nowhere and that the bridge owned up to: a notice of the bridge at another endpoint saying that
messages from the message's origin (`irc/...`, `xmpp/...`, `silc/...`) "may be missing", for a
time span containing the message's sending (read from the notice, or from the fault's start to
the notice when its times cannot be read). A message that arrived at one endpoint but not at
another reached the bridge and is lost where it is missing; nothing is excused there. A message
that its own server never confirmed (a send into a connection that the kill of that very server
cut) is not counted at all.

Measured: detection (the first bridge log event after the fault's start that sounds like a
failure on the faulted network: names change while the code is built, so the match is loose and
"not seen" is reported, never failed on); lost, duplicated and excused per direction; time to
relay again (per direction, from the fault's end to the first arrival of a message sent after
it; the run waits up to `RESUME_LIMIT` for it).
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import itertools
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from bridge.demo.servers import InspIRCd, Prosody, ServerFailed, ServerMissing, free_port
from tests.faults.proxy import TO_SERVER, FaultProxy
from tests.faults.silc_server import REPO, SilcServerProcess
from tests.integration.bridge_harness import config_text, running_bridge
from tests.integration.clients import GroupMessage, IrcLine, IrcUser, XmppUser, wait_until
from tests.servers.silc.user import Joined, TestUser

XMPP, IRC, SILC = "xmpp", "irc", "silc"  # network names in the bridge's config, and origins
ROOM = "room@muc.localhost"
CHAN = "#room"
SILC_CHANNEL = "room"
BOT, RELAY = "bridge", "relay"

RATE = 20.0  # messages per second from each person
#: Lines a cut IRC or SILC link may leave unconfirmed at the moment it dies: those written in
#: the last barrier's wait (0.2 s of RATE) and its round trip. They may arrive twice.
IN_FLIGHT = 8
SHORT_TIMEOUT = 6.0  # ping_timeout of every link in the fast scenarios (the default is 25)
RESUME_LIMIT = 30.0  # relaying must resume this soon after the fault's end
TAIL = 2.0  # streams go on this long after relaying resumed
QUIET_END = 4.0  # the drain ends when nothing more arrived for this long
NUMBERED = re.compile(r"\b(xmpp|irc|silc)-(\d{5})\b")
MISSING = re.compile(r"missing", re.I)
NOTICE_TIMES = re.compile(r"between (\d\d):(\d\d):(\d\d) UTC and (\d\d):(\d\d):(\d\d) UTC")
#: Bridge events that sound like a link noticed down (matched in the event name).
LINK_DOWN = re.compile(r"dead|silent|lost|offline|disconnect|timeout|closed|reset|reconnect|error|failed",
                       re.I)
#: ... and like bad input noticed.
BAD_INPUT = re.compile(r"malformed|parse|invalid|not.well|dropped|skipped|error|refused|unframeable",
                       re.I)
#: What a chunk the bridge writes toward each server looks like when it carries a relayed
#: message (an IRC barrier PING alone is answered at once: no moment to strike). SILC: any.
RELAYED = {XMPP: lambda chunk: b"<message" in chunk,
           IRC: lambda chunk: b"PRIVMSG" in chunk and b"PING" not in chunk,
           SILC: bool}
SERVER_TAKEN = 0.02  # the server has read and handled what it was sent after this long
#: Event name prefixes per network, for events that do not say `network=` (stdlib records are
#: named after their logger: `slixmpp...`, `irc.client...`).
PREFIXES = {XMPP: ("xmpp_", "muc_", "component_", "slixmpp"), IRC: ("irc_", "irc."), SILC: ("silc_",)}

LOG_LINE_LIMIT = 1 << 22  # the longest bridge log line read whole from a subprocess
#: One line per scenario run, printed at the end of the session (tests/faults/conftest.py).
RESULTS: list[str] = []


# -- what happened to each message ---------------------------------------------------------------

@dataclass
class Numbered:
    origin: str
    n: int
    sent: float
    confirmed: float | None = None
    live: dict[str, list[float]] = field(default_factory=dict)  # network -> arrival times
    delayed: dict[str, int] = field(default_factory=dict)  # network -> copies marked as late

    def copies(self, network: str) -> int:
        """How often it reached `network`, live or marked as late (XEP-0203 delay: a bridge
        relaying what it missed; people join without history, so none comes from the room)."""
        return len(self.live.get(network, ())) + self.delayed.get(network, 0)

    def first_arrival(self, network: str) -> float | None:
        times = self.live.get(network)
        return min(times) if times else None


@dataclass(frozen=True)
class Notice:
    network: str  # where it was posted
    at: float
    text: str


class Ledger:
    """Everything sent and received, by number."""

    def __init__(self) -> None:
        self.messages: dict[tuple[str, int], Numbered] = {}
        self.counters = {XMPP: itertools.count(1), IRC: itertools.count(1), SILC: itertools.count(1)}
        self.notices: list[Notice] = []
        self.loops: list[tuple[str, str]] = []  # (network, text): our own message relayed back
        self.last_arrival = 0.0

    def next_text(self, origin: str) -> tuple[Numbered, str]:
        n = next(self.counters[origin])
        record = Numbered(origin, n, time.time())
        self.messages[(origin, n)] = record
        return record, f"{origin}-{n:05d}"

    def confirm(self, text: str) -> None:
        for origin, n in _tokens(text):
            record = self.messages.get((origin, n))
            if record is not None and record.confirmed is None:
                record.confirmed = time.time()

    def arrived(self, network: str, text: str, delayed: bool = False) -> None:
        now = time.time()
        tokens = _tokens(text)
        if not tokens and MISSING.search(text):
            self.notices.append(Notice(network, now, text))
        for origin, n in tokens:
            record = self.messages.get((origin, n))
            if origin == network or record is None:
                self.loops.append((network, text))
            elif delayed:
                record.delayed[network] = record.delayed.get(network, 0) + 1
            else:
                record.live.setdefault(network, []).append(now)
            self.last_arrival = now

    def of(self, origin: str) -> list[Numbered]:
        return [m for m in self.messages.values() if m.origin == origin]


def _tokens(text: str) -> list[tuple[str, int]]:
    return [(origin, int(n)) for origin, n in NUMBERED.findall(text)]


# -- the bridge, in this process or in its own -------------------------------------------------

class LogEvents:
    """The bridge's structlog events as (time, event dict), oldest first."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict]] = []

    def add(self, event: dict) -> None:
        self.events.append((time.time(), event))

    def first(self, after: float, network: str, pattern: re.Pattern) -> tuple[float, str] | None:
        for at, event in self.events:
            name = str(event.get("event", ""))
            if at < after or name.startswith("silc_test_") or not pattern.search(name):
                continue
            logger = str(event.get("logger", ""))  # a stdlib record in the subprocess's JSON
            if (event.get("network") == network or name.startswith(PREFIXES[network])
                    or logger.startswith(PREFIXES[network])):
                return at, name[:60]
        return None

    def leaking(self, secrets: list[str]) -> list[dict]:
        """Events above debug that carry any of `secrets` (message bodies must not)."""
        found = []
        for _, event in self.events:
            if event.get("level", "info") == "debug" or str(event.get("event")).startswith("silc_test_"):
                continue
            text = json.dumps(event, default=str)
            if any(secret in text for secret in secrets) or NUMBERED.search(text):
                found.append(event)
        return found


@contextlib.contextmanager
def captured_logs(events: LogEvents):
    """Every structlog event of this process goes to `events` (and nowhere else) meanwhile, and
    so do the records of stdlib loggers (slixmpp's, asyncio's) at warning and above, as
    `{"event": "<logger>: <message>", "level": ...}`."""
    saved = structlog.get_config()

    def record(_logger, method: str, event_dict: dict) -> dict:
        events.add({**event_dict, "level": method})
        raise structlog.DropEvent

    class Handler(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            events.add({"event": f"{rec.name}: {rec.getMessage()}", "level": rec.levelname.lower()})

    handler = Handler(logging.WARNING)
    root = logging.getLogger()
    structlog.configure(processors=[record], cache_logger_on_first_use=False)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        structlog.configure(**saved)


class InProcessBridge:
    """`tests.integration.bridge_harness.running_bridge`; its log is caught by `captured_logs`."""

    def __init__(self, config: str) -> None:
        self.config = config
        self._stack: contextlib.AsyncExitStack | None = None

    async def start(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        await self._stack.enter_async_context(running_bridge(self.config))

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None

    async def kill(self) -> None:
        raise NotImplementedError("an in-process bridge cannot be killed: use bridge='subprocess'")


class SubprocessBridge:
    """`python -m bridge run -c <file>` from the worktree, JSON log lines parsed as they come."""

    def __init__(self, config: str, events: LogEvents, workdir: Path) -> None:
        self.path = workdir / "bridge.yaml"
        self.path.write_text(config)
        self.log_path = workdir / "bridge.log"
        self.events = events
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "run", "-c", str(self.path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, cwd=REPO, start_new_session=True, limit=LOG_LINE_LIMIT)
        self._reader = asyncio.create_task(self._read(self._process.stderr))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        with open(self.log_path, "ab") as log:
            while True:
                try:
                    raw = await stream.readline()
                except ValueError:  # longer than the limit: dropped by the reader, noted here
                    self.events.add({"event": "log line over 4 MiB", "level": "raw"})
                    continue
                if not raw:
                    break
                log.write(raw)
                try:
                    event = json.loads(raw)
                except ValueError:
                    event = {"event": raw.decode(errors="replace").rstrip(), "level": "raw"}
                self.events.add(event if isinstance(event, dict) else {"event": str(event)})

    async def kill(self) -> None:
        await self._end(kill=True)

    async def stop(self) -> None:
        await self._end(kill=False)

    async def _end(self, kill: bool) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                if kill:
                    process.kill()
                else:
                    process.terminate()
            try:
                async with asyncio.timeout(8.0):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._reader


# -- the result ----------------------------------------------------------------------------------

@dataclass
class Direction:
    origin: str
    dest: str
    counted: int = 0  # confirmed by the origin's server, not excused
    excused: int = 0
    unconfirmed: int = 0
    lost: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    relay_again: float | None = None  # seconds from the fault's end

    def summary(self) -> str:
        text = f"{self.origin}->{self.dest} {self.counted} lost {len(self.lost)} dup {len(self.duplicated)}"
        for name in ("excused", "unconfirmed"):
            if getattr(self, name):
                text += f" {name} {getattr(self, name)}"
        return text


@dataclass
class Result:
    scenario: str
    fault: float  # how long the fault lasted, seconds
    detection: tuple[float, str] | None  # seconds after the fault's start, event name
    detection_expected: bool
    directions: list[Direction]
    notices: list[Notice]
    loops: list[tuple[str, str]]
    leaks: list[dict]

    @property
    def relay_again(self) -> float | None:
        times = [d.relay_again for d in self.directions]
        return None if None in times else max(times)

    def line(self) -> str:
        if not self.detection_expected:
            detected = "n/a"
        elif self.detection is None:
            detected = "not seen"
        else:
            detected = f"{self.detection[0]:.1f}s ({self.detection[1]})"
        again = "never" if self.relay_again is None else f"{self.relay_again:.1f}s"
        parts = [f"{self.scenario}: fault {self.fault:.1f}s, detected {detected}",
                 *(d.summary() for d in self.directions), f"relaying again after {again}"]
        if self.notices:
            parts.append(f"{len(self.notices)} 'may be missing' notices")
        if self.loops:
            parts.append(f"{len(self.loops)} echoed back")
        if self.leaks:
            parts.append(f"{len(self.leaks)} log events with message text")
        return " | ".join(parts)

    def check(self, bodies_in_logs: bool = False, in_flight: int = 0) -> None:
        """What a user would check: nothing that reached the bridge lost or duplicated,
        nothing echoed back, relaying again within RESUME_LIMIT of the fault's end.
        With `bodies_in_logs`, also that no log line above debug carries message text.
        `in_flight`: duplicates allowed toward IRC and SILC when the fault cut a link to
        one of them: those protocols carry no message ids, so lines the server took just
        before the link died, whose confirmation died with it, are sent again (the README's
        delivery promise says so)."""
        problems = []
        for d in self.directions:
            if d.lost:
                problems.append(f"{d.origin}->{d.dest}: {len(d.lost)} lost (e.g. {d.lost[:5]})")
            allowed = in_flight if d.dest in (IRC, SILC) else 0
            if len(d.duplicated) > allowed:
                problems.append(f"{d.origin}->{d.dest}: {len(d.duplicated)} duplicated "
                                f"(e.g. {d.duplicated[:5]})")
            if d.relay_again is None or d.relay_again > RESUME_LIMIT:
                problems.append(f"{d.origin}->{d.dest}: not relaying again within {RESUME_LIMIT:g} s")
        if self.loops:
            problems.append(f"{len(self.loops)} of our own messages came back, e.g. {self.loops[0]}")
        if bodies_in_logs and self.leaks:
            problems.append(f"{len(self.leaks)} log events above debug carry message text, "
                            f"e.g. {str(self.leaks[0])[:200]}")
        assert not problems, self.line() + "\n  " + "\n  ".join(problems)


# -- a run ---------------------------------------------------------------------------------------

class FaultRun:
    """Servers, proxies, people and the bridge for one scenario; see the module docstring.
    `async with` sets everything up and starts the streams; the fault methods break something
    and mark the fault's start and end; `finish()` measures."""

    def __init__(self, scenario: str, tmp_path: Path, *, networks: tuple[str, ...] = (XMPP, IRC),
                 bridge: str = "inprocess", ping_timeout: float | None = SHORT_TIMEOUT) -> None:
        self.scenario = scenario
        self.tmp = tmp_path
        self.networks = networks
        self.bridge_mode = bridge
        self.ping_timeout = ping_timeout
        self.ledger = Ledger()
        self.events = LogEvents()
        self.proxies: dict[str, FaultProxy] = {}
        self.paused: set[str] = set()
        self.fault: tuple[str, float, float | None] | None = None  # (network, start, end)
        self.detect_pattern = LINK_DOWN
        self.secrets: list[str] = []  # text that must never be in the bridge's log above debug
        self._stack = contextlib.AsyncExitStack()
        self._senders: list[asyncio.Task] = []

    # -- set-up ----------------------------------------------------------------------------
    async def __aenter__(self) -> FaultRun:
        try:
            await self._setup()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._senders:
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        await self._stack.aclose()

    async def _setup(self) -> None:
        stack = self._stack
        if self.bridge_mode == "inprocess":
            stack.enter_context(captured_logs(self.events))
        # The room keeps 1000 messages of history (Prosody's default is 20): enough for a
        # rejoin to ask for all that was said during a few seconds' gap at RATE.
        self.prosody = Prosody(self.tmp / "prosody",
                               muc_options={"muc_room_default_history_length": 1000})
        self.inspircd = InspIRCd(self.tmp / "inspircd")
        for server in (self.prosody, self.inspircd):
            try:
                await server.start()
            except (ServerMissing, ServerFailed) as exc:
                raise AssertionError(str(exc)) from None
            stack.push_async_callback(server.stop)
        upstreams = {XMPP: (self.prosody.host, self.prosody.component_port),
                     IRC: (self.inspircd.host, self.inspircd.port)}
        if SILC in self.networks:
            self.silc = SilcServerProcess(free_port(), self.tmp / "silc-server.log")
            await self.silc.start()
            stack.push_async_callback(self.silc.stop)
            upstreams[SILC] = (self.silc.host, self.silc.port)
        for network, (host, port) in upstreams.items():
            if network in self.networks:
                proxy = FaultProxy(host, port, name=network)
                await proxy.start()
                stack.push_async_callback(proxy.close)
                self.proxies[network] = proxy

        await self._people()
        marks = self._marks()
        await self._start_bridge(self._config())
        await self._ready(marks, timeout=20.0)
        self._senders = [asyncio.create_task(self._send_loop(network), name=f"stream {network}")
                         for network in self.networks]
        await self._warm_up()

    async def _start_bridge(self, config: str) -> None:
        self.bridge = (InProcessBridge(config) if self.bridge_mode == "inprocess"
                       else SubprocessBridge(config, self.events, self.tmp))
        await self.bridge.start()
        self._stack.push_async_callback(self.bridge.stop)

    def _config(self) -> str:
        timeout = "" if self.ping_timeout is None else f", ping_timeout: {self.ping_timeout:g}"
        networks = (f"  {IRC}: {{type: irc, host: 127.0.0.1, port: {self.proxies[IRC].port}, "
                    f"tls: false, nick: {RELAY}, flood: {{burst: 100, interval: 0.005}}{timeout}}}\n")
        links = f"  room:\n    - xmpp: {ROOM}\n    - irc: {IRC}/{CHAN}\n"
        if SILC in self.networks:
            networks += (f"  {SILC}: {{type: silc, host: 127.0.0.1, port: {self.proxies[SILC].port}, "
                         f"nick: {RELAY}, key_dir: {self.tmp}/silc-keys{timeout}}}\n")
            links += f"    - silc: {SILC}/{SILC_CHANNEL}\n"
        component = "" if self.ping_timeout is None else f"  ping_timeout: {self.ping_timeout:g}\n"
        return (config_text(self.prosody, self.tmp, networks, links, component,
                            port=self.proxies[XMPP].port)
                + "log: {level: info, format: json}\n")

    async def _people(self) -> None:
        await self.prosody.register("alice", "alice-password")
        self.alice = await XmppUser.login(self.prosody, "alice", "alice-password")
        self._stack.push_async_callback(lambda: self.alice.close())
        self._hook(self.alice.messages, self._on_xmpp)
        await self.alice.join(ROOM, "alice")

        self._stack.push_async_callback(lambda: self.bob.close())
        await self._irc_login()
        if SILC in self.networks:
            self._stack.push_async_callback(self._silc_logout)
            await self._silc_login()

    @staticmethod
    def _hook(inbox, handler: Callable) -> None:
        """Have `handler` see each item as the client records it."""
        append = inbox.append

        def both(item) -> None:
            handler(item)
            append(item)
        inbox.append = both

    async def _irc_login(self) -> None:
        self.bob = IrcUser(self.inspircd, "bob", caps=("echo-message",))
        self._hook(self.bob.lines, self._on_irc)
        await self.bob.register()
        if "echo-message" not in self.bob.acked_caps:
            raise AssertionError("InspIRCd did not grant echo-message")
        await self.bob.join(CHAN)

    async def _silc_login(self) -> None:
        self.sam = TestUser("sam", self.silc.port)
        self.sol = TestUser("sol", self.silc.port)
        for user in (self.sam, self.sol):
            await user.connect()
            await user.join(SILC_CHANNEL)
        self.sam.on_text = lambda _channel, text: self.ledger.arrived(SILC, text)
        self.sol.on_text = lambda _channel, text: self.ledger.confirm(text) if text.startswith(SILC) else None

    async def _silc_logout(self) -> None:
        for user in (self.sam, self.sol):
            await user.close()

    def _marks(self) -> tuple[int, int, int]:
        silc = len(self.sam.events) if SILC in self.networks else 0
        return self.alice.presences.mark(), self.bob.lines.mark(), silc

    async def _ready(self, marks: tuple[int, int, int], timeout: float) -> None:
        """The bot is in the MUC, the relay client on the IRC channel (and on the SILC one)."""
        await self.alice.presences.wait_for(
            lambda p: p.room == ROOM and p.nick == BOT and p.available, timeout, after=marks[0])
        await self.bob.wait_for(
            lambda l: l.command == "JOIN" and l.nick == RELAY and l.target.lower() == CHAN, timeout,
            after=marks[1])
        if SILC in self.networks:
            await wait_until(lambda: any(isinstance(e, Joined) and e.nick == RELAY
                                         for e in list(self.sam.events)[marks[2]:]),
                             timeout, "the relay client on the SILC channel")

    async def _warm_up(self, timeout: float = 20.0) -> None:
        """Streams flowing: one message of each origin has arrived everywhere; then a second more."""
        def flowing() -> bool:
            return all(any(m.live.get(d) for m in self.ledger.of(o)) for o, d in self._pairs())
        await wait_until(flowing, timeout, "messages flowing every way before the fault")
        await asyncio.sleep(1.0)

    def _pairs(self) -> list[tuple[str, str]]:
        return [(o, d) for o in self.networks for d in self.networks if o != d]

    # -- people talk -------------------------------------------------------------------------
    async def _send_loop(self, network: str) -> None:
        period = 1.0 / RATE
        send = {XMPP: self._say_xmpp, IRC: self._say_irc, SILC: self._say_silc}[network]
        next_at = time.monotonic()
        while True:
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if network not in self.paused:
                record, text = self.ledger.next_text(network)
                try:
                    await send(text)
                except (AssertionError, ConnectionError, OSError, KeyError):
                    record.confirmed = None  # never left: it cannot count

    async def _say_xmpp(self, text: str) -> None:
        self.alice.say(ROOM, text)

    async def _say_irc(self, text: str) -> None:
        self.bob.privmsg(CHAN, text)

    async def _say_silc(self, text: str) -> None:
        await self.sam.say(SILC_CHANNEL, text)

    def _on_xmpp(self, msg: GroupMessage) -> None:
        if msg.room != ROOM or msg.body is None:
            return
        if msg.nick == "alice":
            self.ledger.confirm(msg.body)
        else:
            self.ledger.arrived(XMPP, msg.body, delayed=msg.delayed)

    def _on_irc(self, line: IrcLine) -> None:
        if line.command not in ("PRIVMSG", "NOTICE") or line.target.lower() != CHAN:
            return
        if line.nick == "bob":
            self.ledger.confirm(line.text)
        else:
            self.ledger.arrived(IRC, line.text)

    # -- faults ------------------------------------------------------------------------------
    async def _after_a_write(self, network: str) -> None:
        """Wait for the worst moment for delivery: just after the bridge wrote a relayed
        message to the server of `network` (`SERVER_TAKEN` later, so the server has taken it
        and not yet confirmed it: an IRC barrier, a MUC reflection, are still on the way)."""
        with contextlib.suppress(TimeoutError):  # a quiet link: any moment will do
            await self.proxies[network].forwarded(TO_SERVER, RELAYED[network])
        await asyncio.sleep(SERVER_TAKEN)

    def _start_fault(self, network: str) -> None:
        self.fault = (network, time.time(), None)

    def _end_fault(self) -> None:
        network, start, _ = self.fault
        self.fault = (network, start, time.time())

    async def blackhole(self, network: str, seconds: float) -> None:
        """The link of `network` becomes a dead route for `seconds` (see FaultProxy)."""
        await self._after_a_write(network)
        self._start_fault(network)
        self.proxies[network].blackhole()
        await asyncio.sleep(seconds)
        self.proxies[network].pass_()
        self._end_fault()

    async def reset(self, network: str) -> None:
        """Every connection of the link ends with an RST, at once."""
        await self._after_a_write(network)
        self._start_fault(network)
        self.proxies[network].reset()
        self._end_fault()

    async def inject(self, network: str, data: bytes, boundary: tuple[bytes, ...],
                     secret: str = "") -> None:
        """Bytes written into the link toward the bridge, between two units (lines, stanzas);
        `secret`: a text in them that the bridge must not log above debug."""
        self.detect_pattern = BAD_INPUT
        if secret:
            self.secrets.append(secret)
        self._start_fault(network)
        await self.proxies[network].inject(data, "to_client", boundary)
        self._end_fault()

    async def kill_server(self, network: str, down: float = 2.0, talk: float = 1.0) -> None:
        """SIGKILL the server of `network` and start it again `down` seconds later (same ports,
        same data). Its person stops talking meanwhile, then comes back as a client would and
        talks for `talk` seconds while the bridge is still kept out (its proxy refuses), so that
        every run has messages sent while the bridge was away and a person back to see what the
        bridge delivers when it returns. The fault ends when the bridge may connect again."""
        server = {XMPP: self.prosody, IRC: self.inspircd, SILC: getattr(self, "silc", None)}[network]
        proxy = self.proxies[network]
        self.paused.add(network)
        await self._after_a_write(network)
        self._start_fault(network)
        proxy.refuse()
        await server.kill()
        await asyncio.sleep(down)
        await server.start()
        if network == XMPP:
            await self.alice.connect()  # and rejoins the room
        elif network == IRC:
            await self.bob.close()
            await self._irc_login()
        else:
            await self._silc_logout()
            await self._silc_login()
        self.paused.discard(network)
        await asyncio.sleep(talk)
        proxy.pass_()
        self._end_fault()

    async def kill_bridge(self, down: float = 1.0) -> None:
        """SIGKILL the bridge process; start it again `down` seconds later."""
        self.fault = ("bridge", time.time(), None)
        await self.bridge.kill()
        await asyncio.sleep(down)
        await self.bridge.start()
        self._end_fault()

    # -- measuring ---------------------------------------------------------------------------
    async def finish(self) -> Result:
        """Wait for relaying to resume (up to RESUME_LIMIT), let the streams run TAIL more,
        stop them, wait for the last messages, and count."""
        _, _, end = self.fault
        deadline = end + RESUME_LIMIT
        while time.time() < deadline and None in self._relay_again(end).values():
            await asyncio.sleep(0.1)
        await asyncio.sleep(TAIL)
        for task in self._senders:
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        stopped = time.time()
        while time.time() < stopped + RESUME_LIMIT:
            await asyncio.sleep(0.2)
            now = time.time()
            if self._all_delivered() or now - max(self.ledger.last_arrival, stopped) > QUIET_END:
                break
        result = self._result(end)
        RESULTS.append(result.line())
        print(result.line())
        return result

    def _relay_again(self, end: float) -> dict[tuple[str, str], float | None]:
        again: dict[tuple[str, str], float | None] = {}
        for origin, dest in self._pairs():
            firsts = [t for m in self.ledger.of(origin) if m.sent >= end
                      and (t := m.first_arrival(dest)) is not None]
            again[(origin, dest)] = min(firsts) - end if firsts else None
        return again

    def _all_delivered(self) -> bool:
        return all(m.copies(d) for o, d in self._pairs() for m in self.ledger.of(o)
                   if m.confirmed is not None)

    def _excused(self, record: Numbered) -> bool:
        _, start, _ = self.fault
        for notice in self.ledger.notices:
            if notice.network == record.origin or not _names(notice.text, record.origin):
                continue
            since, until = _notice_span(notice, fallback=(start, notice.at))
            if since - 2.0 <= record.sent <= until + 2.0:
                return True
        return False

    def _result(self, end: float) -> Result:
        network, start, _ = self.fault
        again = self._relay_again(end)
        directions = {pair: Direction(*pair, relay_again=again[pair]) for pair in self._pairs()}
        for origin in self.networks:
            dests = [d for d in self.networks if d != origin]
            for m in self.ledger.of(origin):
                if m.confirmed is None:
                    for d in dests:
                        directions[(origin, d)].unconfirmed += 1
                    continue
                nowhere = not any(m.copies(d) for d in dests)
                if nowhere and self._excused(m):
                    for d in dests:
                        directions[(origin, d)].excused += 1
                    continue
                for d in dests:
                    direction = directions[(origin, d)]
                    direction.counted += 1
                    copies = m.copies(d)
                    if copies == 0:
                        direction.lost.append(m.n)
                    elif copies > 1:
                        direction.duplicated.append(m.n)
        detection = None
        if network in PREFIXES:
            found = self.events.first(start, network, self.detect_pattern)
            detection = (found[0] - start, found[1]) if found else None
        return Result(self.scenario, end - start, detection, network in PREFIXES, list(directions.values()),
                      self.ledger.notices, self.ledger.loops, self.events.leaking(self.secrets))


def _names(text: str, network: str) -> bool:
    """Whether a notice names `network` (`irc/#room`, `from IRC`; not inside another word)."""
    return re.search(rf"(?<![\w-]){network}(?![\w-])", text, re.I) is not None


def _notice_span(notice: Notice, fallback: tuple[float, float]) -> tuple[float, float]:
    """The times a gap notice names (`between 12:01:05 UTC and 12:03:00 UTC`), as Unix times
    on the notice's day; `fallback` when it names none (or they are far from the notice)."""
    match = NOTICE_TIMES.search(notice.text)
    if not match:
        return fallback
    day = time.gmtime(notice.at)
    h1, m1, s1, h2, m2, s2 = map(int, match.groups())
    since = calendar.timegm((day.tm_year, day.tm_mon, day.tm_mday, h1, m1, s1))
    until = calendar.timegm((day.tm_year, day.tm_mon, day.tm_mday, h2, m2, s2))
    if abs(until - notice.at) > 3600 or since > until:
        return fallback
    return since, until + 1.0  # the notice rounds down to the second
