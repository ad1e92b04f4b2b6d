"""What the bridge remembers across restarts: `open_store` picks the backend by URL scheme."""

from __future__ import annotations

from bridge.store.base import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(url: str, **limits: float) -> Store:
    """`sqlite:///path.db` (the default, embedded) or `postgresql://user@host/db`."""
    if url.startswith(POSTGRES_SCHEMES):
        from bridge.store.postgres import PostgresStore  # asyncpg: only when asked for
        return PostgresStore(url, **limits)
    from bridge.store.sqlite import SqliteStore
    return SqliteStore.from_url(url, **limits)
