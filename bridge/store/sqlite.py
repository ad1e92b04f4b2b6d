"""The SQLite store: one file, WAL, schema migrations in code, group commits.

Writes go into an open transaction that `flush` commits; the app calls it
every `commit_interval` seconds, so a crash loses at most that window.
Puppets are cached in memory: every lookup on the hot path is a dict hit.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import sqlite3
import stringprep
import time
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import structlog

from bridge.core.events import Identity
from bridge.core.tokens import new_id
from bridge.store.base import HistoryLine, PuppetRecord

log = structlog.get_logger(__name__)

#: Schema upgrades: entry N brings a database from version N to N + 1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE puppets (
        network TEXT NOT NULL,
        native_id TEXT NOT NULL,
        localpart TEXT NOT NULL UNIQUE,
        nick TEXT NOT NULL,
        PRIMARY KEY (network, native_id)
    );
    CREATE TABLE messages (
        link TEXT NOT NULL,
        origin_id TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        native_id TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (link, origin_id, endpoint)
    );
    CREATE INDEX messages_created ON messages (created);
    CREATE TABLE server_keys (
        network TEXT NOT NULL,
        host TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        PRIMARY KEY (network, host)
    );
    """,
    """
    CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # The message-id map is read both ways: what a message is called on another endpoint,
    # and which message a native id (a correction's or a reply's target) belongs to; and a
    # message may have two names on one endpoint (an XMPP message's id and the room's
    # stanza-id), so a native id, not an origin, is what is unique per endpoint.
    """
    CREATE TABLE messages_by_native (
        link TEXT NOT NULL,
        origin_id TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        native_id TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (link, endpoint, native_id)
    );
    INSERT OR IGNORE INTO messages_by_native SELECT * FROM messages;
    DROP TABLE messages;
    ALTER TABLE messages_by_native RENAME TO messages;
    CREATE INDEX messages_origin ON messages (link, origin_id, endpoint);
    CREATE INDEX messages_created ON messages (created);
    """,
    # Puppets are looked up when needed, not loaded whole at start: by key, or by the local
    # part as the server folds it; and pruned once unseen for `puppet_ttl`.
    """
    ALTER TABLE puppets ADD COLUMN folded TEXT NOT NULL DEFAULT '';
    ALTER TABLE puppets ADD COLUMN seen REAL NOT NULL DEFAULT 0;
    UPDATE puppets SET folded = fold_localpart(localpart),
                       seen = CAST(strftime('%s', 'now') AS REAL);
    CREATE INDEX puppets_folded ON puppets (folded);
    CREATE INDEX puppets_seen ON puppets (seen);
    """,
    # Portal rooms' history, a copy per user (what their own connection heard), in archive
    # order (the row id); `uuid` is each line's stanza-id and MAM id.
    """
    CREATE TABLE portal_history (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        room TEXT NOT NULL,
        time REAL NOT NULL,
        nick TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX portal_history_room ON portal_history (owner, room, id);
    """,
)

#: Message-id mappings older than this are pruned (corrections and replies
#: to week-old messages are rare; the table must not grow forever).
MESSAGE_TTL = 7 * 24 * 3600.0
#: At most this many message-id mappings are kept (the newest); a busy week stays bounded.
MESSAGE_LIMIT = 200_000
#: A puppet unseen this long is forgotten (its JID may go to someone else later).
PUPPET_TTL = 365 * 24 * 3600.0
#: Puppets (and local parts) kept in memory, the most recently used.
PUPPET_CACHE = 10_000
#: How stale a puppet's `seen` may get before it is written again.
SEEN_EVERY = 24 * 3600.0
#: Portal history older than this goes (rooms a user left long ago must not stay forever).
HISTORY_TTL = 30 * 24 * 3600.0
#: A portal room's history is cut to its size every this many lines written to it (at once
#: when the size is smaller): at most this many lines over its size.
HISTORY_PRUNE_EVERY = 64


def escape_localpart(text: str) -> str:
    """XEP-0106 JID escaping of a node part (section 4.2), folded as servers fold it."""
    table = {" ": r"\20", '"': r"\22", "&": r"\26", "'": r"\27", "/": r"\2f",
             ":": r"\3a", "<": r"\3c", ">": r"\3e", "@": r"\40", "\\": r"\5c"}
    return fold_localpart("".join(table.get(ch, ch) for ch in text))


@functools.lru_cache(maxsize=4096)
def fold_localpart(node: str) -> str:
    """A local part as the server routes it: Nodeprep's mapping (RFC 3920 appendix A,
    RFC 3454 tables B.1 and B.2, then NFKC), so `Straße` is `strasse`: a stanza for a
    puppet reaches us under that name, whatever the store first wrote."""
    mapped = "".join(stringprep.map_table_b2(ch) for ch in node if not stringprep.in_table_b1(ch))
    return unicodedata.normalize("NFKC", mapped)


class SqliteStore:
    def __init__(self, path: str, *, puppet_ttl: float = PUPPET_TTL, message_ttl: float = MESSAGE_TTL,
                 message_limit: int = MESSAGE_LIMIT) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.create_function("fold_localpart", 1, fold_localpart, deterministic=True)
        self._migrate()
        self.puppet_ttl, self.message_ttl, self.message_limit = puppet_ttl, message_ttl, message_limit
        # The puppets in use: key -> (record, when last written as seen); folded local part
        # -> identity. Both least recently used first, bounded; the rest is on disk.
        self._puppets: collections.OrderedDict[tuple[str, str], tuple[PuppetRecord, float]] = \
            collections.OrderedDict()
        self._by_localpart: collections.OrderedDict[str, Identity] = collections.OrderedDict()
        self._cursors: dict[str, object] = {
            name: json.loads(value) for name, value in self.db.execute("SELECT name, value FROM cursors")}
        self._dirty: set[str] = set()
        self._history_writes: dict[tuple[str, str], int] = {}  # lines per room since its last cut
        self._flush_soon = False
        self._in_tx = False
        self.prune()

    @classmethod
    def from_url(cls, url: str, **limits: float) -> SqliteStore:
        """`sqlite:///var/lib/x.db` is /var/lib/x.db; `sqlite://x.db` is relative."""
        if not url.startswith("sqlite://"):
            raise ValueError(f"unsupported store url {url!r} (use sqlite:///path/to/file.db)")
        return cls(url.removeprefix("sqlite://"), **limits)

    def _migrate(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self.db.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        if row is None:
            self.db.execute("INSERT INTO schema_version VALUES (0)")
        for number in range(version, len(MIGRATIONS)):
            self.db.executescript(f"BEGIN; {MIGRATIONS[number]}; "
                                  f"UPDATE schema_version SET version = {number + 1}; COMMIT;")
            log.info("store_migrated", version=number + 1)

    def _write(self, sql: str, args: tuple) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN")
            self._in_tx = True
        self.db.execute(sql, args)

    # -- puppets ---------------------------------------------------------

    def puppet(self, identity: Identity) -> PuppetRecord:
        now = time.time()
        cached = self._puppets.get(identity.key)
        if cached is None:
            row = self.db.execute("SELECT localpart, nick, seen FROM puppets WHERE network = ? "
                                  "AND native_id = ?", identity.key).fetchone()
            cached = (PuppetRecord(row[0], row[1]), row[2]) if row else None
        if cached is None:
            return self._new_puppet(identity, now)
        record, seen = cached
        if now - seen > SEEN_EVERY:
            seen = now
            self._write("UPDATE puppets SET seen = ? WHERE network = ? AND native_id = ?",
                        (now, *identity.key))
        self._keep(identity.key, record, seen)
        return record

    def _new_puppet(self, identity: Identity, now: float) -> PuppetRecord:
        escaped = escape_localpart(identity.nick)
        localpart, n = f"{escaped}%{identity.network}", 1
        while self.identity_for_localpart(localpart) is not None:
            n += 1
            localpart = f"{escaped}{n}%{identity.network}"
        record = PuppetRecord(localpart, identity.nick)
        self._write("INSERT INTO puppets (network, native_id, localpart, nick, folded, seen) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (*identity.key, localpart, identity.nick, fold_localpart(localpart), now))
        self._keep(identity.key, record, now)
        return record

    def rename_puppet(self, identity: Identity, nick: str) -> PuppetRecord:
        record = self.puppet(identity)
        if record.nick == nick:
            return record
        record = PuppetRecord(record.localpart, nick)
        self._keep(identity.key, record, self._puppets[identity.key][1])
        self._by_localpart.pop(fold_localpart(record.localpart), None)
        self._write("UPDATE puppets SET nick = ? WHERE network = ? AND native_id = ?",
                    (nick, *identity.key))
        return record

    def identity_for_localpart(self, localpart: str) -> Identity | None:
        folded = fold_localpart(localpart)
        identity = self._by_localpart.get(folded)
        if identity is None:
            row = self.db.execute("SELECT network, native_id, nick FROM puppets WHERE folded = ? "
                                  "ORDER BY rowid DESC LIMIT 1", (folded,)).fetchone()
            if row is None:
                return None
            identity = Identity(*row)
        self._by_localpart[folded] = identity
        self._by_localpart.move_to_end(folded)
        if len(self._by_localpart) > PUPPET_CACHE:
            self._by_localpart.popitem(last=False)
        return identity

    def _keep(self, key: tuple[str, str], record: PuppetRecord, seen: float) -> None:
        """`record` is in use: kept in memory, the least recently used beyond the bound not."""
        self._puppets[key] = (record, seen)
        self._puppets.move_to_end(key)
        if len(self._puppets) > PUPPET_CACHE:
            self._puppets.popitem(last=False)

    def puppet_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM puppets").fetchone()[0]

    # -- message ids -----------------------------------------------------

    def map_message(self, link: str, origin_id: str, endpoint: str, native_id: str) -> None:
        self._write("INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?)",
                    (link, origin_id, endpoint, native_id, time.time()))

    def find_message(self, link: str, origin_id: str, endpoint: str, first: bool = False) -> str | None:
        order = "ASC" if first else "DESC"
        row = self.db.execute(
            "SELECT native_id FROM messages WHERE link = ? AND origin_id = ? AND endpoint = ? "
            f"ORDER BY created {order}, rowid {order} LIMIT 1", (link, origin_id, endpoint)).fetchone()
        return row[0] if row else None

    def find_origin(self, link: str, endpoint: str, native_id: str) -> str | None:
        row = self.db.execute(
            "SELECT origin_id FROM messages WHERE link = ? AND endpoint = ? AND native_id = ?",
            (link, endpoint, native_id)).fetchone()
        return row[0] if row else None

    def prune(self, now: float | None = None, keep: int | None = None) -> None:
        """Forget message-id mappings older than `message_ttl` and all but the newest `keep`
        (default `message_limit`), puppets unseen for `puppet_ttl`, and portal
        history older than `HISTORY_TTL`."""
        now = now or time.time()
        self._write("DELETE FROM messages WHERE created < ?", (now - self.message_ttl,))
        self._write("DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages "
                    "ORDER BY created DESC LIMIT -1 OFFSET ?)",
                    (self.message_limit if keep is None else keep,))
        self._write("DELETE FROM puppets WHERE seen < ?", (now - self.puppet_ttl,))
        self._write("DELETE FROM portal_history WHERE time < ?", (now - HISTORY_TTL,))
        self._puppets.clear()
        self._by_localpart.clear()
        self.flush()

    def message_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]

    # -- portal history --------------------------------------------------

    def add_history(self, owner: str, room: str, when: float, nick: str, body: str, keep: int) -> str:
        uuid = new_id()
        self._write("INSERT INTO portal_history (uuid, owner, room, time, nick, body) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (uuid, owner, room, when, nick, body))
        if len(self._history_writes) > 4096:
            self._history_writes.clear()  # a room's count starts again: pruned a little later
        written = self._history_writes[(owner, room)] = self._history_writes.get((owner, room), 0) + 1
        if written % HISTORY_PRUNE_EVERY == 0 or keep < HISTORY_PRUNE_EVERY:
            self._write("DELETE FROM portal_history WHERE owner = ? AND room = ? AND id <= (SELECT id FROM "
                        "portal_history WHERE owner = ? AND room = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (owner, room, owner, room, keep))
        return uuid

    def history(self, owner: str, room: str, limit: int, *, after: str | None = None,
                before: str | None = None, start: float | None = None, end: float | None = None,
                newest: bool = True) -> list[HistoryLine] | None:
        where, args = ["owner = ?", "room = ?"], [owner, room]
        for uuid, op in ((after, ">"), (before, "<")):
            if uuid is not None:
                row = self.db.execute("SELECT id FROM portal_history WHERE uuid = ? AND owner = ? "
                                      "AND room = ?", (uuid, owner, room)).fetchone()
                if row is None:
                    return None
                where.append(f"id {op} ?")
                args.append(row[0])
        for stamp, op in ((start, ">="), (end, "<=")):
            if stamp is not None:
                where.append(f"time {op} ?")
                args.append(stamp)
        rows = self.db.execute(
            f"SELECT uuid, time, nick, body FROM portal_history WHERE {' AND '.join(where)} "
            f"ORDER BY id {'DESC' if newest else 'ASC'} LIMIT ?", (*args, limit)).fetchall()
        lines = [HistoryLine(*row) for row in rows]
        return lines[::-1] if newest else lines

    # -- server keys -----------------------------------------------------

    def pinned_key(self, network: str, host: str) -> str | None:
        row = self.db.execute("SELECT fingerprint FROM server_keys WHERE network = ? AND host = ?",
                              (network, host)).fetchone()
        return row[0] if row else None

    def pin_key(self, network: str, host: str, fingerprint: str) -> None:
        self._write("INSERT OR REPLACE INTO server_keys VALUES (?, ?, ?)", (network, host, fingerprint))
        self.flush()

    # -- cursors ---------------------------------------------------------

    def cursor(self, name: str) -> object | None:
        value = self._cursors.get(name)
        return json.loads(value.json()) if hasattr(value, "json") else value

    def set_cursor(self, name: str, value: object) -> None:
        self._cursors[name] = value
        self._dirty.add(name)  # written at the next flush: a cursor moves with every message

    def save_cursor(self, name: str, value: object) -> None:
        """Move a cursor and have it on disk at the end of this turn of the event loop
        (written as `value` is then; one commit however many moved in the turn): for
        what a hard kill must not lose."""
        self._cursors[name] = value
        self._dirty.add(name)
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self.flush)

    # -- lifecycle -------------------------------------------------------

    def flush(self) -> None:
        for name in self._dirty:
            value = self._cursors[name]
            text = value.json() if hasattr(value, "json") else json.dumps(value)
            self._write("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (name, text))
        self._dirty.clear()
        self._flush_soon = False
        if self._in_tx:
            self.db.execute("COMMIT")
            self._in_tx = False

    async def prepare(self, identities: Iterable[Identity]) -> None:
        pass  # a puppet is read from the file when asked for

    async def prepare_messages(self, lookups: Iterable[tuple[str, str, str, str]]) -> None:
        pass  # so is a message id

    async def commit(self) -> bool:
        self.flush()
        return True

    def close(self) -> None:
        self.flush()
        self.db.close()

    async def aclose(self) -> None:
        self.close()
