"""Network-neutral events: what adapters emit and what the router fans out.

An endpoint is one room on one network (an XMPP MUC, an IRC channel, a SILC
channel). An identity is who did something, as its own network names them.
Text is plain Unicode; inline styling, where kept, uses XEP-0393 markup
(*bold*, _italic_, ~strike~, `mono`), which reads well as plain text too.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One room on one network: ("xmpp", "room@muc.example.org"), ("libera", "#chan")."""

    network: str
    room: str

    def __str__(self) -> str:
        return f"{self.network}/{self.room}"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who: `native_id` is stable on its network (IRC account or nick, SILC key
    fingerprint, XMPP real JID or occupant id); `nick` is what people see."""

    network: str
    native_id: str
    nick: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.network, self.native_id)


#: The bridge itself, as the sender of its own notices.
BRIDGE = Identity("bridge", "bridge", "bridge")


class MessageKind(enum.Enum):
    PLAIN = "plain"
    ACTION = "action"  # /me
    NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class Event:
    endpoint: Endpoint
    sender: Identity
    time: float = field(default_factory=time.time, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Message(Event):
    text: str
    kind: MessageKind = MessageKind.PLAIN
    native_id: str | None = None  # the id the origin network gave it
    #: A reply: the id (on the origin endpoint) of the message answered, and who said it.
    reply_to: str | None = None
    reply_nick: str | None = None
    #: A correction: the id (on the origin endpoint) of the message it corrects; `text` is
    #: the whole corrected text.
    replaces: str | None = None
    #: Replayed after the bridge missed it (a room's history after a rejoin): said at `time`.
    late: bool = False


@dataclass(frozen=True, slots=True)
class Retraction(Event):
    """`sender` took back their message `target` (its id on the origin endpoint)."""

    target: str


@dataclass(frozen=True, slots=True)
class Reaction(Event):
    """`sender` reacted to message `target` (its id on the origin endpoint) with `emoji`,
    or took that reaction back (`removed`)."""

    target: str
    emoji: str
    removed: bool = False


@dataclass(frozen=True, slots=True)
class Join(Event):
    pass


@dataclass(frozen=True, slots=True)
class Part(Event):
    reason: str = ""
    quit: bool = False  # left the network, not just the room


@dataclass(frozen=True, slots=True)
class NickChange(Event):
    """A new nick, or a new key for the same person (`renamed`)."""

    new_nick: str
    #: The sender after the change when the network keys them differently now (an IRC
    #: user known by nick, or one who just logged in); None: same key, new nick.
    renamed: Identity | None = None

    @property
    def new_identity(self) -> Identity:
        old = self.sender
        return self.renamed or Identity(old.network, old.native_id, self.new_nick)


@dataclass(frozen=True, slots=True)
class Topic(Event):
    text: str


@dataclass(frozen=True, slots=True)
class Kick(Event):
    """`sender` kicked `target` out of the room."""

    target: Identity
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Standing(Event):
    """`sender`'s standing in the room now: "op", "voice" or "" (neither)."""

    rank: str


@dataclass(frozen=True, slots=True)
class Private(Event):
    """`sender` wrote `text` to one person only, someone on another network.

    `endpoint` is where it was written: the room it came through on the sender's network,
    or room "" for a direct chat. The recipient is `to_nick`; `to_network` and `to_address`
    (their address on that network: an XMPP occupant or full JID, an IRC or SILC nick) when
    the sender's adapter knows them (a puppet, an earlier conversation), else the router
    looks for `to_nick` in the rooms linked to `endpoint` and to `rooms` (other rooms of the
    sender's on their network). `reply` is the sender's own address on their network.
    """

    text: str
    to_nick: str
    to_network: str = ""
    to_address: str = ""
    reply: str = ""
    rooms: tuple[str, ...] = ()
    kind: MessageKind = MessageKind.PLAIN
    native_id: str | None = None


@dataclass(frozen=True, slots=True)
class Presence(Event):
    away: bool
    status: str = ""
