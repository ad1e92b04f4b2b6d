"""Portal users' SASL credentials, kept in the store sealed.

Each (user, network) entry is AES-256-GCM (`cryptography`) of the account and password,
with the user and network as associated data: copied into another user's entry, it does
not open. The key is in a file of its own outside the store (`portal.secret_file`, made
with mode 0600 on first use), so the store file alone gives nobody a password. Entries
live in store cursors (`portal:sasl:<user>`: network -> base64 of nonce and ciphertext),
which both store backends keep; a lost or changed key makes them unreadable, which is
logged and taken as no credentials.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bridge.store.base import Store

log = structlog.get_logger(__name__)

CURSOR = "portal:sasl:"
NONCE = 12  # bytes (NIST SP 800-38D: 96-bit nonces for GCM)
#: Longest account name and password taken (IRCv3 SASL sends PLAIN in 400-byte pieces;
#: anything near this is a mistake, not a password).
MAX_FIELD = 300


class SaslCredentials:
    def __init__(self, store: Store, key_file: str | os.PathLike[str]) -> None:
        self.store = store
        self.key_file = Path(key_file)
        self._aead: AESGCM | None = None

    def get(self, user: str, network: str) -> tuple[str, str] | None:
        """(account, password) `user` gave for `network`, if any (and if they open)."""
        sealed = self._entries(user).get(network)
        if not isinstance(sealed, str) or not self.key_file.exists():
            return None
        try:
            raw = base64.b64decode(sealed)
            plain = self._key().decrypt(raw[:NONCE], raw[NONCE:], _bound(user, network))
            account, password = json.loads(plain)
        except (InvalidTag, ValueError, TypeError, OSError) as exc:
            log.warning("portal_sasl_unreadable", network=network, error=type(exc).__name__)
            return None
        return str(account), str(password)

    def accounts(self, user: str) -> dict[str, str]:
        """network -> the account `user` logs in as there."""
        found = {network: self.get(user, network) for network in self._entries(user)}
        return {network: pair[0] for network, pair in found.items() if pair is not None}

    def set(self, user: str, network: str, account: str, password: str) -> None:
        """Seal and keep `user`'s credentials for `network` (on disk at the next commit)."""
        if not account or not password or max(len(account), len(password)) > MAX_FIELD \
                or any(c in account + password for c in "\0\r\n"):
            raise ValueError(f"an account and a password of one line each, {MAX_FIELD} characters at most")
        nonce = secrets.token_bytes(NONCE)
        sealed = nonce + self._key().encrypt(nonce, json.dumps([account, password]).encode(),
                                             _bound(user, network))
        entries = {**self._entries(user), network: base64.b64encode(sealed).decode()}
        self.store.save_cursor(CURSOR + user, entries)

    def clear(self, user: str, network: str) -> bool:
        """Forget `user`'s credentials for `network`; False if there were none."""
        entries = self._entries(user)
        if entries.pop(network, None) is None:
            return False
        self.store.save_cursor(CURSOR + user, entries)
        return True

    def _entries(self, user: str) -> dict[str, object]:
        saved = self.store.cursor(CURSOR + user)
        return dict(saved) if isinstance(saved, dict) else {}

    def _key(self) -> AESGCM:
        """The key from `key_file`, made there (0600, never replaced) if there is none."""
        if self._aead is None:
            try:
                fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                mode = self.key_file.stat().st_mode
                if mode & (stat.S_IRWXG | stat.S_IRWXO):
                    log.warning("portal_secret_file_open_to_others", path=str(self.key_file),
                                mode=oct(mode & 0o777))
                key = base64.b64decode(self.key_file.read_text().strip(), validate=True)
            else:
                key = AESGCM.generate_key(bit_length=256)
                with os.fdopen(fd, "w") as out:
                    out.write(base64.b64encode(key).decode() + "\n")
                log.info("portal_secret_file_made", path=str(self.key_file))
            self._aead = AESGCM(key)
        return self._aead


def _bound(user: str, network: str) -> bytes:
    return f"{user}\0{network}".encode()
