"""Joining a network's linked channels: paced, several per line, within the server's limits.

Joins start at the end of the MOTD (376 or 422), when ISUPPORT has told CASEMAPPING,
CHANLIMIT and TARGMAX, or `MOTD_WAIT` after 001 from a server that sends neither. Channels go
out in config order, several per JOIN line (up to `JOIN_LINE` bytes and TARGMAX's JOIN
count), `JOIN_BURST` lines at once and then one every `JOIN_INTERVAL` seconds: InspIRCd 3
charges 2 s of flood penalty per JOIN line, however many channels it names
(src/coremods/core_channel/cmd_join.cpp, `Penalty = 2`), against a threshold of 10 s that
drains at 1 s a second, and beyond it stops reading the client (fakelag) or drops it
("Excess Flood"); ngIRCd handles 3 commands a second from a client and holds the rest
(src/ngircd/conn.c, `MAX_COMMANDS`). The bucket is the network's own, beside its flood
control, so that a network with `flood.interval: 0` still joins at this pace.

Relayed lines wait until the JOIN of their channel has gone out (the outbox asks
`may_send`: a server would refuse them, 404, and they would be lost), and a channel with lines
waiting moves to the head of the queue (`hurry`).

How many channels a client may be in: CHANLIMIT (or the older MAXCHANNELS) in ISUPPORT. When
more are configured, that is said once, naming the channels beyond it. It is a warning, not a
cut: InspIRCd 3 advertises `<channels:users>` (default 20) but enforces `<connect:maxchans>`
when the connect class sets it (src/server.cpp, src/channels.cpp), so every channel is tried.
One refused with 405 (ERR_TOOMANYCHANNELS) is not tried again until the relay client leaves a
channel or reconnects, and the refusals of one wave of joins are logged as one line. ngIRCd
advertises its `MaxJoins`, 0 or -1 for no limit. Any other channel not joined (no answer,
banned, full) is tried again every `REJOIN_INTERVAL`; after a kick, `REJOIN_AFTER_KICK`.

Channels are named here as configured (the router's room names), never folded.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Iterable

import structlog

from bridge.core.ratelimit import TokenBucket

log = structlog.get_logger(__name__)

#: JOIN lines carry several channels, up to this many bytes.
JOIN_LINE = 400
#: JOIN lines at once, then one per interval (see the module's docstring).
JOIN_BURST = 3
JOIN_INTERVAL = 2.0
#: A server that sends no end of MOTD: joins start this long after 001 all the same.
MOTD_WAIT = 5.0
#: How often a linked channel we are not in is joined again (after a ban, a full
#: channel, a JOIN never answered...), and how soon after being kicked.
REJOIN_INTERVAL = 60.0
REJOIN_AFTER_KICK = 5.0
#: 405s arriving within this long of each other are one wave, logged as one line.
REFUSALS_SETTLE = 2.0
#: Channels named in one log line, at most (the count is always there).
NAMED = 20


class Joins:
    def __init__(self, network: str, send: Callable[[str], None], is_joined: Callable[[str], bool],
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        """`send(line)` writes a JOIN line; `is_joined(channel)` says whether we are in."""
        self.network = network
        self.send = send
        self.is_joined = is_joined
        self.clock = clock
        self.bucket = TokenBucket(JOIN_BURST, JOIN_INTERVAL, clock=clock)
        self.channels: list[str] = []  # as configured, in config order
        self.targets: int | None = None  # TARGMAX JOIN
        self.started = False  # the end of the MOTD came: joins may go
        self._registered_at = 0.0
        self._queue: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._due: dict[str, float] = {}  # not in, not queued: when to try again
        self._sent: set[str] = set()  # JOIN gone out on this connection
        self._refused: list[str] = []  # 405 on this connection: not tried again meanwhile
        self._refusals_logged = 0
        self._report: asyncio.TimerHandle | None = None
        self._warned: tuple | None = None  # the last CHANLIMIT warning, not said twice

    def add(self, channel: str) -> None:
        """A channel to be in (at start, or linked by a reload: then joined in turn)."""
        self.channels.append(channel)
        self._queue[channel] = None

    def remove(self, channel: str) -> None:
        """A channel no longer linked: not joined again."""
        self.channels.remove(channel)
        for held in (self._queue, self._due):
            held.pop(channel, None)
        self._sent.discard(channel)
        if channel in self._refused:
            self._refused.remove(channel)

    # The connection's life

    def registered(self) -> None:
        """A new connection (001): every channel is to be joined, once the MOTD is over."""
        self._queue = collections.OrderedDict.fromkeys(self.channels)
        self._due.clear()
        self._sent.clear()
        self._refused.clear()
        self._refusals_logged = 0
        self.targets = None
        self.started = False
        self._registered_at = self.clock()
        self.bucket.reset()
        if self._report is not None:
            self._report.cancel()
            self._report = None

    def motd_done(self) -> None:
        self.started = True

    def left(self, channel: str, kicked: bool = False) -> None:
        """We are out of `channel` (kicked, parted): join it again soon, and a place is free
        for the channels the server refused as one too many."""
        now = self.clock()
        self._due[channel] = now + (REJOIN_AFTER_KICK if kicked else 0.0)
        for refused in self._refused:
            self._due.setdefault(refused, now)
        self._refused.clear()

    # What the server tells

    def isupport(self, tokens: Iterable[str]) -> None:
        """CHANLIMIT / MAXCHANNELS and TARGMAX from one RPL_ISUPPORT line."""
        for token in tokens:
            name, _, value = token.partition("=")
            name = name.upper()
            if name == "TARGMAX":
                for pair in value.split(","):
                    command, _, count = pair.partition(":")
                    if command.upper() == "JOIN":
                        self.targets = int(count) if count.isdigit() and int(count) > 0 else None
            elif name == "CHANLIMIT":
                self._check_limits(_chanlimit(value))
            elif name == "MAXCHANNELS" and value.isdigit():
                self._check_limits([("#&+!", int(value))])

    def too_many(self, channel: str) -> None:
        """405: the server will not let us into one more channel."""
        self._due.pop(channel, None)
        if channel not in self._refused:
            self._refused.append(channel)
        if self._report is not None:  # more of the same wave: log once it ends
            self._report.cancel()
        self._report = asyncio.get_running_loop().call_later(REFUSALS_SETTLE, self._log_refused)

    # Joining

    def may_send(self, channel: str) -> bool:
        """Whether relayed lines for `channel` may go out (its JOIN has, or it is no
        linked channel: a private message's nick)."""
        return channel in self._sent or channel not in self._queue and channel not in self._due

    def hurry(self, channel: str) -> None:
        """Lines wait for `channel`: its JOIN goes next."""
        if channel in self._queue:
            self._queue.move_to_end(channel, last=False)
        elif channel in self._due:
            del self._due[channel]
            self._queue[channel] = None
            self._queue.move_to_end(channel, last=False)

    def wait(self) -> float:
        """Seconds until `tick` may have something to do (at most 1)."""
        if self._queue and self.started:
            return min(1.0, max(0.05, self.bucket.delay()))
        return 1.0

    def tick(self) -> bool:
        """Send what is due and the bucket allows; True if a JOIN went out."""
        now = self.clock()
        if not self.started:
            if now - self._registered_at < MOTD_WAIT:
                return False
            self.started = True
        for channel, when in list(self._due.items()):
            if when <= now:
                del self._due[channel]
                if not self.is_joined(channel):
                    self._queue[channel] = None
        sent = False
        while self._queue and self.bucket.delay() <= 0:
            line = self._line()
            if not line:
                break
            self.bucket.spend()
            self.send("JOIN " + ",".join(line))
            for channel in line:
                self._sent.add(channel)
                self._due[channel] = now + REJOIN_INTERVAL
            sent = True
        return sent

    def _line(self) -> list[str]:
        """The next JOIN line's channels, taken off the queue."""
        line: list[str] = []
        while self._queue:
            channel = next(iter(self._queue))
            if self.is_joined(channel):
                del self._queue[channel]
                continue
            if line and (len(",".join(line)) + 1 + len(channel) > JOIN_LINE
                         or (self.targets is not None and len(line) >= self.targets)):
                break
            del self._queue[channel]
            line.append(channel)
        return line

    # Telling the operator

    def _check_limits(self, limits: list[tuple[str, int | None]]) -> None:
        for prefixes, limit in limits:
            if limit is None or limit <= 0:  # no limit (ngIRCd says 0 or -1)
                continue
            mine = [channel for channel in self.channels if channel[:1] in prefixes]
            if len(mine) <= limit:
                continue
            beyond = mine[limit:]
            said = (prefixes, limit, tuple(beyond))
            if said == self._warned:
                continue
            self._warned = said
            log.warning("irc_channel_limit", network=self.network, limit=limit, prefixes=prefixes,
                        configured=len(mine), beyond=len(beyond), rooms=beyond[:NAMED],
                        note="the server says a client may be in this many channels: those beyond "
                             "it may be refused (they are tried; a refusal is not retried until "
                             "a channel is left)")

    def _log_refused(self) -> None:
        self._report = None
        new = self._refused[self._refusals_logged:]
        self._refusals_logged = len(self._refused)
        if new:
            log.warning("irc_too_many_channels", network=self.network, refused=len(self._refused),
                        joined=sum(1 for c in self.channels if self.is_joined(c)),
                        rooms=new[:NAMED],
                        note="the server refused these (405); not tried again until a channel "
                             "is left or the link reconnects")


def _chanlimit(value: str) -> list[tuple[str, int | None]]:
    """CHANLIMIT=#&:20,+:5 as [("#&", 20), ("+", 5)]; a missing number is no limit."""
    limits = []
    for pair in value.split(","):
        prefixes, _, number = pair.partition(":")
        try:
            limit = int(number) if number else None
        except ValueError:
            continue
        if prefixes:
            limits.append((prefixes, limit))
    return limits
