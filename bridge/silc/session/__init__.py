"""One SILC client connection as a state machine over bytes (silc-spec 4.1).

`Session` (machine.py) drives the connection through its phases and holds its
state; what it does once registered lives in one module per concern:
commands.py (requests and replies), users.py (who a Client ID is, and the
ordered event queue), messages.py (channel and private messages, channel
keys), notifies.py (joins, leaves, nick and mode changes) and rekey.py
(session keys).
"""

from bridge.silc.session.errors import CommandError, KeyRefused, NotConnected, SessionError
from bridge.silc.session.machine import Session, SessionConfig
from bridge.silc.session.phase import Phase

__all__ = ["CommandError", "KeyRefused", "NotConnected", "Phase", "Session", "SessionConfig", "SessionError"]
