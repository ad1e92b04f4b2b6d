"""The PostgreSQL store (asyncpg): the SQLite store's interface, no blocking call on the event loop.

The store's callers are synchronous and run on the event loop, so every call here is
answered from memory, and only this store's own tasks talk to the database:

- Opening it (before the event loop runs, as `muc-bridge run` does) connects, waiting
  for the database at most `START_WAIT`, migrates, prunes and loads what is served from
  memory: every cursor and pinned key (a few per room and server), the `PUPPET_CACHE`
  puppets seen last and the newest `MESSAGE_CACHE` message-id mappings.
- Reads a cache may miss are done ahead of need: the XMPP adapter awaits `prepare` with
  the identities of an event before it delivers it, which loads their puppets (and the
  holders of the local parts new ones would get). A local part nobody asked for since the
  opening misses once (`identity_for_localpart` answers None) and is loaded in the background
  for the next try; a message older than the newest `MESSAGE_CACHE` is not found (a
  correction of it goes out as a new message).
- Writes are queued and committed by the writer task at each `flush`, in one transaction
  (group commits, as SQLite's). A puppet made while its row was not in memory (the database
  was away) gets a provisional local part; the writer claims it in the database and, if the
  database knew the identity or the local part is someone else's, puts the stored one in
  memory (`puppet_reassigned`).
- Connection loss: the writer reconnects with backoff and commits the queue once back; the
  bridge relays from memory meanwhile. The queue is bounded: past `BACKLOG` message-id
  mappings the oldest are dropped (counted in the log); puppets, cursors and keys are kept
  one entry per name.

Why asyncpg: an asyncio-native protocol implementation, each call awaitable with a timeout,
self-contained wheels (no libpq on the host). The schema and its migrations: `postgres_schema`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import asyncpg
import structlog

from bridge.core.backoff import Backoff
from bridge.core.events import Identity
from bridge.store import POSTGRES_SCHEMES as SCHEMES
from bridge.store.base import PuppetRecord, StoreUnavailable
from bridge.store.lease import LeaseLost, check_term
from bridge.store.postgres_schema import TRANSIENT, migrate, privileges_problem
from bridge.store.sqlite import (MESSAGE_LIMIT, MESSAGE_TTL, PUPPET_CACHE, PUPPET_TTL, SEEN_EVERY,
                                 escape_localpart, fold_localpart)

log = structlog.get_logger(__name__)

#: Message-id mappings kept in memory (the newest); older ones are not found.
MESSAGE_CACHE = 20_000
#: Message-id mappings queued while the database is away; past this the oldest are dropped.
BACKLOG = 100_000
#: How long opening waits for the database, and connecting, one read and one commit may take.
START_WAIT = 60.0
CONNECT_TIMEOUT = 5.0
#: How long closing waits for the queued writes to be committed.
CLOSE_WAIT = 10.0
READ_TIMEOUT = 2.0
WRITE_TIMEOUT = 30.0
#: How long a delivery waits for the writes before it to be committed (`durable`).
DURABLE_WAIT = 2.0
#: Local parts loaded in the background at once, at most.
LOADS = 100


def problem(url: str) -> str | None:
    """What would keep `run` from opening the store at `url`: connecting, and making or
    using its tables (it is connected to once, from a thread: callers are synchronous)."""
    async def probe() -> str | None:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
        try:
            return await privileges_problem(conn)
        finally:
            await conn.close()
    try:
        return _in_thread(probe, timeout=CONNECT_TIMEOUT * 2)
    except TimeoutError:
        return f"no answer from the PostgreSQL server within {CONNECT_TIMEOUT * 2:.0f} s"
    except (asyncpg.PostgresError, *TRANSIENT, ValueError) as exc:
        # Never the URL: it may hold a password.
        return f"cannot connect to the PostgreSQL database: {type(exc).__name__}: {exc}"


def _in_thread(make: Callable[[], Awaitable[Any]], timeout: float | None = None) -> Any:
    """Run a coroutine in a thread with an event loop of its own, and return its result
    (or raise what it raised; TimeoutError after `timeout`)."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, asyncio.run(make())))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="store", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise TimeoutError
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


