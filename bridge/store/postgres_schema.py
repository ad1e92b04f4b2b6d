"""The PostgreSQL store's schema: its numbered migrations (as SQLite's, in PostgreSQL's
dialect), what a role needs to make or use the tables, and which errors are worth a retry."""

from __future__ import annotations

import asyncpg
import structlog

from bridge.store.sqlite import fold_localpart

log = structlog.get_logger(__name__)

#: What a lost, refused or interrupted connection raises, and what a database going down,
#: full or read-only (a standby) answers: retried. Anything else is a bug or bad data.
#: InternalClientError is asyncpg's protocol left mid-operation: on uvloop, a connection lost
#: inside a transaction ends so (the rollback finds it busy), and only a new one can go on.
TRANSIENT = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
             asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.InsufficientResourcesError,
             asyncpg.exceptions.TransactionRollbackError, asyncpg.exceptions.ReadOnlySQLTransactionError,
             asyncpg.exceptions.InternalClientError)

#: Schema upgrades, numbered as SQLite's (`bridge.store.sqlite.MIGRATIONS`) up to 4; PostgreSQL's dialect.
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
        created DOUBLE PRECISION NOT NULL,
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
    """
    CREATE TABLE messages_by_native (
        link TEXT NOT NULL,
        origin_id TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        native_id TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (link, endpoint, native_id)
    );
    INSERT INTO messages_by_native SELECT * FROM messages ON CONFLICT DO NOTHING;
    DROP TABLE messages;
    ALTER TABLE messages_by_native RENAME TO messages;
    ALTER INDEX messages_by_native_pkey RENAME TO messages_pkey;
    CREATE INDEX messages_origin ON messages (link, origin_id, endpoint);
    CREATE INDEX messages_created ON messages (created);
    """,
    # The folded local parts are written by `_fold_existing` (Nodeprep is Python's, not SQL's).
    """
    ALTER TABLE puppets ADD COLUMN folded TEXT NOT NULL DEFAULT '';
    ALTER TABLE puppets ADD COLUMN seen DOUBLE PRECISION NOT NULL DEFAULT 0;
    UPDATE puppets SET seen = EXTRACT(EPOCH FROM now());
    CREATE INDEX puppets_folded ON puppets (folded);
    CREATE INDEX puppets_seen ON puppets (seen);
    """,
    # PostgreSQL only (SQLite has no standby): who leads, see `bridge.store.lease`.
    """
    CREATE TABLE lease (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        term BIGINT NOT NULL,
        holder TEXT NOT NULL,
        since DOUBLE PRECISION NOT NULL,
        released BOOLEAN NOT NULL
    );
    INSERT INTO lease VALUES (1, 0, '', 0, TRUE);
    """,
)


async def migrate(conn: asyncpg.Connection) -> None:
    """Bring the database to the newest schema version, in one transaction."""
    async with conn.transaction():
        # One bridge migrates at a time (a second one waits here).
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('muc-bridge schema'))")
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = await conn.fetchval("SELECT version FROM schema_version")
        if version is None:
            version = 0
            await conn.execute("INSERT INTO schema_version VALUES (0)")
        for number in range(version, len(MIGRATIONS)):
            await conn.execute(MIGRATIONS[number])
            if number == 3:
                await _fold_existing(conn)
            await conn.execute("UPDATE schema_version SET version = $1", number + 1)
            log.info("store_migrated", version=number + 1)


async def privileges_problem(conn: asyncpg.Connection) -> str | None:
    """What the connected role lacks to migrate the store (make its tables) or to use them."""
    user, schema = await conn.fetchval("SELECT current_user"), await conn.fetchval("SELECT current_schema()")
    version = 0
    if await conn.fetchval("SELECT to_regclass('schema_version')") is not None:
        version = await conn.fetchval("SELECT version FROM schema_version") or 0
    if version < len(MIGRATIONS):
        if schema is None:
            return f"role {user} has no schema to make the store's tables in (see its search_path)"
        if not await conn.fetchval("SELECT has_schema_privilege(current_schema(), 'CREATE')"):
            return (f"role {user} may not create tables in schema {schema}: the store makes its "
                    f"tables there (GRANT CREATE ON SCHEMA {schema} TO {user}, or make it the owner)")
        return None
    for table in ("puppets", "messages", "cursors", "server_keys", "schema_version", "lease"):
        if not await conn.fetchval("SELECT has_table_privilege($1, 'SELECT,INSERT,UPDATE,DELETE')", table):
            return f"role {user} may not read and write the store's table {table}"
    return None


async def _fold_existing(conn: asyncpg.Connection) -> None:
    """Migration 4's Python half: each puppet's local part as the server folds it."""
    rows = await conn.fetch("SELECT network, native_id, localpart FROM puppets")
    await conn.executemany("UPDATE puppets SET folded = $3 WHERE network = $1 AND native_id = $2",
                           [(row["network"], row["native_id"], fold_localpart(row["localpart"]))
                            for row in rows])
