"""Portal mode's seam: an XMPP user in an IRC channel through their own IRC connection.

Plumbed links relay between rooms through the router; a portal room has two sides only,
one person and the channel they joined, so no router stands between them: the XMPP side
(`bridge.xmpp.portal`) calls `PortalNetworks` for what the user does, and the IRC side
(`bridge.irc.users`) calls `PortalView` for what the user is to see. Users are bare JIDs;
`network` is a configured network name; channels and nicks are as IRC writes them.
A member's `mode` is their most significant channel prefix mode ("q", "a", "o", "h",
"v" or ""); channel "" in `said` is a private message to the user.
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass

from bridge.core.events import MessageKind


@dataclass(frozen=True, slots=True)
class Member:
    nick: str
    mode: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A channel as the user's connection has it: who is there (the user too), its topic."""

    me: Member
    members: tuple[Member, ...]
    topic: str
    topic_by: str = ""
    secret: bool = False  # +s or +p: not to be shown to anyone who is not in it


class Refused(Exception):
    """What the user asked for cannot be done; the text says why."""

    def __init__(self, condition: str, text: str) -> None:
        super().__init__(text)
        self.condition = condition  # an XMPP stanza error condition (RFC 6120 8.3.3)


class PortalView(abc.ABC):
    """What a portal user sees (every call names the user and the network)."""

    @abc.abstractmethod
    def entered(self, user: str, network: str, channel: str, snapshot: Snapshot) -> None:
        """The user's connection is in `channel` (joined, or joined again after a reconnect)."""

    @abc.abstractmethod
    def refused(self, user: str, network: str, channel: str, why: Refused) -> None:
        """The channel refused the user's JOIN."""

    @abc.abstractmethod
    def out(self, user: str, network: str, channel: str, status: str, kicked_by: str = "") -> None:
        """The user's connection is no longer in `channel` (kicked, connection lost)."""

    @abc.abstractmethod
    def member(self, user: str, network: str, channel: str, member: Member, me: bool = False) -> None:
        """`member` joined `channel`, or their mode changed."""

    @abc.abstractmethod
    def left(self, user: str, network: str, channel: str, nick: str, status: str,
             kicked_by: str | None = None) -> None:
        """`nick` left `channel` (parted, quit, or was kicked by `kicked_by`)."""

    @abc.abstractmethod
    def renamed(self, user: str, network: str, channel: str, old: str, member: Member,
                me: bool = False) -> None:
        """`old` is now called `member.nick` (the user themselves when `me`)."""

    @abc.abstractmethod
    def nick_refused(self, user: str, network: str, nick: str, why: str) -> None:
        """The network refused the nick the user asked for."""

    @abc.abstractmethod
    def said(self, user: str, network: str, channel: str, nick: str, text: str,
             kind: MessageKind) -> None:
        """`nick` wrote `text` (XEP-0393 styling) in `channel`, or to the user (""); nick ""
        is the network itself (a refusal of what the user did there)."""

    @abc.abstractmethod
    def server_said(self, user: str, network: str, text: str) -> None:
        """The server's answer to a command of the user's, or a notice of its own."""

    @abc.abstractmethod
    def undelivered(self, user: str, network: str, nick: str, why: str) -> None:
        """What the user wrote privately to `nick` was not delivered (no such nick...)."""

    @abc.abstractmethod
    def topic(self, user: str, network: str, channel: str, nick: str, text: str) -> None:
        """`nick` set the topic of `channel`."""


class PortalNetworks(abc.ABC):
    """What a portal user does (the IRC side)."""

    @abc.abstractmethod
    def chantypes(self, network: str) -> str:
        """The characters channel names on `network` start with."""

    @abc.abstractmethod
    def join(self, user: str, network: str, channel: str, nick: str, key: str = "") -> None:
        """Join `channel` (with `key`, if it has one) as `nick` (the connection's nick if it
        has one); raises `Refused` beyond the connection caps or for a name IRC cannot
        carry. The answer is `entered` or `refused`."""

    @abc.abstractmethod
    def snapshot(self, user: str, network: str, channel: str) -> Snapshot | None:
        """The channel now, if the user's connection is in it."""

    @abc.abstractmethod
    def part(self, user: str, network: str, channel: str) -> None:
        """Leave `channel`; a connection left with no channel and no recent private chat goes."""

    @abc.abstractmethod
    def say(self, user: str, network: str, target: str, text: str, kind: MessageKind) -> asyncio.Future:
        """Write `text` (XEP-0393 styling) to a channel or a nick; done once written. A
        private message opens a connection if needed (raises `Refused` beyond the caps, or
        for a name that is no IRC nick or channel)."""

    @abc.abstractmethod
    def set_topic(self, user: str, network: str, channel: str, text: str) -> None: ...

    @abc.abstractmethod
    async def channels(self, user: str, network: str) -> list[tuple[str, int, str]]:
        """The network's public channels (IRC LIST) as the user's connection is told them:
        (name, users, topic), at most a bounded number, within a bounded time."""

    @abc.abstractmethod
    def raw(self, user: str, network: str, line: str) -> None:
        """Send an IRC command as the user typed it (opening a connection if needed); the
        server's answers of the next moments go to `PortalView.server_said`."""

    @abc.abstractmethod
    def nick(self, user: str, network: str, nick: str) -> None:
        """Ask the network for a new nick; the answer is `renamed` or `nick_refused`."""

    @abc.abstractmethod
    def set_mode(self, user: str, network: str, channel: str, nick: str, mode: str) -> None:
        """Give `nick` prefix mode `mode` as their highest ("" none), taking higher ones;
        raises `Refused` when they are not there or the network has no such mode."""

    @abc.abstractmethod
    def kick(self, user: str, network: str, channel: str, nick: str, reason: str) -> None:
        """KICK `nick` (raises `Refused` for a name that is no IRC nick)."""


def allowed(jid: str, patterns: tuple[str, ...]) -> bool:
    """Is the bare `jid` one `patterns` (config `portal.users`) let in?"""
    jid = jid.lower()
    domain = jid.rpartition("@")[2]
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern == "*" or pattern == jid or pattern == domain:
            return True
        if pattern.startswith("*.") and (domain == pattern[2:] or domain.endswith(pattern[1:])):
            return True
    return False