class PostgresStore:
    def __init__(self, url: str, *, puppet_ttl: float = PUPPET_TTL, message_ttl: float = MESSAGE_TTL,
                 message_limit: int = MESSAGE_LIMIT, term: int | None = None) -> None:
        if not url.startswith(SCHEMES):
            raise ValueError("unsupported store url (use postgresql://user@host/database)")
        self.url = url
        self.term = term  # a standby's lead (`bridge.store.lease`): writes only while it lasts
        self.fenced = False  # another instance leads now: nothing more is written
        self.puppet_ttl, self.message_ttl, self.message_limit = puppet_ttl, message_ttl, message_limit
        # In memory, least recently used first: key -> (record, when last written as seen),
        # folded local part -> identity.
        self._puppets: collections.OrderedDict[tuple[str, str], tuple[PuppetRecord, float]] = \
            collections.OrderedDict()
        self._by_localpart: collections.OrderedDict[str, Identity] = collections.OrderedDict()
        # The newest message-id mappings, oldest first: (link, endpoint, native id) ->
        # (origin, created); and (link, origin, endpoint) -> its native ids there, oldest first.
        self._rows: collections.OrderedDict[tuple[str, str, str], tuple[str, float]] = \
            collections.OrderedDict()
        self._names: dict[tuple[str, str, str], list[str]] = {}
        self._cursors: dict[str, object] = {}
        self._keys: dict[tuple[str, str], str] = {}
        # Queued writes: puppet key -> (record, seen, new); message rows; cursor names; keys.
        self._puppet_writes: dict[tuple[str, str], tuple[PuppetRecord, float, bool]] = {}
        self._writing: dict[tuple[str, str], tuple[PuppetRecord, float, bool]] = {}  # in the open commit
        self._message_writes: collections.deque[tuple[str, str, str, str, float]] = collections.deque()
        self._dirty: set[str] = set()
        self._key_writes: dict[tuple[str, str], str] = {}
        self._prune: tuple[float, int] | None = None
        self.dropped = 0  # message-id mappings dropped from the backlog in this outage
        self._writer_conn: asyncpg.Connection | None = None
        self._reader_conn: asyncpg.Connection | None = None
        self._reader_lock = asyncio.Lock()
        self._loads: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._committed = asyncio.Condition()
        self._writer: asyncio.Task | None = None
        self._away = False  # the writer lost the database and has not reached it again
        self._flush_soon = False
        # Writes made so far, those in the batch being committed, and those committed (or
        # given up on): what `durable` waits for.
        self._writes = self._taken = self._done = 0
        self._open()

    @classmethod
    def from_url(cls, url: str, **limits: float) -> PostgresStore:
        return cls(url, **limits)

    # -- lifecycle -------------------------------------------------------

    def _open(self) -> None:
        """Connect, migrate, prune, and load what is served from memory; in a thread with
        an event loop of its own (the connection is closed after: the writer makes its
        own on the bridge's loop). Waits for the database at most `START_WAIT`."""
        async def load() -> None:
            backoff, deadline = Backoff(initial=0.5, maximum=10.0), time.monotonic() + START_WAIT
            while True:
                try:
                    conn = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
                    break
                except TRANSIENT as exc:
                    if time.monotonic() > deadline:
                        raise StoreUnavailable(f"cannot reach the PostgreSQL store: {type(exc).__name__}: "
                                               f"{exc}") from None
                    log.warning("store_unreachable", error=f"{type(exc).__name__}: {exc}")
                    await backoff.wait()
            try:
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await migrate(conn)
                    async with conn.transaction():
                        await self._write(conn, {}, (), {}, {}, (time.time(), self.message_limit))
                    await self._load(conn)
            finally:
                await conn.close()

        try:
            _in_thread(load)
        except asyncpg.PostgresError as exc:  # what check-config names: a missing database, privileges
            raise StoreUnavailable(f"cannot open the PostgreSQL store: {type(exc).__name__}: {exc}") from None

    async def _load(self, conn: asyncpg.Connection) -> None:
        self._cursors = {row["name"]: json.loads(row["value"])
                         for row in await conn.fetch("SELECT name, value FROM cursors")}
        self._keys = {(row["network"], row["host"]): row["fingerprint"]
                      for row in await conn.fetch("SELECT network, host, fingerprint FROM server_keys")}
        for row in reversed(await conn.fetch(
                "SELECT network, native_id, localpart, nick, seen FROM puppets ORDER BY seen DESC LIMIT $1",
                PUPPET_CACHE)):
            self._remember_puppet(row)
        for row in reversed(await conn.fetch(
                "SELECT link, origin_id, endpoint, native_id, created FROM messages "
                "ORDER BY created DESC LIMIT $1", MESSAGE_CACHE)):
            self._cache_message(*row)

    def flush(self) -> None:
        """Have the writer commit what is queued (it does not wait for it)."""
        self._flush_soon = False
        self._wake.set()
        if self._writer is None:
            try:
                self._writer = asyncio.get_running_loop().create_task(self._write_loop(),
                                                                      name="store writer")
            except RuntimeError:  # no event loop (yet): nothing runs that writes
                pass

    async def commit(self, timeout: float = WRITE_TIMEOUT) -> bool:
        """Flush and wait until all that is queued now is committed (or `timeout`):
        True if it was."""
        self.flush()
        try:
            async with asyncio.timeout(timeout):
                async with self._committed:
                    await self._committed.wait_for(lambda: not self._pending() and not self._wake.is_set())
            return True
        except TimeoutError:
            return False

    def mark(self) -> int:
        """A mark for the writes made so far (see `durable`)."""
        return self._writes

    async def durable(self, mark: int) -> None:
        """Return once the writes made before `mark()` gave `mark` are committed; at once
        when the database is away (nothing can be), or after `DURABLE_WAIT`. A standby's
        router awaits this before each delivery: what a new leader reads (the rooms' cursors,
        the message ids) is then never older than what the old one delivered."""
        if self._done >= mark or self._away or self.fenced:
            return
        self.flush()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DURABLE_WAIT):
                async with self._committed:
                    await self._committed.wait_for(lambda: self._done >= mark or self._away or self.fenced)

    def close(self) -> None:
        """Stop without waiting for the database (what is queued is lost; `aclose` waits)."""
        if self._writer is not None:
            self._writer.cancel()
        for conn in (self._writer_conn, self._reader_conn):
            if conn is not None:
                conn.terminate()

    async def aclose(self) -> None:
        """Commit what is queued (waiting at most `CLOSE_WAIT`), then close."""
        if not await self.commit(CLOSE_WAIT):
            log.error("store_writes_lost", backlog=len(self._message_writes) + len(self._puppet_writes))
        for task in list(self._loads):
            task.cancel()
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        for conn in (self._writer_conn, self._reader_conn):
            if conn is not None:
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        await conn.close()
                except (*TRANSIENT, asyncpg.PostgresError):
                    conn.terminate()

    # -- the writer ------------------------------------------------------

    def _pending(self) -> bool:
        return bool(self._puppet_writes or self._message_writes or self._dirty or self._key_writes
                    or self._prune)

    async def _write_loop(self) -> None:
        backoff = Backoff(initial=0.5, maximum=30.0)
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._commit_queued()
            except asyncio.CancelledError:
                raise
            except TRANSIENT as exc:
                self._away = True
                async with self._committed:
                    self._committed.notify_all()  # `durable` waits no more
                if self._writer_conn is not None:
                    self._writer_conn.terminate()
                    self._writer_conn = None
                    log.warning("store_unreachable", error=f"{type(exc).__name__}: {exc}",
                                backlog=len(self._message_writes) + len(self._puppet_writes))
                await backoff.wait()
                self._wake.set()
                continue
            except Exception as exc:  # a bug: that batch is lost, the writer goes on
                log.error("store_write_failed", error=f"{type(exc).__name__}: {exc}")
            if self._away:
                self._away = False
                log.info("store_reconnected", dropped=self.dropped)
                self.dropped = 0
            backoff.reset()
            async with self._committed:
                self._committed.notify_all()

    async def _commit_queued(self) -> None:
        if self._writer_conn is None:
            self._writer_conn = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
        conn = self._writer_conn
        self._taken = self._writes
        puppets = self._writing = self._puppet_writes
        self._puppet_writes = {}
        messages, self._message_writes = self._message_writes, collections.deque()
        cursors = {name: self._cursor_text(name) for name in self._dirty}
        self._dirty = set()
        keys, self._key_writes = self._key_writes, {}
        prune, self._prune = self._prune, None
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                async with conn.transaction():
                    claimed, pruned = await self._write(conn, puppets, messages, cursors, keys, prune)
        except TRANSIENT:
            self._writing = {}
            self._requeue(puppets, messages, cursors, keys, prune)
            raise
        except asyncpg.PostgresError as exc:  # not the connection: these writes cannot be made
            log.error("store_write_failed", error=f"{type(exc).__name__}: {exc}",
                      puppets=len(puppets), messages=len(messages))
            claimed = pruned = []
        except LeaseLost as exc:  # the new leader reads the store as it was: so be it
            if not self.fenced:
                log.error("store_writes_refused", reason=str(exc))
            self.fenced = True
            claimed = pruned = []
        self._writing = {}
        self._done = self._taken
        for key, record in claimed:
            self._reassign(key, record)
        self._forget_puppets(pruned)

    async def _write(self, conn: asyncpg.Connection, puppets: dict, messages: Iterable, cursors: dict,
                     keys: dict, prune: tuple[float, int] | None) -> tuple[list, list]:
        """Write one batch; the puppets whose local part the database chose, and those pruned."""
        claimed, pruned = [], []
        if self.term is not None:
            await check_term(conn, self.term)
        for key, (record, seen, new) in puppets.items():
            if new:
                stored = await _claim(conn, Identity(key[0], key[1], record.nick), record.localpart, seen)
                if stored.localpart != record.localpart:
                    claimed.append((key, stored))
        await conn.executemany("UPDATE puppets SET nick = $3, seen = GREATEST(seen, $4) "
                               "WHERE network = $1 AND native_id = $2",
                               [(*key, record.nick, seen) for key, (record, seen, new) in puppets.items()
                                if not new])
        await conn.executemany(
            "INSERT INTO messages VALUES ($1, $2, $3, $4, $5) ON CONFLICT (link, endpoint, native_id) "
            "DO UPDATE SET origin_id = EXCLUDED.origin_id, created = EXCLUDED.created", messages)
        await conn.executemany("INSERT INTO cursors VALUES ($1, $2) ON CONFLICT (name) "
                               "DO UPDATE SET value = EXCLUDED.value", cursors.items())
        await conn.executemany("INSERT INTO server_keys VALUES ($1, $2, $3) ON CONFLICT (network, host) "
                               "DO UPDATE SET fingerprint = EXCLUDED.fingerprint",
                               [(*key, fingerprint) for key, fingerprint in keys.items()])
        if prune is not None:
            now, keep = prune
            await conn.execute("DELETE FROM messages WHERE created < $1", now - self.message_ttl)
            await conn.execute("DELETE FROM messages WHERE ctid IN (SELECT ctid FROM messages "
                               "ORDER BY created DESC OFFSET $1)", keep)
            pruned = await conn.fetch("DELETE FROM puppets WHERE seen < $1 RETURNING network, native_id",
                                      now - self.puppet_ttl)
        return claimed, [tuple(row) for row in pruned]

    def _requeue(self, puppets: dict, messages: collections.deque, cursors: dict, keys: dict,
                 prune: tuple[float, int] | None) -> None:
        """Put back what a failed commit took, under what was queued since (newer wins)."""
        for key, (record, seen, new) in puppets.items():
            newer = self._puppet_writes.get(key)
            self._puppet_writes[key] = (newer[0], newer[1], newer[2] or new) if newer else (record, seen, new)
        messages.extend(self._message_writes)
        self._message_writes = messages
        self._trim_backlog()
        self._dirty |= cursors.keys()
        for key, fingerprint in keys.items():
            self._key_writes.setdefault(key, fingerprint)
        self._prune = self._prune or prune

    def _trim_backlog(self) -> None:
        over = len(self._message_writes) - BACKLOG
        if over > 0:
            for _ in range(over):
                self._message_writes.popleft()
            if not self.dropped:  # once an outage; the count when it ends
                log.error("store_backlog_full", backlog=BACKLOG)
            self.dropped += over

    def _forget_puppets(self, keys: list[tuple[str, str]]) -> None:
        """Pruned from the database: from memory too (one in use since is made again)."""
        for key in keys:
            cached = self._puppets.pop(key, None)
            if cached is not None:
                self._by_localpart.pop(fold_localpart(cached[0].localpart), None)
            queued = self._puppet_writes.get(key)
            if queued is not None:
                self._puppet_writes[key] = (queued[0], queued[1], True)
                self._keep(key, queued[0], queued[1])

    def _reassign(self, key: tuple[str, str], stored: PuppetRecord) -> None:
        """The database had another local part for this identity than memory gave it."""
        cached = self._puppets.get(key)
        log.warning("puppet_reassigned", network=key[0], localpart=stored.localpart,
                    provisional=cached[0].localpart if cached else None)
        if cached is not None:
            identity = self._by_localpart.pop(fold_localpart(cached[0].localpart), None)
            self._puppets[key] = (PuppetRecord(stored.localpart, cached[0].nick), cached[1])
            if identity is not None:
                self._by_localpart[fold_localpart(stored.localpart)] = identity

    # -- reads ahead of need ---------------------------------------------

    async def prepare(self, identities: Iterable[Identity]) -> None:
        """Load the puppets of `identities` that are not in memory, and the holders of the
        first local parts new ones would get; at once if the database is away."""
        missing = [identity for identity in identities if identity.key not in self._puppets]
        if not missing or self._away:
            return
        keys = [identity.key for identity in missing]
        firsts = [fold_localpart(next(_candidates(identity))) for identity in missing]
        # Two index lookups (an OR of the two reads the whole table).
        rows = await self._read("SELECT network, native_id, localpart, nick, seen FROM puppets "
                                "JOIN unnest($1::text[], $2::text[]) AS k (network, native_id) "
                                "USING (network, native_id) UNION "
                                "SELECT network, native_id, localpart, nick, seen FROM puppets "
                                "WHERE folded = ANY($3::text[])",
                                [k[0] for k in keys], [k[1] for k in keys], firsts)
        for row in rows or ():
            self._remember_puppet(row)

    async def _read(self, sql: str, *args: Any) -> list | None:
        """Rows of one query on the reader's connection, or None when the database is away."""
        async with self._reader_lock:
            if self._away:  # found away while this read waited for the one before
                return None
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    if self._reader_conn is None or self._reader_conn.is_closed():
                        self._reader_conn = await asyncpg.connect(self.url, timeout=READ_TIMEOUT)
                    return await self._reader_conn.fetch(sql, *args)
            except TRANSIENT as exc:
                log.warning("store_read_failed", error=f"{type(exc).__name__}: {exc}")
                self._away = True  # no more reads until the writer reaches it again
                if self._reader_conn is not None:
                    self._reader_conn.terminate()
                    self._reader_conn = None
                return None

    def _load_localpart(self, folded: str) -> None:
        if len(self._loads) >= LOADS or self._away:
            return

        async def load() -> None:
            rows = await self._read("SELECT network, native_id, localpart, nick, seen FROM puppets "
                                    "WHERE folded = $1 ORDER BY seen DESC LIMIT 1", folded)
            for row in rows or ():
                self._remember_puppet(row)

        task = asyncio.get_running_loop().create_task(load())
        self._loads.add(task)
        task.add_done_callback(self._loads.discard)

    async def loaded(self) -> None:
        """Wait for the local parts being loaded in the background (each read is bounded)."""
        await asyncio.gather(*self._loads, return_exceptions=True)

    # -- puppets ---------------------------------------------------------

    def puppet(self, identity: Identity) -> PuppetRecord:
        now = time.time()
        cached = self._puppets.get(identity.key) or self._queued_puppet(identity.key)
        if cached is None:
            return self._new_puppet(identity, now)
        record, seen = cached
        if now - seen > SEEN_EVERY:
            seen = now
            self._queue_puppet(identity.key, record, now, new=False)
        self._keep(identity.key, record, seen)
        return record

    def _new_puppet(self, identity: Identity, now: float) -> PuppetRecord:
        localpart = next(lp for lp in _candidates(identity) if fold_localpart(lp) not in self._by_localpart)
        record = PuppetRecord(localpart, identity.nick)
        self._queue_puppet(identity.key, record, now, new=True)
        self._keep(identity.key, record, now)
        self._keep_localpart(fold_localpart(localpart), identity)
        return record

    def rename_puppet(self, identity: Identity, nick: str) -> PuppetRecord:
        record = self.puppet(identity)
        if record.nick == nick:
            return record
        record = PuppetRecord(record.localpart, nick)
        seen = self._puppets[identity.key][1]
        self._keep(identity.key, record, seen)
        self._keep_localpart(fold_localpart(record.localpart), Identity(*identity.key, nick))
        self._queue_puppet(identity.key, record, seen, new=False)
        return record

    def identity_for_localpart(self, localpart: str) -> Identity | None:
        folded = fold_localpart(localpart)
        identity = self._by_localpart.get(folded)
        if identity is None:
            self._load_localpart(folded)
            return None
        self._keep_localpart(folded, identity)
        return identity

    def _queued_puppet(self, key: tuple[str, str]) -> tuple[PuppetRecord, float] | None:
        """A puppet out of memory's bound but not yet in the database (queued or being written)."""
        queued = self._puppet_writes.get(key) or self._writing.get(key)
        return queued[:2] if queued else None

    def _queue_puppet(self, key: tuple[str, str], record: PuppetRecord, seen: float, new: bool) -> None:
        queued = self._puppet_writes.get(key)
        self._puppet_writes[key] = (record, seen, new or bool(queued and queued[2]))
        self._writes += 1

    def _remember_puppet(self, row: asyncpg.Record) -> None:
        """A puppet read from the database; memory, where it has it, is newer."""
        key = (row["network"], row["native_id"])
        cached = self._puppets.get(key)
        if cached is None:
            self._keep(key, PuppetRecord(row["localpart"], row["nick"]), row["seen"])
        self._keep_localpart(fold_localpart(row["localpart"]),
                             Identity(*key, cached[0].nick if cached else row["nick"]))

    def _keep(self, key: tuple[str, str], record: PuppetRecord, seen: float) -> None:
        self._puppets[key] = (record, seen)
        self._puppets.move_to_end(key)
        if len(self._puppets) > PUPPET_CACHE:
            self._puppets.popitem(last=False)

    def _keep_localpart(self, folded: str, identity: Identity) -> None:
        self._by_localpart[folded] = identity
        self._by_localpart.move_to_end(folded)
        if len(self._by_localpart) > PUPPET_CACHE:
            self._by_localpart.popitem(last=False)

    # -- message ids -----------------------------------------------------

    def map_message(self, link: str, origin_id: str, endpoint: str, native_id: str) -> None:
        created = time.time()
        self._cache_message(link, origin_id, endpoint, native_id, created)
        self._message_writes.append((link, origin_id, endpoint, native_id, created))
        self._writes += 1
        self._trim_backlog()

    def _cache_message(self, link: str, origin_id: str, endpoint: str, native_id: str,
                       created: float) -> None:
        self._forget_message((link, endpoint, native_id))
        self._rows[(link, endpoint, native_id)] = (origin_id, created)
        self._names.setdefault((link, origin_id, endpoint), []).append(native_id)
        while len(self._rows) > MESSAGE_CACHE:
            self._forget_message(next(iter(self._rows)))

    def _forget_message(self, row: tuple[str, str, str]) -> None:
        found = self._rows.pop(row, None)
        if found is not None:
            link, endpoint, native_id = row
            names = self._names[(link, found[0], endpoint)]
            names.remove(native_id)
            if not names:
                del self._names[(link, found[0], endpoint)]

    def find_message(self, link: str, origin_id: str, endpoint: str, first: bool = False) -> str | None:
        names = self._names.get((link, origin_id, endpoint))
        return (names[0] if first else names[-1]) if names else None

    def find_origin(self, link: str, endpoint: str, native_id: str) -> str | None:
        found = self._rows.get((link, endpoint, native_id))
        return found[0] if found else None

    def prune(self, now: float | None = None, keep: int | None = None) -> None:
        """Forget message-id mappings older than `message_ttl` and all but the newest `keep`
        (default `message_limit`), and puppets unseen for `puppet_ttl`: message ids in memory
        now, the rest once the writer has committed it."""
        now = now or time.time()
        keep = self.message_limit if keep is None else keep
        while self._rows and (len(self._rows) > keep
                              or next(iter(self._rows.values()))[1] < now - self.message_ttl):
            self._forget_message(next(iter(self._rows)))
        self._prune = (now, keep)
        self.flush()

    # -- server keys -----------------------------------------------------

    def pinned_key(self, network: str, host: str) -> str | None:
        return self._keys.get((network, host))

    def pin_key(self, network: str, host: str, fingerprint: str) -> None:
        self._keys[(network, host)] = self._key_writes[(network, host)] = fingerprint
        self._writes += 1
        self.flush()

    # -- cursors ---------------------------------------------------------

    def cursor(self, name: str) -> object | None:
        value = self._cursors.get(name)
        return json.loads(value.json()) if hasattr(value, "json") else value

    def set_cursor(self, name: str, value: object) -> None:
        self._cursors[name] = value
        self._dirty.add(name)
        self._writes += 1

    def save_cursor(self, name: str, value: object) -> None:
        """Move a cursor and have it committed soon after this turn of the event loop."""
        self._cursors[name] = value
        self._dirty.add(name)
        self._writes += 1
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self.flush)

    def _cursor_text(self, name: str) -> str:
        value = self._cursors[name]
        return value.json() if hasattr(value, "json") else json.dumps(value)


