"""The scenarios: each sends tagged messages through a gateway and returns one result row.

A `Phase` holds the load clients connected through one running gateway. Every wait
is bounded: a scenario that stalls reports what arrived (and the loss) and returns.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.irc_client import IrcClient
from bench.stats import Arrivals, Board, quiet, sample, token
from bench.xmpp_client import XmppClient

#: Messages written before the sender yields to the event loop (so observers'
#: arrival times are taken promptly while a burst is being written).
CHUNK = 32


@dataclass
class Endpoint:
    """One client in one room or channel, with the board counting what it sees there."""

    name: str
    #: Writes one message; may return an awaitable that completes without suspending.
    send: Callable[[str], Awaitable[None] | None]
    drain: Callable[[], Awaitable[None]]
    board: Board = field(default_factory=Board)


def xmpp_endpoint(name: str, client: XmppClient, room: str, nick: str) -> Endpoint:
    """The client's own messages, which the room reflects, are not counted."""
    board = Board()
    previous = client.on_message

    def on_message(msg_room: str, sender: str, body: str, now: int) -> None:
        if msg_room == room:
            if sender != nick:
                board.feed(body, now)
        elif previous is not None:
            previous(msg_room, sender, body, now)
    client.on_message = on_message
    return Endpoint(name, lambda text: client.send(XmppClient.groupchat(room, text)),
                    client.drain, board)


def irc_endpoint(name: str, client: IrcClient, channel: str) -> Endpoint:
    board = Board()
    previous = client.on_privmsg
    folded = channel.lower()

    def on_privmsg(nick: str, target: str, text: str, now: int) -> None:
        if target.lower() == folded:
            board.feed(text, now)
        elif previous is not None:
            previous(nick, target, text, now)
    client.on_privmsg = on_privmsg
    return Endpoint(name, lambda text: client.send(IrcClient.privmsg(channel, text)),
                    client.drain, board)


@dataclass
class Phase:
    """The clients of one gateway run: `xmpp` and `irc` sit in the two ends of the link."""

    gateway: str
    pid: int | None  # the gateway process; None for the no-gateway floor
    xmpp: Endpoint
    irc: Endpoint
    channel: str = ""
    irc_host: str = ""
    irc_port: int = 0
    observer: XmppClient | None = None  # for presence counts
    observer_room: str = ""
    nway: tuple[Endpoint, ...] = ()
    #: Other processes whose CPU use is reported beside the gateway's (name -> pid).
    others: dict[str, int] = field(default_factory=dict)
    _tags: itertools.count = field(default_factory=itertools.count)

    def tag(self, name: str) -> str:
        return f"{name}{next(self._tags)}"

    def busy_pids(self) -> list[int]:
        """The processes that must be idle before a measurement: gateway and servers."""
        return [pid for name, pid in (("gateway", self.pid), *self.others.items())
                if pid and name != "bench"]


# -- building blocks -------------------------------------------------------------------

async def _send(sender: Endpoint, text: str) -> None:
    sent = sender.send(text)
    if sent is not None:
        await sent


async def blast(sender: Endpoint, tag: str, n: int) -> int:
    """Send `n` tagged messages as fast as the socket takes them; returns the first send time."""
    first = time.perf_counter_ns()
    for seq in range(n):
        await _send(sender, token(tag, seq, time.perf_counter_ns()))
        if seq % CHUNK == CHUNK - 1:
            await sender.drain()
            await asyncio.sleep(0)
    return first


