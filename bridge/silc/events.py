"""What a SILC session tells its owner, with users already resolved to their
nick and public-key fingerprint (the bridge's stable identity for them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.silc.message import SignatureState
from bridge.silc.pubkey import PublicKey


@dataclass(frozen=True, slots=True)
class User:
    client_id: bytes
    nick: str
    fingerprint: str | None  # SHA-1 of the user's public key, upper-case hex
    username: str = ""
    #: The key itself once fetched (GETKEY), to check signed messages that do not carry it.
    public_key: PublicKey | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    channel: str
    user: User
    flags: int
    data: bytes
    signature: SignatureState = SignatureState.NONE


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    user: User
    flags: int
    data: bytes
    signature: SignatureState = SignatureState.NONE


@dataclass(frozen=True, slots=True)
class Joined:
    channel: str
    user: User


@dataclass(frozen=True, slots=True)
class Left:
    channel: str
    user: User
    reason: str = ""
    quit: bool = False  # signed off, killed or lost with its server


@dataclass(frozen=True, slots=True)
class NickChanged:
    channels: tuple[str, ...]
    user: User  # before the change
    new_nick: str


@dataclass(frozen=True, slots=True)
class TopicSet:
    channel: str
    user: User | None  # None when a server set it
    topic: str


@dataclass(frozen=True, slots=True)
class Kicked:
    channel: str
    target: User
    kicker: User | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SelfRemoved:
    """The bridge's own client was kicked out of `channel` (rejoin later)."""

    channel: str
    reason: str = ""


SessionEvent = ChannelMessage | PrivateMessage | Joined | Left | NickChanged | TopicSet | Kicked | SelfRemoved