def _candidates(identity: Identity) -> Iterator[str]:
    """The local parts a new puppet may get, in order: `nick%network`, `nick2%network`, ..."""
    escaped = escape_localpart(identity.nick)
    yield f"{escaped}%{identity.network}"
    n = 2
    while True:
        yield f"{escaped}{n}%{identity.network}"
        n += 1


async def _claim(conn: asyncpg.Connection, identity: Identity, localpart: str, seen: float) -> PuppetRecord:
    """The identity's puppet as the database has it, made if it has none: with `localpart`
    (what memory gave it) or else the first free one (a single bridge writes: no other
    transaction takes one meanwhile)."""
    row = await conn.fetchrow("SELECT localpart FROM puppets WHERE network = $1 AND native_id = $2",
                              *identity.key)
    if row is not None:
        await conn.execute("UPDATE puppets SET nick = $3, seen = GREATEST(seen, $4) "
                           "WHERE network = $1 AND native_id = $2", *identity.key, identity.nick, seen)
        return PuppetRecord(row["localpart"], identity.nick)
    for localpart in itertools.chain([localpart], _candidates(identity)):
        folded = fold_localpart(localpart)
        if await conn.fetchval("SELECT 1 FROM puppets WHERE folded = $1 OR localpart = $2",
                               folded, localpart) is None:
            await conn.execute("INSERT INTO puppets (network, native_id, localpart, nick, folded, seen) "
                               "VALUES ($1, $2, $3, $4, $5, $6)", *identity.key, localpart, identity.nick,
                               folded, seen)
            return PuppetRecord(localpart, identity.nick)
    raise AssertionError("unreachable")
