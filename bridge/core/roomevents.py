"""What IRC and SILC show of room events elsewhere: kicks, nick changes, who set a topic.

Each is one line from the bridge itself. Nick changes are rate-limited per room (a few at
once, then one per `NICK_INTERVAL` s; the next one shown says how many were not), so a nick
flood in the MUC is not a line flood on IRC.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bridge.core.events import BRIDGE, Endpoint, Event, Kick, NickChange, Topic
from bridge.core.ratelimit import TokenBucket

NICK_BURST = 3
NICK_INTERVAL = 10.0


def where(endpoint: Endpoint) -> str:
    """How a line names the room an event happened in."""
    return "the MUC" if endpoint.network == "xmpp" else str(endpoint)


def kick_text(event: Kick) -> str:
    by = "" if event.sender == BRIDGE else f" by {event.sender.nick}"
    reason = f": {event.reason}" if event.reason else ""
    return f"{event.target.nick} was kicked from {where(event.endpoint)}{by}{reason}"


def topic_setter_text(event: Topic) -> str | None:
    """The line before a topic relayed from elsewhere: who set it (None: the bridge)."""
    if event.sender == BRIDGE:
        return None
    return f"{event.sender.nick} set the topic in {where(event.endpoint)}"


class RoomEvents:
    """The lines for one network's rooms; `line` is None for what is not shown."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # room -> (its bucket, nick changes not shown since the last one shown)
        self._nicks: dict[str, tuple[TokenBucket, int]] = {}

    def line(self, room: str, event: Event) -> str | None:
        if isinstance(event, Kick):
            return kick_text(event)
        if isinstance(event, NickChange) and event.new_nick != event.sender.nick:
            return self._nick_line(room, event)
        return None

    def _nick_line(self, room: str, event: NickChange) -> str | None:
        bucket, skipped = self._nicks.get(room) or (
            TokenBucket(NICK_BURST, NICK_INTERVAL, clock=self._clock), 0)
        if bucket.delay() > 0:
            self._nicks[room] = (bucket, skipped + 1)
            return None
        bucket.spend()
        self._nicks[room] = (bucket, 0)
        more = f" ({skipped} more nick changes not shown)" if skipped else ""
        return f"{event.sender.nick} is now known as {event.new_nick}{more}"
