"""What the bridge itself says in a room about delivery: gaps and stale messages.

Adapters emit these as `Message`s from `BRIDGE` (kind NOTICE) on their own endpoint; the
router shows them on every other endpoint of the link.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from bridge.core.events import Message


def clock(stamp: float) -> str:
    """A Unix time as people read it in a notice: `12:01:05 UTC`."""
    return time.strftime("%H:%M:%S UTC", time.gmtime(stamp))


def late_mark(message: Message) -> str:
    """What goes before a message relayed late (replayed from a room's history): when it
    was said. Nothing for a message relayed as it happens."""
    return f"[{clock(message.time)}] " if message.late else ""


def gap_text(origin: str, since: float, until: float) -> str:
    """Messages on `origin` (`network/room`) between the two times may not have reached the bridge."""
    return (f"muc-bridge: messages from {origin} between {clock(since)} and {clock(until)} "
            "may be missing here (the bridge could not hear them)")


def stale_text(count: int, origins: Iterable[str], max_age: float) -> str:
    """`count` messages were too old to be worth relaying when their turn came."""
    minutes = _duration(max_age)
    plural = "message" if count == 1 else "messages"
    return (f"muc-bridge: {count} {plural} from {', '.join(sorted(set(origins)))} waited longer "
            f"than {minutes} to be delivered and {'was' if count == 1 else 'were'} dropped")


def kicked_text(nick: str, origin: str, by: str, reason: str, hold: float) -> str:
    """An XMPP user's own client (`xmpp_users: connect`), called `nick`, was kicked out of
    `origin` (`network/room`) by `by`: the relay speaks for them there for `hold` seconds."""
    why = f" ({reason})" if reason else ""
    return (f"muc-bridge: {by or 'the server'} kicked {nick} from {origin}{why}; {nick}'s lines go "
            f"through the bridge's relay there for the next {_duration(hold)}")


def _duration(seconds: float) -> str:
    value, unit = (seconds / 60, "minute") if seconds >= 60 else (seconds, "second")
    return f"{value:g} {unit}{'' if value == 1 else 's'}"
