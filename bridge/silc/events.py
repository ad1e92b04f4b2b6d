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
    #: Under a private message key the bridge does not have (silc-spec 4.6): `data` is b"".
    keyed: bool = False


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


@dataclass(frozen=True, slots=True)
class ModeChanged:
    """The channel's mode, or the bridge's own mode on it, changed (`Channel.mode`, `.own_mode`)."""

    channel: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A message on a channel with a private key did not open with that key:
    `server_key` if it was under the server's channel key instead (a client
    that does not use the private key), else under some other key (a wrong
    passphrase on one side). It is not relayed."""

    channel: str
    server_key: bool


@dataclass(frozen=True, slots=True)
class RelayState:
    """Relaying on a channel with a private key stopped (`paused` says why) or resumed (None)."""

    channel: str
    paused: str | None


@dataclass(frozen=True, slots=True)
class Gap:
    """The relay client was out of `channel` from `since` to `until` (Unix times): what was
    said there meanwhile never reached the bridge."""

    channel: str
    since: float
    until: float


SessionEvent = (
    ChannelMessage
    | PrivateMessage
    | Joined
    | Left
    | NickChanged
    | TopicSet
    | Kicked
    | SelfRemoved
    | ModeChanged
    | Unreadable
    | RelayState
    | Gap
)
