"""The phases of one SILC client connection (silc-spec 4.1)."""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    KEY_EXCHANGE = "key exchange"
    AUTH = "authentication"
    REGISTERING = "registering"
    CONNECTED = "connected"
    QUITTING = "quitting"  # QUIT sent or about to be: reading until the server closes
    CLOSED = "closed"
