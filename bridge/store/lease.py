"""Which of the bridges sharing one PostgreSQL store leads (`store.standby`): a hot standby.

Instances run with the same config. The one whose own connection holds a session-level
advisory lock (`pg_try_advisory_lock`) leads: it connects to its networks and relays. The
others stand by, connected to the database only, and try the lock every `POLL` seconds. The
lock lasts as long as its session: a leader killed outright loses it at once (its kernel
closes the socket); a lost machine once the server gives up on the connection (`LOST_PEER`,
asked of the server for that session: about 10 s).

Terms fence the store. Each lead bumps the term in the `lease` row. Every store write
transaction reads the row FOR SHARE and is refused unless the term is still its own
(`check_term`): a leader that lost the lead cannot overwrite what the new one reads, and a
bump waits for a write transaction in flight.

A leader whose lock connection ends (or does not answer within `CHECK_TIMEOUT`) holds its
deliveries at once and tries, for up to `GRACE`, to take the lock again on a new connection:
if it gets it and the term is still its own (nobody led meanwhile) it goes on, else it steps
down. Whoever takes the lock from a leader that did not release it waits `SETTLE` before it
bumps the term and reads the store: by then that leader has noticed (at most `CHECK_EVERY`
+ `CHECK_TIMEOUT`) and holds its deliveries, and its last writes are in, so two instances
never relay at once. A leader that stops (SIGTERM) marks the lease released: the next one
leads without waiting.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable

import asyncpg
import structlog

from bridge.core.backoff import Backoff
from bridge.store.postgres_schema import TRANSIENT, migrate

log = structlog.get_logger(__name__)

#: The advisory lock's name (`hashtext` of it is the key).
KEY = "muc-bridge lead"
#: How often a standby tries the lock, and a leader checks that its lock connection answers.
POLL = 1.0
CHECK_EVERY = 1.0
CHECK_TIMEOUT = 1.5
#: How long a leader that lost its lock connection tries to take the lock again.
GRACE = 3.0
#: How long a new leader waits for one that did not let go to have noticed (see above).
SETTLE = CHECK_EVERY + CHECK_TIMEOUT + 1.0
CONNECT_TIMEOUT = 5.0
#: How long a term bump waits for a write transaction in flight (then it tries again).
BUMP_TIMEOUT = 5.0
#: Server settings of the lock's session: a peer gone without a word ends it after about 10 s
#: (keepalive probes when idle; unacknowledged data otherwise, TCP_USER_TIMEOUT in ms).
LOST_PEER = {"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "3",
             "tcp_user_timeout": "10000"}


class LeaseLost(Exception):
    """Another instance leads now: a store write of this one is refused."""


async def check_term(conn: asyncpg.Connection, term: int) -> None:
    """In a write transaction: go on only while `term` leads (the row stays locked FOR SHARE
    until the transaction ends, so a new leader's bump waits for it)."""
    current = await conn.fetchval("SELECT term FROM lease WHERE id = 1 FOR SHARE")
    if current != term:
        raise LeaseLost(f"term {term} is over (term {current} leads)")


class Lease:
    """One instance's part: `acquire` (stand by until leading), `hold` (until the lead is lost),
    `release` (after the bridge stopped)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.term: int | None = None
        self._conn: asyncpg.Connection | None = None
        self._ended = asyncio.Event()  # the lock's connection is gone

    async def acquire(self) -> int:
        """Stand by, connected to the database only, until this instance leads; its term."""
        backoff = Backoff(initial=POLL, maximum=30.0)
        shown: tuple | None = None
        while True:
            try:
                if self._conn is None:
                    await self._connect()
                    async with asyncio.timeout(60.0):
                        await migrate(self._conn)  # the lease table, on a database still empty
                async with asyncio.timeout(CHECK_TIMEOUT * 2):
                    got = await self._conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", KEY)
                    row = await self._conn.fetchrow("SELECT term, holder, released FROM lease WHERE id = 1")
                backoff.reset()
                if got and await self._take(row):
                    return self.term
                if not got and shown != (row["term"], row["holder"]):
                    shown = (row["term"], row["holder"])
                    log.info("standing_by", leader=row["holder"], term=row["term"])
            except (*TRANSIENT, asyncpg.exceptions.LockNotAvailableError) as exc:
                log.warning("lease_unreachable", error=f"{type(exc).__name__}: {exc}")
                self._drop()
                await backoff.wait()
                continue
            await asyncio.sleep(POLL)

    async def _take(self, row: asyncpg.Record) -> bool:
        """The lock is ours: wait out a leader that did not let go, then start a new term.
        False if the lock's connection ended meanwhile."""
        if not row["released"]:
            log.info("lead_settling", previous=row["holder"], seconds=SETTLE)
            try:
                async with asyncio.timeout(SETTLE):
                    await self._ended.wait()
                self._drop()
                return False
            except TimeoutError:
                pass
        async with asyncio.timeout(BUMP_TIMEOUT + CHECK_TIMEOUT):
            async with self._conn.transaction():
                await self._conn.execute(f"SET LOCAL lock_timeout = '{BUMP_TIMEOUT:g}s'")
                self.term = await self._conn.fetchval(
                    "UPDATE lease SET term = term + 1, holder = $1, since = $2, released = FALSE "
                    "WHERE id = 1 RETURNING term", self.holder, time.time())
        log.info("lead_taken", term=self.term, previous=row["holder"] or None)
        return True

    async def hold(self, pause: Callable[[bool], None]) -> None:
        """Watch the lead; return once it is lost for good. `pause(True)` as soon as the lock's
        connection is found gone, `pause(False)` if the lock is taken again in time."""
        while True:
            await self._watch()
            pause(True)
            log.warning("lead_lock_lost", term=self.term, grace=GRACE)
            if not await self._retake():
                log.warning("lead_lost", term=self.term)
                self.term = None
                return
            pause(False)
            log.info("lead_kept", term=self.term)

    async def _watch(self) -> None:
        """Until the lock's connection ends, or does not answer within `CHECK_TIMEOUT`."""
        while True:
            try:
                async with asyncio.timeout(CHECK_EVERY):
                    await self._ended.wait()
                break
            except TimeoutError:
                pass
            try:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    await self._conn.fetchval("SELECT 1")
            except TRANSIENT:
                break
        self._drop()

    async def _retake(self) -> bool:
        """Take the lock again within `GRACE`, if nobody led meanwhile."""
        deadline = time.monotonic() + GRACE
        while (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):
                    await self._connect()
                    if (await self._conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", KEY)
                            and await self._conn.fetchval("SELECT term FROM lease WHERE id = 1") == self.term):
                        return True
                    self._drop()  # another instance holds the lock, or has led since
                    return False
            except TRANSIENT:
                self._drop()
                await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        return False

    async def release(self) -> None:
        """Let go of the lead (the bridge has stopped): the next leader need not wait."""
        conn, term = self._conn, self.term
        self._conn = self.term = None
        if conn is None:
            return
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if term is not None:
                    await conn.execute("UPDATE lease SET released = TRUE WHERE id = 1 AND term = $1", term)
                    log.info("lead_released", term=term)
                await conn.close()  # the session ends, and the lock with it
        except (*TRANSIENT, asyncpg.PostgresError):
            conn.terminate()

    async def _connect(self) -> None:
        self._conn = await asyncpg.connect(
            self.url, timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": f"muc-bridge lease {self.holder}"[:63], **LOST_PEER})
        ended = self._ended = asyncio.Event()
        self._conn.add_termination_listener(lambda _conn: ended.set())

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
