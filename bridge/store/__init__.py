"""What the bridge remembers across restarts: `open_store` picks the backend by URL scheme."""

from __future__ import annotations

from bridge.store.base import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(url: str, term: int | None = None, **limits: float) -> Store:
    """`sqlite:///path.db` (the default, embedded) or `postgresql://user@host/db`; `term`:
    the lead it writes for (a standby's, `bridge.store.lease`; PostgreSQL only)."""
    if url.startswith(POSTGRES_SCHEMES):
        from bridge.store.postgres import PostgresStore  # asyncpg: only when asked for
        return PostgresStore(url, term=term, **limits)
    if term is not None:
        raise ValueError("a standby needs a PostgreSQL store")
    from bridge.store.sqlite import SqliteStore
    return SqliteStore.from_url(url, **limits)
