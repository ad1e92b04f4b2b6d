"""How a SILC session fails: errors its owner and callers of commands see."""

from __future__ import annotations

from bridge.silc.payloads import Command, status_name


class SessionError(Exception):
    """The connection must be closed."""


class KeyRefused(SessionError):
    """The server's public key is not the pinned or configured one."""


class NotConnected(Exception):
    """The session is not registered (or already closed)."""


class CommandError(Exception):
    def __init__(self, command: int, status: int) -> None:
        super().__init__(f"{Command(command).name} failed: {status_name(status)}")
        self.command, self.status = command, status
