"""What the bridge says about a SILC channel configured with a private key.

Such a channel is only ever used with its key (bridge/silc/channel.py). When
relaying there pauses or resumes, and when messages there cannot be read with
the configured passphrase, the log says so at warning and the adapter tells
the linked rooms with a notice from the bridge on the SILC endpoint: once per
change, with counts, never a message's content. Repeated failures are
counted and logged at most once per `LOG_EVERY` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

LOG_EVERY = 60.0


class KeyGuard:
    def __init__(
        self, network: str, room: str, log: structlog.BoundLogger, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.where = f"SILC channel {room} on {network}"
        self.log = log.bind(room=room)
        self._clock = clock
        self.unreadable = 0  # not under our key nor the server's: a wrong passphrase somewhere
        self.under_server_key = 0  # from clients that do not use the private key
        self.held_back = 0  # messages for the channel not sent while paused
        self._since_pause = (0, 0)  # (held_back, under_server_key) when the pause began
        self._logged: dict[str, float] = {}
        self._told_unreadable = False

    def paused(self, reason: str) -> str:
        """The notice for the linked rooms: relaying stopped, and why."""
        self._since_pause = (self.held_back, self.under_server_key)
        self.log.warning("silc_relay_paused", reason=reason)
        return (
            f"muc-bridge: relaying with {self.where} is paused: {reason}. Without that mode, SILC "
            "clients do not use the channel's private key and the SILC servers can read what is "
            "said there, so nothing is relayed either way until it is set again."
        )

    def resumed(self) -> str:
        held, dropped = self.held_back - self._since_pause[0], self.under_server_key - self._since_pause[1]
        self.log.warning("silc_relay_resumed", held_back=held, dropped_from_silc=dropped)
        missed = f" {held + dropped} messages were not relayed meanwhile." if held + dropped else ""
        return (
            f"muc-bridge: relaying with {self.where} has resumed: the channel uses its private key again."
            + missed
        )

    def hold_back(self) -> None:
        """A message for the channel is not sent: relaying is paused."""
        self.held_back += 1
        self._rate_limited("silc_relay_held_back", self.held_back)

    def not_readable(self, server_key: bool) -> str | None:
        """Count a message that did not open with our key; the first one under
        another private key gets a notice for the linked rooms."""
        if server_key:
            self.under_server_key += 1
            self._rate_limited("silc_message_under_server_key_dropped", self.under_server_key)
            return None
        self.unreadable += 1
        self._rate_limited("silc_message_unreadable", self.unreadable)
        if self._told_unreadable:
            return None
        self._told_unreadable = True
        return (
            f"muc-bridge: messages in {self.where} cannot be read with the configured passphrase "
            "(one side has another one), so they are not relayed."
        )

    def _rate_limited(self, event: str, total: int) -> None:
        now = self._clock()
        if now - self._logged.get(event, -LOG_EVERY) >= LOG_EVERY:
            self._logged[event] = now
            self.log.warning(event, total=total)