async def pace(sender: Endpoint, tag: str, n: int, rate: float) -> int:
    """Send `n` tagged messages at `rate` per second, on an absolute schedule."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    first = time.perf_counter_ns()
    for seq in range(n):
        delay = start + seq / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await _send(sender, token(tag, seq, time.perf_counter_ns()))
    return first


def _timeout(n: int, floor: float = 20.0) -> float:
    """A generous bound for `n` messages: even 200 msg/s finishes inside it."""
    return floor + n / 200


async def _measured(phase: Phase, body: Callable[[], Awaitable[dict]], messages: int) -> dict:
    """Run `body` between two samples of the gateway process (after it has gone quiet)
    and of the other processes; adds their CPU use to the row."""
    pids = {"gateway": phase.pid, **phase.others} if phase.pid else dict(phase.others)
    await quiet(phase.busy_pids())
    before = {name: sample(pid) for name, pid in pids.items()}
    row = await body()
    await quiet(phase.busy_pids())
    after = {name: sample(pid) for name, pid in pids.items()}
    cpu = {name: after[name].cpu_s - before[name].cpu_s for name in pids}
    if phase.pid:
        row["gateway_cpu_s"] = round(cpu["gateway"], 3)
        row["cpu_s_per_1k"] = round(cpu["gateway"] / (messages / 1000), 4) if messages else None
        row["rss_kib"] = after["gateway"].rss_kib
    row.update({f"cpu_{name}_s": round(cpu[name], 3) for name in phase.others})
    return row


async def ready(phase: Phase, timeout: float = 45.0) -> None:
    """Probe both directions until a message gets through each (the gateway is joined)."""
    for sender, observer in ((phase.irc, phase.xmpp), (phase.xmpp, phase.irc),
                             *_nway_pairs(phase)):
        tag = phase.tag("probe")
        arrivals = observer.board.track(tag, 1)
        try:
            async with asyncio.timeout(timeout):
                for seq in itertools.count():
                    await _send(sender, token(tag, seq, time.perf_counter_ns()))
                    try:
                        await asyncio.wait_for(arrivals.complete.wait(), 1.0)
                        break
                    except TimeoutError:
                        continue
        except TimeoutError:
            raise RuntimeError(f"{phase.gateway}: nothing from {sender.name} reached "
                               f"{observer.name} within {timeout} s") from None
        finally:
            observer.board.untrack(tag)


def _nway_pairs(phase: Phase) -> list[tuple[Endpoint, Endpoint]]:
    return [(a, b) for a in phase.nway for b in phase.nway if a is not b]


# -- scenarios -------------------------------------------------------------------------

async def one_way(phase: Phase, name: str, sender: Endpoint, observer: Endpoint, n: int,
                  rate: float | None = None) -> dict:
    """`n` messages from `sender` to `observer`: a burst, or paced at `rate`/s."""
    tag = phase.tag(name)
    arrivals = observer.board.track(tag, n)

    async def body() -> dict:
        send = blast(sender, tag, n) if rate is None else pace(sender, tag, n, rate)
        arrivals.first_send_ns = await send
        await arrivals.wait(_timeout(n, floor=20.0 + (n / rate if rate else 0)))
        return {"scenario": name, "gateway": phase.gateway, **arrivals.summary()}

    try:
        return await _measured(phase, body, n)
    finally:
        observer.board.untrack(tag)


async def irc_to_xmpp(phase: Phase, n: int) -> list[dict]:
    return [await one_way(phase, "irc_to_xmpp", phase.irc, phase.xmpp, n)]


async def xmpp_to_irc(phase: Phase, n: int) -> list[dict]:
    return [await one_way(phase, "xmpp_to_irc", phase.xmpp, phase.irc, n)]


async def paced(phase: Phase, n: int = 300, rate: float = 50.0) -> list[dict]:
    return [await one_way(phase, "paced_irc_to_xmpp", phase.irc, phase.xmpp, n, rate),
            await one_way(phase, "paced_xmpp_to_irc", phase.xmpp, phase.irc, n, rate)]


async def floor(phase: Phase, irc_a: Endpoint, irc_b: Endpoint, xmpp_a: Endpoint,
                xmpp_b: Endpoint, n: int, paced_n: int = 300, rate: float = 50.0) -> list[dict]:
    """No gateway: IRC user to IRC user in one channel, XMPP user to XMPP user in one MUC
    room; what the servers alone cost, burst and paced."""
    return [await one_way(phase, "irc_to_irc", irc_a, irc_b, n),
            await one_way(phase, "xmpp_to_xmpp", xmpp_a, xmpp_b, n),
            await one_way(phase, "paced_irc_to_irc", irc_a, irc_b, paced_n, rate),
            await one_way(phase, "paced_xmpp_to_xmpp", xmpp_a, xmpp_b, paced_n, rate)]


async def nway(phase: Phase, n: int, limits: dict[str, int] | None = None) -> list[dict]:
    """A burst from every endpoint at once (`n` each, or `limits[name]`); each message
    must reach every other endpoint exactly once and never come back to its own."""
    sends = {ep.name: (limits or {}).get(ep.name, n) for ep in phase.nway}
    tags = {ep.name: phase.tag(f"nway_{ep.name}_") for ep in phase.nway}
    tracked: list[tuple[str, Endpoint, Arrivals]] = []
    for ep in phase.nway:
        for other in phase.nway:
            if other is not ep:
                tracked.append((other.name, ep, ep.board.track(tags[other.name], sends[other.name])))
    # Endpoints never see their own messages (IRC servers do not echo them, the XMPP
    # endpoint skips its own nick): one of its own tag went round the bridge and back.
    echoes = [ep.board.track(tags[ep.name], sends[ep.name]) for ep in phase.nway]
    deliveries = sum(a.expected for _, _, a in tracked)

    async def body() -> dict:
        firsts = await asyncio.gather(*(blast(ep, tags[ep.name], sends[ep.name])
                                        for ep in phase.nway))
        first = min(firsts)
        for _, _, arrivals in tracked:
            arrivals.first_send_ns = first
        await asyncio.gather(*(a.wait(_timeout(deliveries)) for _, _, a in tracked))
        received = sum(a.received for _, _, a in tracked)
        last = max((a.last_arrival_ns or first) for _, _, a in tracked)
        elapsed = (last - first) / 1e9
        return {
            "scenario": "nway", "gateway": phase.gateway,
            "endpoints": len(phase.nway), "sent": sum(sends.values()), "sent_by": sends,
            "deliveries_expected": deliveries, "received": received,
            "lost": deliveries - received,
            "duplicates": sum(a.duplicates for _, _, a in tracked),
            "echoed": sum(a.received for a in echoes),
            "elapsed_s": round(elapsed, 4),
            "msg_per_s": round(received / elapsed, 1) if elapsed > 0 else None,
            "per_endpoint": {f"{src}->{ep.name}": a.received for src, ep, a in tracked},
        }

    try:
        return [await _measured(phase, body, deliveries)]
    finally:
        for ep in phase.nway:
            for tag in tags.values():
                ep.board.untrack(tag)


async def puppet_scale(phase: Phase, k: int) -> list[dict]:
    """`k` IRC users connect, join and each speak once; the time until all `k` messages
    reached the XMPP observer, next to when they reached an IRC observer (the IRC
    server's own floor, measured in the same run)."""
    tag = phase.tag(f"k{k}_")
    at_xmpp = phase.xmpp.board.track(tag, k)
    at_irc = phase.irc.board.track(tag, k)
    channel = phase.channel
    users = [IrcClient(phase.irc_host, phase.irc_port, f"{tag}u{i}") for i in range(k)]

    def speak(user: IrcClient) -> None:
        seq = int(user.nick.rpartition("u")[2])
        user.send(f"JOIN {channel}\r\n".encode()
                  + IrcClient.privmsg(channel, token(tag, seq, time.perf_counter_ns())))

    for user in users:
        user.on_welcome = speak
    presences_before = phase.observer.presences.get(phase.observer_room, 0)
    rss_before = sample(phase.pid).rss_kib

    async def body() -> dict:
        first = time.perf_counter_ns()
        at_xmpp.first_send_ns = at_irc.first_send_ns = first
        results = await asyncio.gather(*(asyncio.wait_for(u.start(), 30) for u in users),
                                       return_exceptions=True)
        failed = sum(isinstance(r, BaseException) for r in results)
        await asyncio.gather(at_xmpp.wait(60 + k * 0.1, idle=20),
                             at_irc.wait(60 + k * 0.1, idle=20))
        rss_peak = sample(phase.pid).rss_kib
        x, i = at_xmpp.summary(), at_irc.summary()
        return {
            "scenario": "puppet_scale", "gateway": phase.gateway, "k": k,
            "connect_failed": failed, "received": at_xmpp.received, "lost": k - at_xmpp.received,
            "duplicates": at_xmpp.duplicates,
            "all_arrived_s": x["elapsed_s"], "irc_floor_s": i["elapsed_s"],
            "over_floor_s": (round(x["elapsed_s"] - i["elapsed_s"], 4)
                             if x["elapsed_s"] is not None and i["elapsed_s"] is not None
                             else None),
            "presences": phase.observer.presences.get(phase.observer_room, 0) - presences_before,
            "rss_growth_kib": rss_peak - rss_before,
            "rss_per_puppet_kib": round((rss_peak - rss_before) / k, 2),
        }

    try:
        return [await _measured(phase, body, k)]
    finally:
        phase.xmpp.board.untrack(tag)
        phase.irc.board.untrack(tag)
        for user in users:
            user.close()
        await asyncio.sleep(1.0)  # the quits reach the gateway; its puppets leave
        await quiet(phase.busy_pids(), timeout=60 + k * 0.05)
