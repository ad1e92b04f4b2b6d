"""Channel messages the bridge sent, kept until the server surely has them.

SILC does not acknowledge channel messages, but the server reads a
connection's packets in order and answers every command: the reply to a PING
sent after a batch of messages (silc-commands PING) means the server has
read every one of them. So one barrier per batch: while a PING is out, new
messages wait for the next one.

What a connection took with it unconfirmed is sent again once, after the
reconnect and the channel's rejoin; one that is lost a second time is given
up and counted. A message the server did read just before the link died may
so reach SILC twice (SILC messages carry no id to spot that); none is lost
without a log line. The window is bounded: past `size` messages the oldest
are given up.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Unconfirmed:
    channel: str  # casefolded name
    flags: int
    data: bytes
    seq: int
    tries: int = 1


class Outbox:
    def __init__(self, size: int = 1000, network: str = "silc") -> None:
        self.size = size
        self.log = log.bind(network=network)
        self.pending = asyncio.Event()  # set when messages wait for a barrier
        self.given_up = 0
        self._full = 0  # given up because the window was full
        self._seq = 0
        self._window: deque[Unconfirmed] = deque()  # on the current connection, in order
        self._orphans: deque[Unconfirmed] = deque()  # from connections that ended

    def __len__(self) -> int:
        return len(self._window) + len(self._orphans)

    @property
    def last(self) -> int:
        """The newest message sent: a barrier sent now covers it and all before."""
        return self._seq

    def sent(self, channel: str, flags: int, data: bytes, tries: int = 1, live: bool = True) -> None:
        """Keep a message sent on the current connection, or one for a connection
        that is gone (`live` False): that one waits for the rejoin."""
        self._seq += 1
        message = Unconfirmed(channel.casefold(), flags, data, self._seq, tries)
        if live:
            self._window.append(message)
            self.pending.set()
        else:
            self._orphans.append(message)
        if len(self) > self.size:
            oldest = (self._orphans or self._window).popleft()
            self.given_up += 1
            self._full += 1
            if self._full & (self._full - 1) == 0:  # logged at 1, 2, 4, 8, ...
                self.log.warning("silc_messages_given_up", room=oldest.channel, count=1, reason="window full",
                                 total=self.given_up)

    def confirmed(self, upto: int) -> None:
        """A barrier's reply: the server has read every message up to `upto`."""
        window = self._window
        while window and window[0].seq <= upto:
            window.popleft()

    def connection_lost(self) -> None:
        """What the ended connection took unconfirmed waits for the channel's rejoin."""
        self._orphans.extend(self._window)
        self._window.clear()
        self.pending.clear()

    def to_resend(self, channel: str) -> list[Unconfirmed]:
        """The orphans of `channel`, to send once more on the new connection
        (sending re-enters them with `tries + 1`); ones already sent twice are given up."""
        key = channel.casefold()
        if not self._orphans:
            return []
        mine = [u for u in self._orphans if u.channel == key]
        if not mine:
            return []
        self._orphans = deque(u for u in self._orphans if u.channel != key)
        lost = sum(u.tries >= 2 for u in mine)
        if lost:
            self.given_up += lost
            self.log.warning("silc_messages_given_up", room=key, count=lost, reason="unconfirmed twice",
                             total=self.given_up)
        return [u for u in mine if u.tries < 2]
