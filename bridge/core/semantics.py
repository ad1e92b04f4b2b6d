"""How corrections, retractions, reactions and replies read on a network that has only
lines of text (IRC without the IRCv3 tags, SILC). Network-neutral.

- A correction: `* corrected text`, or for a small change in a long message a sed-style
  `* s/old words/new words/`; a burst of corrections of one message shows the latest once
  the burst is over (`Pacer`), never each.
- A retraction: `(retracted: "first words…")`.
- A reply: `bob: text`.
- Reactions: gathered for `REACTION_WINDOW` seconds per room, then one line,
  `alice reacted 👍 to "first words…"; carol 😂 to ...`.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Hashable

#: Texts of recent relayed messages kept per adapter (for diffs and excerpts).
RECENT = 1024
EXCERPT = 30  # characters of a message quoted in a retraction or reaction line
#: A correction coming this soon after the last one shown for the same message waits,
#: and only the newest of those waiting is shown when the time is up.
CORRECTION_QUIET = 5.0
#: Reactions in a room within this time share one line.
REACTION_WINDOW = 5.0
#: A correction is shown as `s/old/new/` when the message is at least this long and
#: at most this many words changed.
DIFF_MIN_LENGTH = 60
DIFF_MAX_WORDS = 6


class Recent:
    """The newest `limit` texts, by key."""

    def __init__(self, limit: int = RECENT) -> None:
        self.limit = limit
        self._texts: collections.OrderedDict[Hashable, str] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._texts)

    def put(self, key: Hashable, text: str) -> None:
        self._texts[key] = text
        self._texts.move_to_end(key)
        if len(self._texts) > self.limit:
            self._texts.popitem(last=False)

    def get(self, key: Hashable) -> str | None:
        return self._texts.get(key)

    def pop(self, key: Hashable) -> str | None:
        return self._texts.pop(key, None)


def excerpt(text: str | None) -> str:
    if not text:
        return "a message"
    text = " ".join(text.split())
    return f'"{text[:EXCERPT].rstrip()}…"' if len(text) > EXCERPT else f'"{text}"'


def correction_text(old: str | None, new: str) -> str:
    """What a line-based network sees for a correction of `old` (if known) to `new`."""
    if old is not None and len(new) >= DIFF_MIN_LENGTH and "\n" not in old + new and "/" not in old + new:
        a, b = old.split(" "), new.split(" ")
        start = 0
        while start < min(len(a), len(b)) and a[start] == b[start]:
            start += 1
        end = 0
        while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
            end += 1
        removed, added = a[start:len(a) - end], b[start:len(b) - end]
        if removed and len(removed) + len(added) <= DIFF_MAX_WORDS:
            return f"* s/{' '.join(removed)}/{' '.join(added)}/"
    return f"* {new}"


def retraction_text(old: str | None) -> str:
    return f"(retracted {excerpt(old)})"


def reply_text(nick: str | None, text: str) -> str:
    return f"{nick}: {text}" if nick and not text.startswith(f"{nick}:") else text


class Pacer:
    """Shows corrections of one message no faster than one per `quiet` seconds: a burst
    shows the first at once and the newest when it is over."""

    def __init__(self, show: Callable[[object], None], quiet: float = CORRECTION_QUIET,
                 limit: int = RECENT) -> None:
        self.show = show
        self.quiet = quiet
        self.limit = limit
        self._last: collections.OrderedDict[Hashable, float] = collections.OrderedDict()
        self._waiting: dict[Hashable, object] = {}

    def offer(self, key: Hashable, item: object) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if key in self._waiting:
            self._waiting[key] = item  # the newest replaces the one waiting
            return
        last = self._last.get(key)
        if last is None or now - last >= self.quiet or len(self._waiting) >= self.limit:
            self._shown(key, now)
            self.show(item)
            return
        self._waiting[key] = item
        loop.call_later(self.quiet - (now - last), self._due, key)

    def _due(self, key: Hashable) -> None:
        item = self._waiting.pop(key, None)
        if item is not None:
            self._shown(key, asyncio.get_running_loop().time())
            self.show(item)

    def _shown(self, key: Hashable, now: float) -> None:
        self._last[key] = now
        self._last.move_to_end(key)
        if len(self._last) > self.limit:
            self._last.popitem(last=False)


class Gatherer:
    """Reactions per room, gathered for `window` seconds, then said in one line."""

    def __init__(self, say: Callable[[str, str], None], window: float = REACTION_WINDOW,
                 limit: int = 20) -> None:
        self.say = say  # say(room, line)
        self.window = window
        self.limit = limit  # reactions in one line; more are counted
        self._rooms: dict[str, list[str]] = {}
        self._extra: dict[str, int] = {}

    def add(self, room: str, nick: str, emoji: str, target: str | None) -> None:
        items = self._rooms.get(room)
        if items is None:
            items = self._rooms[room] = []
            self._extra[room] = 0
            asyncio.get_running_loop().call_later(self.window, self._flush, room)
        if len(items) < self.limit:
            items.append(f"{nick} {emoji} to {excerpt(target)}")
        else:
            self._extra[room] += 1

    def _flush(self, room: str) -> None:
        items, extra = self._rooms.pop(room, []), self._extra.pop(room, 0)
        if items:
            more = f" (and {extra} more)" if extra else ""
            self.say(room, "reactions: " + "; ".join(items) + more)
