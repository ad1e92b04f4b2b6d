"""The SQLite store: one file, WAL, schema migrations in code, group commits.

Writes go into an open transaction that `flush` commits; the app calls it
every `commit_interval` seconds, so a crash loses at most that window.
Puppets are cached in memory: every lookup on the hot path is a dict hit.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import stringprep
import time
import unicodedata
from pathlib import Path

import structlog

from bridge.core.events import Identity
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


def fold_localpart(node: str) -> str:
    """A local part as the server routes it: Nodeprep's mapping (RFC 3920 appendix A,
    RFC 3454 tables B.1 and B.2, then NFKC), so `Straße` is `strasse`: a stanza for a
    puppet reaches us under that name, whatever the store first wrote."""
    mapped = "".join(stringprep.map_table_b2(ch) for ch in node if not stringprep.in_table_b1(ch))
    return unicodedata.normalize("NFKC", mapped)


class SqliteStore:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self._puppets: dict[tuple[str, str], PuppetRecord] = {}
        self._by_localpart: dict[str, Identity] = {}
        for network, native_id, localpart, nick in self.db.execute(
            "SELECT network, native_id, localpart, nick FROM puppets"
        ):
            self._puppets[(network, native_id)] = PuppetRecord(localpart, nick)
            self._by_localpart[fold_localpart(localpart)] = Identity(network, native_id, nick)
        self._cursors: dict[str, object] = {
            name: json.loads(value) for name, value in self.db.execute("SELECT name, value FROM cursors")}
        self._dirty: set[str] = set()
        self._history_writes: dict[tuple[str, str], int] = {}  # lines per room since its last cut
        self._flush_soon = False
        self._in_tx = False
        self.prune()

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        """`sqlite:///var/lib/x.db` is /var/lib/x.db; `sqlite://x.db` is relative."""
        if not url.startswith("sqlite://"):
            raise ValueError(f"unsupported store url {url!r} (use sqlite:///path/to/file.db)")
        return cls(url.removeprefix("sqlite://"))

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
        record = self._puppets.get(identity.key)
        if record is not None:
            return record
        base = f"{escape_localpart(identity.nick)}%{identity.network}"
        localpart, n = base, 1
        while fold_localpart(localpart) in self._by_localpart:
            n += 1
            localpart = f"{escape_localpart(identity.nick)}{n}%{identity.network}"
        record = PuppetRecord(localpart, identity.nick)
        self._puppets[identity.key] = record
        self._by_localpart[fold_localpart(localpart)] = identity
        self._write("INSERT INTO puppets VALUES (?, ?, ?, ?)",
                    (identity.network, identity.native_id, localpart, identity.nick))
        return record

    def rename_puppet(self, identity: Identity, nick: str) -> PuppetRecord:
        record = self.puppet(identity)
        if record.nick == nick:
            return record
        record = PuppetRecord(record.localpart, nick)
        self._puppets[identity.key] = record
        self._by_localpart[fold_localpart(record.localpart)] = Identity(identity.network, identity.native_id, nick)
        self._write("UPDATE puppets SET nick = ? WHERE network = ? AND native_id = ?",
                    (nick, identity.network, identity.native_id))
        return record

    def identity_for_localpart(self, localpart: str) -> Identity | None:
        return self._by_localpart.get(fold_localpart(localpart))

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

    def prune(self, now: float | None = None, keep: int = MESSAGE_LIMIT) -> None:
        """Forget message-id mappings older than `MESSAGE_TTL`, and all but the newest `keep`;
        portal history older than `HISTORY_TTL`."""
        cutoff = (now or time.time()) - MESSAGE_TTL
        self._write("DELETE FROM messages WHERE created < ?", (cutoff,))
        self._write("DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages "
                    "ORDER BY created DESC LIMIT -1 OFFSET ?)", (keep,))
        self._write("DELETE FROM portal_history WHERE time < ?", ((now or time.time()) - HISTORY_TTL,))
        self.flush()

    def message_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]

    # -- portal history --------------------------------------------------

    def add_history(self, owner: str, room: str, when: float, nick: str, body: str, keep: int) -> str:
        uuid = secrets.token_urlsafe(12)
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

    def close(self) -> None:
        self.flush()
        self.db.close()
