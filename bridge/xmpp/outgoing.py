"""The room messages the bridge sends: their ids, and whether the room has them yet.

One owner for message ids. Each id is random (an occupant sees every id, so one that
could be guessed or reused would let anyone have a message taken for our echo, or
answer our iqs). A room reflects every message to every occupant, its sender included
(XEP-0045 7.4), so the bot's copy of a message we sent confirms that the room has it:
until then the message is *pending*, and after a reconnect it is sent again unless the
room's history shows it arrived. A copy counts as ours only when it comes from the
occupant that sent it.

The ids of room messages are signed for their occupant with a key from the component
secret (`Outgoing.new_id`), so that any run of the bridge knows its own in a room's history
(`minted`), also one that never stored their ids: a standby that took over from a leader
killed between a send and the store's commit of its id.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from bridge.core.tokens import new_id

log = structlog.get_logger(__name__)

#: Messages waiting for their copy; beyond this the oldest are forgotten (and counted).
PENDING_LIMIT = 4096
#: Confirmed ids remembered, to recognise a copy that comes late or twice.
CONFIRMED_MEMORY = 16384
#: Characters of a message id's signature (6 bytes, base64).
TAG = 8


@dataclass(slots=True)
class Pending:
    room: str
    occupant: str  # room@service/nick that sends it: its copy comes from there
    stanza: str
    sent: float = field(default_factory=time.time)  # when the event it carries happened
    attempt: float = field(default_factory=time.monotonic)  # when it last went out


class Outgoing:
    def __init__(self, limit: int = PENDING_LIMIT, memory: int = CONFIRMED_MEMORY, secret: str = "") -> None:
        self._key = hashlib.blake2b(secret.encode(), digest_size=32, person=b"muc-bridge ids").digest()
        self.limit = limit
        self.memory = memory
        self.pending: collections.OrderedDict[str, Pending] = collections.OrderedDict()
        self._confirmed: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.forgotten = 0
        #: Told the room's stanza-id of each message of ours whose copy shows one.
        self.on_stanza_id: Callable[[str, str, str], None] = lambda msg_id, sender, stanza_id: None

    def __len__(self) -> int:
        return len(self.pending)

    def new_id(self, occupant: str) -> str:
        """A fresh id for a room message from `occupant`, signed (see the module's doc)."""
        nonce = new_id()
        return nonce + self._tag(nonce, occupant)

    def minted(self, msg_id: str, sender: str) -> bool:
        """Was `msg_id` made by a bridge with our secret, for a message from occupant `sender`?"""
        nonce, tag = msg_id[:-TAG], msg_id[-TAG:]
        return bool(nonce) and hmac.compare_digest(tag.encode(), self._tag(nonce, sender).encode())

    def _tag(self, nonce: str, occupant: str) -> str:
        mac = hashlib.blake2b(f"{nonce} {occupant}".encode(), key=self._key, digest_size=6).digest()
        return base64.urlsafe_b64encode(mac).decode()

    def add(self, msg_id: str, room: str, occupant: str, stanza: str, when: float | None = None) -> None:
        """`stanza` (with `msg_id`) goes to `room` from `occupant`; keep it until confirmed."""
        self.pending[msg_id] = Pending(room, occupant, stanza, when or time.time())
        if len(self.pending) > self.limit:
            self.pending.popitem(last=False)
            self.forgotten += 1
            if self.forgotten & (self.forgotten - 1) == 0:
                log.warning("xmpp_unconfirmed_overflow", network="xmpp", forgotten=self.forgotten,
                            limit=self.limit)

    def echo(self, msg_id: str, sender: str) -> bool:
        """Is the message `msg_id` from occupant `sender` a copy of one of ours? Confirms it."""
        item = self.pending.get(msg_id)
        if item is not None:
            if item.occupant != sender:
                return False
            del self.pending[msg_id]
            self.remember(msg_id, sender)
            return True
        return self._confirmed.get(msg_id) == sender

    def remember(self, msg_id: str, sender: str) -> None:
        """Count a copy of `msg_id` from `sender` as ours (sent by an earlier run of the bridge:
        the room's history may replay it)."""
        self._confirmed[msg_id] = sender
        if len(self._confirmed) > self.memory:
            self._confirmed.popitem(last=False)

    def learned(self, msg_id: str, sender: str, stanza_id: str) -> None:
        """The room calls our message `msg_id` (from occupant `sender`) `stanza_id`."""
        self.on_stanza_id(msg_id, sender, stanza_id)

    def unconfirmed(self, room: str) -> list[tuple[str, Pending]]:
        """The messages for `room` whose copy has not come back, oldest first."""
        return [(msg_id, item) for msg_id, item in self.pending.items() if item.room == room]

    def drop(self, msg_id: str) -> None:
        """Forget a pending message (it was answered with an error, or is too old to send)."""
        self.pending.pop(msg_id, None)
