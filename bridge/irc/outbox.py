"""Lines waiting for one IRC connection, paced by a token bucket, and kept until
the server confirms them.

Control lines (CAP, AUTHENTICATE, NICK, JOIN, PING, PONG) go first and whenever
connected: a PONG stuck behind a thousand relayed lines would get us
disconnected. Relayed lines wait in a bounded queue and only go out once the
client is registered and has sent its JOINs; when that queue is full, the
oldest lines are dropped and counted (`irc_queue_overflow`). Every line, ours
or relayed, waits for the network's token bucket. A relayed batch with nothing
queued before it is written by `put` itself while the bucket allows, barriers
included, without waking the writer: a burst read from the XMPP stream in one
loop turn goes out as it is read instead of piling up in the queue.

Delivery is acknowledged by a PING barrier. A server handles one client's lines
in the order they came, so the PONG to a `PING :<random token>` written after
some relayed lines says the server has taken every one of them (the token is
random so that nobody else can answer for it; modern IRC protocol, "PING
message": the PONG carries the same token). Written lines stay in a bounded
window until then. When the connection is lost, the unconfirmed ones go back to
the head of the queue and out first on the next connection; confirmed ones are
never sent again. One barrier covers a batch: it goes out once the queue has
run dry (`BARRIER_LINGER` after the batch's first line, so a burst shares it)
and after every `BARRIER_LINES` lines of a long drain. At flood pace the
bucket, not the barrier, sets the rate, so no barrier is spent on time alone:
a fault in mid-drain sends up to `BARRIER_LINES` lines again, which may then
be seen twice.

A channel's relayed lines may have to wait for something (the adapter's JOIN of it:
`gate`): the queue then stops at the first of them, and `held` is told which channel holds
it up; `wake` starts it again. FIFO order is kept (a later line never overtakes an earlier one).

Each relayed line carries when its event happened. One older than `max_age`
when its turn comes is dropped and counted, and a run of such drops in a
channel becomes one notice there (`core.notices.stale_text`), written where
the first fresh line for that channel would have gone, or when the queue runs
dry.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from bridge.core.notices import stale_text
from bridge.core.ratelimit import TokenBucket

log = structlog.get_logger(__name__)

#: Control lines are few and our own; a bound still keeps a PING flood from growing memory.
CONTROL_LIMIT = 64
#: A barrier after at most this many relayed lines of a long drain.
BARRIER_LINES = 32
#: Once the queue is dry, a batch's barrier waits this long (after the batch's
#: first line) for more lines to cover.
BARRIER_LINGER = 0.2
#: Barriers awaiting their PONG; a later PONG confirms all before it, so old ones may go.
MAX_BARRIERS = 64


@dataclass(slots=True, eq=False)
class Batch:
    """The lines of one relayed event: which channel, whence (`network/room`), when it
    happened (Unix time; None: it never gets too old), and who waits for them."""

    room: str
    origin: str
    time: float | None
    done: asyncio.Future
    left: int  # lines neither written nor dropped yet


Entry = tuple[str, Batch]


class Outbox:
    def __init__(self, bucket: TokenBucket, size: int, network: str, *,
                 notice: Callable[[str, str], list[str]], max_age: float = 300.0) -> None:
        """`notice(room, text)` gives the lines that say `text` in `room` as the bridge."""
        self.bucket = bucket
        self.size = max(1, size)
        self.network = network
        self.notice = notice
        self.max_age = max_age
        self.dropped = 0  # queue overflow
        self.forgotten = 0  # unconfirmed window overflow
        self.stale = 0  # relayed messages too old when their turn came
        self._control: collections.deque[str] = collections.deque()
        self._text: collections.deque[Entry] = collections.deque()
        self._unconfirmed: collections.deque[Entry] = collections.deque()
        self._written = 0  # relayed lines written, ever: the barriers' sequence numbers
        self._barriers: dict[str, int] = {}  # token -> lines written before it
        self._barrier_due = False
        self._unbarriered = 0  # relayed lines written since the last barrier
        self._batch_started = 0.0  # when the first of them was written
        self._stale: dict[str, list[Batch]] = {}  # room -> messages dropped there, not yet said
        self._open = False
        self._write: Callable[[str], None] | None = None  # the running writer's
        self._wake = asyncio.Event()
        #: May relayed lines for this room go out now? If not, `held(room)` is told.
        self.gate: Callable[[str], bool] = lambda room: True
        self.held: Callable[[str], None] = lambda room: None

    def __len__(self) -> int:
        return len(self._text)

    @property
    def unconfirmed(self) -> int:
        """Relayed lines written and not yet confirmed by the server."""
        return len(self._unconfirmed)

    def control(self, line: str) -> None:
        if len(self._control) >= CONTROL_LIMIT:
            self._control.popleft()
            log.warning("irc_control_overflow", network=self.network, limit=CONTROL_LIMIT)
        self._control.append(line)
        self._wake.set()

    def put(self, lines: Iterable[str], room: str, origin: str, when: float | None = None) -> asyncio.Future:
        """Queue relayed lines for `room`, of an event from `origin` that happened at `when`;
        the future is done when the last one is written or dropped, or the connection is
        lost (`connection_lost`)."""
        lines = list(lines)
        batch = Batch(room, origin, when, asyncio.get_running_loop().create_future(), len(lines))
        if not lines:
            batch.done.set_result(None)
            return batch.done
        waiting = collections.deque((line, batch) for line in lines)
        if self._clear_for(batch):  # nothing queued before it: written now, no writer wake-up
            idle = not self._unbarriered
            while waiting and not self.bucket.delay():
                self.bucket.spend()
                if self._barrier_due:  # every BARRIER_LINES lines, as the writer would
                    self._send(self._barrier(), None)
                    continue
                entry = waiting.popleft()
                self._send(entry[0], entry)
            if idle and self._unbarriered:
                self._wake.set()  # the writer times this batch's barrier
            if not waiting:
                return batch.done
        dropped = 0
        for line, _ in waiting:
            if len(self._text) >= self.size:
                _finish(self._text.popleft()[1])
                dropped += 1
            self._text.append((line, batch))
        if dropped:
            self._overflow(dropped)
        self._wake.set()
        return batch.done

    def open(self) -> None:
        """Registered and joined: relayed lines may go out."""
        self._open = True
        self._wake.set()

    def wake(self) -> None:
        """Something a `gate` waited for happened: look at the queue again."""
        self._wake.set()

    def ping(self) -> None:
        """Send a barrier now, relayed lines or not (a quiet link's keepalive)."""
        self._barrier_due = True
        self._wake.set()

    def confirm(self, token: str) -> None:
        """A PONG with `token`: every relayed line written before that PING arrived."""
        seq = self._barriers.pop(token, None)
        if seq is None:
            return
        while self._barriers and next(iter(self._barriers.values())) <= seq:
            del self._barriers[next(iter(self._barriers))]
        oldest = self._written - len(self._unconfirmed)
        for _ in range(seq - oldest):
            self._unconfirmed.popleft()

    def connection_lost(self) -> None:
        """Forget control lines and barriers (they belong to the old connection), put
        unconfirmed lines back at the head of the queue for the next one, and stop anyone
        waiting for queued lines."""
        self._open = False
        self._control.clear()
        self._barriers.clear()
        self._barrier_due = False
        self._unbarriered = 0
        if self._unconfirmed:
            log.info("irc_unconfirmed_requeued", network=self.network, lines=len(self._unconfirmed))
            self._text.extendleft(reversed(self._unconfirmed))
            self._unconfirmed.clear()
            dropped = 0
            while len(self._text) > self.size:
                _finish(self._text.popleft()[1])
                dropped += 1
            if dropped:
                self._overflow(dropped)
        for _, batch in self._text:
            if not batch.done.done():
                batch.done.set_result(None)

    async def run(self, write: Callable[[str], None]) -> None:
        """Write lines as the bucket allows, until cancelled. `write` raising ValueError
        refuses that line (it is dropped); any other error leaves it unconfirmed, to be
        sent again on the next connection. While it runs, `put` writes a batch itself when
        nothing is queued before it and the bucket has tokens."""
        self._write = write
        try:
            while True:
                if not (self._control or self._barrier_due or (self._open and self._relayable())):
                    await self._idle()
                    continue
                await self.bucket.take()
                item = self._next()
                if item is not None:
                    self._send(*item)
        finally:
            if self._write is write:  # not a newer writer's, started before this one ended
                self._write = None

    def _clear_for(self, batch: Batch) -> bool:
        """Could `batch` be written now: the writer runs, the way is open for its channel,
        nothing waits before it, and it is fresh."""
        return (self._write is not None and self._open and self.gate(batch.room)
                and not (self._control or self._text or self._stale)
                and (batch.time is None or time.time() - batch.time <= self.max_age))

    def _send(self, line: str, entry: Entry | None) -> None:
        """Write one line; a relayed one then waits in the window for its barrier."""
        try:
            self._write(line)
        except ValueError as exc:  # e.g. an overlong line: ours to fix, not fatal
            log.error("irc_line_refused", network=self.network, error=str(exc))
            if entry is not None:
                _finish(entry[1])
            return
        except Exception as exc:  # the connection is going: the line stays unconfirmed
            log.warning("irc_write_failed", network=self.network, error=type(exc).__name__)
        if entry is not None:
            self._written_relayed(entry)

    def _relayable(self) -> bool:
        """Whether a relayed line (or a stale notice) could go out now."""
        if self._text:
            room = self._text[0][1].room
            if self.gate(room):
                return True
            self.held(room)
            return False
        return bool(self._stale)

    async def _idle(self) -> None:
        """Wait for work. Relayed lines written since the last barrier get theirs once
        the batch has had `BARRIER_LINGER` to grow."""
        self._wake.clear()
        if not self._unbarriered:
            await self._wake.wait()
            return
        wait = self._batch_started + BARRIER_LINGER - time.monotonic()
        if wait <= 0:
            self._barrier_due = True
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._wake.wait()

    def _next(self) -> tuple[str, Entry | None] | None:
        """The line to write now: control, then a barrier, then relayed lines (skipping
        stale ones, and saying so before the next line to their channel)."""
        if self._control:
            return self._control.popleft(), None
        if self._barrier_due:
            return self._barrier(), None
        if not self._open:
            return None
        while self._text or self._stale:
            if not self._text:  # the queue ran dry: say now what was dropped
                self._announce(next(iter(self._stale)))
                continue
            entry = self._text.popleft()
            batch = entry[1]
            if batch.time is not None and time.time() - batch.time > self.max_age:
                runs = self._stale.setdefault(batch.room, [])
                if not runs or runs[-1] is not batch:
                    runs.append(batch)
                _finish(batch)
                continue
            if self._stale and batch.room in self._stale:
                self._text.appendleft(entry)
                self._announce(batch.room)
                continue
            if not self.gate(batch.room):
                self._text.appendleft(entry)
                self.held(batch.room)
                return None
            return entry[0], entry
        return None

    def _written_relayed(self, entry: Entry) -> None:
        _finish(entry[1])
        self._unconfirmed.append(entry)
        self._written += 1
        if len(self._unconfirmed) > self.size:
            self._unconfirmed.popleft()
            self.forgotten += 1
            if self.forgotten & (self.forgotten - 1) == 0:  # log at 1, 2, 4, 8, ...
                log.warning("irc_unconfirmed_overflow", network=self.network,
                            forgotten_total=self.forgotten, window=self.size)
        self._unbarriered += 1
        if self._unbarriered == 1:
            self._batch_started = time.monotonic()
        elif self._unbarriered >= BARRIER_LINES:
            self._barrier_due = True

    def _barrier(self) -> str:
        self._barrier_due = False
        self._unbarriered = 0
        token = secrets.token_hex(8)
        self._barriers[token] = self._written
        if len(self._barriers) > MAX_BARRIERS:
            del self._barriers[next(iter(self._barriers))]
        return f"PING :{token}"

    def _announce(self, room: str) -> None:
        """Put the notice for `room`'s run of stale messages at the head of the queue."""
        batches = self._stale.pop(room)
        self.stale += len(batches)
        log.warning("irc_stale_dropped", network=self.network, room=room, count=len(batches),
                    stale_total=self.stale, max_age=self.max_age)
        text = stale_text(len(batches), [b.origin for b in batches], self.max_age)
        lines = self.notice(room, text)
        batch = Batch(room, "", None, asyncio.get_running_loop().create_future(), len(lines))
        self._text.extendleft((line, batch) for line in reversed(lines))

    def _overflow(self, dropped: int) -> None:
        self.dropped += dropped
        log.warning("irc_queue_overflow", network=self.network, dropped=dropped,
                    dropped_total=self.dropped, queued=len(self._text), policy="drop-oldest")


def _finish(batch: Batch) -> None:
    """One more of `batch`'s lines written or dropped."""
    batch.left -= 1
    if batch.left <= 0 and not batch.done.done():
        batch.done.set_result(None)
