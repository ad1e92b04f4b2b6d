"""What the client knows about one joined channel: its ID, members and keys.

Server-distributed keys change on every join and leave (silc-spec 4.3, 4.4);
the previous ones are kept for a short while to open messages in flight. A
channel private key (from a configured passphrase) is tried first and used
for sending when set.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from bridge.silc.crypto import hmac_hash
from bridge.silc.ids import SilcId
from bridge.silc.message import ChannelKey

OLD_KEY_LIFETIME = 120.0  # seconds a replaced key still opens messages
OLD_KEYS = 4
DEFAULT_HMAC = "hmac-sha1-96"


@dataclass
class Channel:
    name: str
    id: SilcId
    hmac: str = DEFAULT_HMAC
    mode: int = 0
    topic: str = ""
    members: set[bytes] = field(default_factory=set)
    private_key: ChannelKey | None = None
    _raw: tuple[str, bytes] | None = None  # cipher name, raw server key
    _key: ChannelKey | None = None
    _old: deque[tuple[ChannelKey, float]] = field(default_factory=lambda: deque(maxlen=OLD_KEYS))

    @property
    def cipher(self) -> str | None:
        return self._raw[0] if self._raw else None

    def set_server_key(self, cipher: str, raw: bytes, now: float | None = None) -> None:
        """Install a new key from a Channel Key Payload (CryptoError if unusable)."""
        key = ChannelKey.from_server(cipher, raw, self.hmac)
        if self._key is not None:
            self._old.append((self._key, (now or time.monotonic()) + OLD_KEY_LIFETIME))
        self._raw, self._key = (cipher, raw), key

    def set_hmac(self, hmac_name: str) -> None:
        """CMODE_CHANGE named a new channel HMAC: the current key's MAC key follows.
        One we cannot compute raises CryptoError and changes nothing."""
        hmac_hash(hmac_name)
        if self._raw is not None:
            self._key = ChannelKey.from_server(self._raw[0], self._raw[1], hmac_name)
        self.hmac = hmac_name

    def sending_key(self) -> ChannelKey | None:
        return self.private_key or self._key

    def receiving_keys(self, now: float | None = None) -> list[ChannelKey]:
        now = now or time.monotonic()
        keys = [k for k in (self.private_key, self._key) if k is not None]
        return keys + [k for k, expires in reversed(self._old) if expires > now]
