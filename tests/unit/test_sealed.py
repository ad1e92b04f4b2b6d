"""Portal users' SASL logins sealed in the store (`bridge.store.sealed`), on both backends."""

from __future__ import annotations

import pytest

from bridge.store.sealed import CURSOR, SaslCredentials
from tests.unit.test_store import restart

pytestmark = pytest.mark.asyncio


async def test_a_login_survives_a_restart_and_is_nowhere_in_the_store_as_text(backend, tmp_path):
    key = tmp_path / "keys" / "portal.key"
    key.parent.mkdir()
    store = backend.open()
    logins = SaslCredentials(store, key)
    logins.set("alice@example.org", "libera", "alice-account", "open sesame")
    assert key.stat().st_mode & 0o777 == 0o600  # made on first use, for the bridge's user only
    store = await restart(backend, store)
    logins = SaslCredentials(store, key)
    assert logins.get("alice@example.org", "libera") == ("alice-account", "open sesame")
    assert logins.accounts("alice@example.org") == {"libera": "alice-account"}
    assert logins.get("bob@example.org", "libera") is None
    stored = await backend.execute("SELECT value FROM cursors")
    assert not any("sesame" in str(row) or "alice-account" in str(row) for row in stored)
    await store.aclose()


async def test_a_login_moved_to_another_user_or_read_with_another_key_does_not_open(backend, tmp_path):
    store = backend.open()
    logins = SaslCredentials(store, tmp_path / "portal.key")
    logins.set("alice@example.org", "libera", "alice-account", "open sesame")
    store.set_cursor(CURSOR + "mallory@example.org", store.cursor(CURSOR + "alice@example.org"))
    assert logins.get("mallory@example.org", "libera") is None
    assert SaslCredentials(store, tmp_path / "other.key").get("alice@example.org", "libera") is None  # no key
    other = SaslCredentials(store, tmp_path / "other.key")
    other.set("carol@example.org", "libera", "c", "p")  # makes other.key
    assert other.get("alice@example.org", "libera") is None
    await store.aclose()


async def test_clearing_forgets_and_bad_input_is_refused(backend, tmp_path):
    store = backend.open()
    logins = SaslCredentials(store, tmp_path / "portal.key")
    logins.set("alice@example.org", "libera", "a", "p")
    assert logins.clear("alice@example.org", "libera") and not logins.clear("alice@example.org", "libera")
    assert logins.get("alice@example.org", "libera") is None
    for account, password in (("", "p"), ("a", ""), ("a", "p\r\nQUIT"), ("a", "p" * 400)):
        with pytest.raises(ValueError):
            logins.set("alice@example.org", "libera", account, password)
    await store.aclose()
