"""Fixtures shared by unit and integration tests: the store backends, and logging.

- every test: loggers are not cached (a logger cached after a test set up the bridge's
  logging would never reach a later test's `capture_logs`), and structlog's defaults are
  back after the test.

- `postgres_server`: one real PostgreSQL (tests/servers/postgres.py) for the session.
- `backend`: parametrized over "sqlite" and "postgres": a fresh, empty store location per
  test (`backend.open()` opens a store there, again after a restart) and raw SQL on it.

Missing PostgreSQL binaries fail the postgres tests with the package to install; nothing is skipped.
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest
import structlog
import uvloop

from bridge import log
from tests.servers.postgres import PostgresServer

_databases = itertools.count(1)


def pytest_asyncio_loop_factories(config, item):
    """The tests run on the event loop the bridge runs on (`bridge.cli`)."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(autouse=True)
def _uncached_logging(monkeypatch):
    monkeypatch.setattr(log, "CACHE_LOGGERS", False)
    yield
    structlog.reset_defaults()


def _postgres():
    try:
        server = PostgresServer()
        server.start()
    except Exception as exc:
        pytest.fail(f"cannot start PostgreSQL: {exc}", pytrace=False)
    yield server
    server.remove()


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL for the store tests."""
    yield from _postgres()


@pytest.fixture
def own_postgres():
    """A PostgreSQL of the test's own, to kill or stop."""
    yield from _postgres()


class SqliteBackend:
    name = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "bridge.db")
        from bridge.store import sqlite
        self.module, self.migrations = sqlite, sqlite.MIGRATIONS

    def open(self, **limits):
        return self.module.SqliteStore(self.path, **limits)

    async def execute(self, sql: str, *args) -> list[tuple]:
        db = sqlite3.connect(self.path)
        try:
            with db:
                return db.execute(sql, args).fetchall()
        finally:
            db.close()

    async def executescript(self, sql: str) -> None:
        db = sqlite3.connect(self.path)
        db.executescript(sql)
        db.commit()
        db.close()


class PostgresBackend:
    name = "postgres"

    def __init__(self, server: PostgresServer) -> None:
        self.url = server.create_database(f"test{next(_databases)}")
        from bridge.store import postgres, postgres_schema
        self.module, self.migrations = postgres, postgres_schema.MIGRATIONS

    def open(self, **limits):
        return self.module.PostgresStore(self.url, **limits)

    async def execute(self, sql: str, *args) -> list[tuple]:
        import asyncpg
        conn = await asyncpg.connect(self.url)
        try:
            return [tuple(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    async def executescript(self, sql: str) -> None:
        import asyncpg
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        return SqliteBackend(tmp_path)
    return PostgresBackend(request.getfixturevalue("postgres_server"))

