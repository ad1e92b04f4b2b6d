"""What the client knows about one joined channel: its ID, modes, members and keys.

Server-distributed keys change on every join and leave (silc-spec 4.3, 4.4);
the previous ones are kept for a short while to open messages in flight.

A channel configured with a private key (from a passphrase) is only ever used
with it: messages are read with that key alone, and sent only while the
channel has the private-key mode, which tells the other clients to use their
private key too (silc-commands CMODE, SILC_CMODE_PRIVKEY). Without the mode
they talk under the server's key, which the servers can read.
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
CMODE_PRIVKEY = 0x4  # silc-commands CMODE
CUMODE_FOUNDER = 0x1  # silc-commands CUMODE


@dataclass
class Channel:
    name: str
    id: SilcId
    hmac: str = DEFAULT_HMAC
    mode: int = 0
    own_mode: int = 0  # the bridge's channel user mode (CUMODE)
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

    @property
    def secured(self) -> bool:
        """False while a channel with a private key lacks the private-key mode."""
        return self.private_key is None or bool(self.mode & CMODE_PRIVKEY)

    @property
    def founded(self) -> bool:
        """Only the founder may set or unset the private-key mode (silc-commands
        CMODE; silcd refuses operators too). Whoever creates a channel founds it."""
        return bool(self.own_mode & CUMODE_FOUNDER)

    def sending_key(self) -> ChannelKey | None:
        if self.private_key is not None:
            return self.private_key if self.secured else None
        return self._key

    def receiving_keys(self, now: float | None = None) -> list[ChannelKey]:
        return [self.private_key] if self.private_key is not None else self.server_keys(now)

    def server_keys(self, now: float | None = None) -> list[ChannelKey]:
        """The server's current key and the recent ones, newest first."""
        now = now or time.monotonic()
        current = [self._key] if self._key is not None else []
        return current + [k for k, expires in reversed(self._old) if expires > now]
