"""XMPP users' own IRC connections, in channels whose endpoint says `xmpp_users: connect`.

One connection per XMPP identity (real JID, or occupant id) on the network, made when the
user first speaks in such a channel, capped (`xmpp_user_clients`), idle-reaped
(`xmpp_user_idle`), held back after a kick, with the relay speaking for its user meanwhile:
`bridge.core.users`, which SILC's (`bridge.silc.users`) shares. Each is a portal user's
connection (`bridge.irc.users.UserLink`: flood control, delivery window, reconnects with
backoff, WEBIRC, an ident made of a hash of the identity, never the JID, which the bridge's
identd answers for), made by an `IrcUsers` of this network's own, which tells this module
(its `PortalView`) what the connection hears: a private message to it, a kick, its nick.

Its nick is the MUC nick made an IRC nick (`irc_nick`), cut to the network's NICKLEN, with
`xmpp_user_suffix` after it (`alice[x]`), and `_` added while someone else has that.

The relay client hears each channel for everyone and passes on nothing these connections say
or do (`own`), so nothing of theirs comes back and none of them gets a puppet. A private
message to one (`/msg alice[x] hi`) goes to its user as a MUC private message from the
writer's occupant; one from its user to an IRC user goes out from it (`IrcPrivates.deliver`).
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING

import structlog

from bridge.config_types import PortalConfig
from bridge.core.events import BRIDGE, Endpoint, Event, Identity, Kick, Message, MessageKind, NickChange
from bridge.core.notices import kicked_text
from bridge.core.portal import Member, PortalView, Refused, Snapshot
from bridge.core.semantics import Recent
from bridge.core.users import HOLD, OwnClient, OwnClients
from bridge.irc.identd import Identd
from bridge.irc.users import MAX_NICK, IrcUsers, UserLink, irc_nick

if TYPE_CHECKING:
    from bridge.irc.adapter import IrcAdapter

log = structlog.get_logger(__name__)

#: RFC 2812 1.2.1: nicks are at most nine characters where the server does not say (NICKLEN).
RFC_NICKLEN = 9
#: A nick one of these connections gave up (renamed, quit) stays theirs this long, for what
#: the relay hears of it late; at most this many are remembered.
GONE_NICK = 60.0
GONE_NICKS = 256
#: Lines a connection sent whose msgid is still to be learnt, at most (each connection's).
ECHOES = 256
#: Those lines: (folded channel, first line as sent, origin endpoint, id there), oldest first.
Echoes = collections.deque[tuple[str, str, Endpoint, str]]


class PlumbedUser(OwnClient):
    """One XMPP user's IRC connection."""

    def __init__(self, identity: Identity, link: UserLink) -> None:
        super().__init__(identity)
        self.link = link
        self.ready: set[str] = set()  # folded channels the connection is in
        self.echoes: Echoes = collections.deque(maxlen=ECHOES)  # the adapter's to fill and read
        self.said = Recent(ECHOES)  # msgids of its newest lines, learnt from `echoes`
        self.log = link.log


class PlumbedUsers(OwnClients[PlumbedUser], PortalView):
    """The network's XMPP users' IRC connections, and what those connections hear."""

    def __init__(self, adapter: IrcAdapter, max_age: float, identd: Identd | None = None) -> None:
        config = adapter.config
        super().__init__(adapter.network, config.xmpp_user_clients, config.xmpp_user_idle, adapter.roster.fold)
        self.adapter = adapter
        self.connections = IrcUsers(PortalConfig(networks=(adapter.network,), per_network=max(self.cap, 1),
                                                 per_user=1), {adapter.network: config}, max_age=max_age,
                                    identd=identd, logged=False)
        self.connections.view = self
        #: Folded nicks these connections gave up -> until when they count as theirs.
        self.gone: collections.OrderedDict[str, float] = collections.OrderedDict()

    def own(self, nick: str | None) -> bool:
        """True for one of these connections' nicks (or one it had a moment ago)."""
        if not nick:
            return False
        return self.speaking(nick) is not None or self.gone.get(self.fold(nick), 0.0) > time.monotonic()

    def speaking(self, nick: str) -> PlumbedUser | None:
        """The user whose connection is called `nick` now."""
        folded = self.fold(nick)
        return next((user for user in self.users.values() if self.fold(user.link.client.nick) == folded), None)

    def caused(self, event: Event) -> bool:
        """`event`, as the relay heard it, is one of these connections' doing, or done to one."""
        if (not self.users and not self.gone) or event.sender.network != self.network:
            return False
        return self.own(event.sender.nick) or (isinstance(event, Kick) and self.own(event.target.nick)) \
            or (isinstance(event, NickChange) and self.own(event.new_nick))

    def security(self, room: str) -> str:
        """What the network sees of XMPP users in `room` (users.py makes it so)."""
        config = self.adapter.config
        host = "an IPv6 address made of the same hash (WEBIRC)" if config.webirc_password \
            else "the bridge's own address"
        return (f"IRC {self.network}/{room}: XMPP users who speak appear as IRC connections of their "
                f"own (their nick with {config.xmpp_user_suffix}), at most {self.cap} at once; the "
                "network sees a user name (ident) made of a hash of their JID (whoever guesses the "
                f"JID can check it; not the JID itself), their nick as real name, and {host}")

    def nick_for(self, nick: str) -> str:
        """The IRC nick of an XMPP user called `nick`: made valid, within NICKLEN with the
        suffix and room for two `_`, and nobody else's in the relay's channels."""
        suffix = self.adapter.config.xmpp_user_suffix
        nicklen = getattr(self.adapter.client.features, "nicklen", None)
        limit = min(nicklen if isinstance(nicklen, int) else RFC_NICKLEN, MAX_NICK)
        base = irc_nick(nick)[:max(limit - len(suffix) - 2, 1)] + suffix
        roster = self.adapter.roster
        return next((n for n in (base, base + "_", base + "__")
                     if not roster.channels_of(n) or self.own(n)), base)

    def _forget(self, nick: str) -> None:
        self.gone[self.fold(nick)] = time.monotonic() + GONE_NICK
        self.gone.move_to_end(self.fold(nick))
        while len(self.gone) > GONE_NICKS:
            self.gone.popitem(last=False)

    # OwnClients

    def _open(self, identity: Identity, room: str) -> PlumbedUser | None:
        if not self.adapter.client.registered:
            return None  # the relay speaks meanwhile; its ISUPPORT tells how long nicks may be
        return super()._open(identity, room)

    def _start(self, identity: Identity, room: str) -> PlumbedUser:
        nick = self.nick_for(identity.nick)
        self.connections.join(identity.native_id, self.network, room, nick)
        return PlumbedUser(identity, self.connections.links[(identity.native_id, self.network)])

    def _ready(self, user: PlumbedUser, room: str) -> bool:
        return user.link.client.registered and self.fold(room) in user.ready

    def _connected(self, user: PlumbedUser) -> bool:
        return user.link.client.registered

    def _join(self, user: PlumbedUser, room: str) -> None:
        user.link.join(room, "")

    def _part(self, user: PlumbedUser, room: str) -> None:
        user.ready.discard(self.fold(room))
        user.link.part(room)

    def _rename(self, user: PlumbedUser, nick: str, room: str) -> None:
        self.connections.nick(user.identity.native_id, self.network, self.nick_for(nick))

    def _quit(self, user: PlumbedUser, message: str) -> None:
        self._forget(user.link.client.nick)
        self.connections.release(user.link, message)  # `connections` sees it through; `_close` logs it

    async def close(self) -> None:
        await super().close()
        await self.connections.close()

    # PortalView: what a connection hears (`user` is the identity's native id)

    def _user(self, user: str) -> PlumbedUser | None:
        return self.users.get(user)

    def entered(self, user: str, network: str, channel: str, snapshot: Snapshot) -> None:
        if (found := self._user(user)) is not None:
            found.ready.add(self.fold(channel))

    def refused(self, user: str, network: str, channel: str, why: Refused) -> None:
        if (found := self._user(user)) is not None:
            found.log.info("xmpp_user_join_refused", room=channel, condition=why.condition)
            self.hold(found, "join refused")

    def out(self, user: str, network: str, channel: str, status: str, kicked_by: str = "") -> None:
        found = self._user(user)
        if found is not None:
            found.ready.discard(self.fold(channel))
            if kicked_by:  # the relay speaks for them a while, and the link is told
                self.hold(found, "kicked")
                room = self.adapter.rooms.get(self.fold(channel), channel)
                self.adapter.emit(Message(Endpoint(self.network, room), BRIDGE, kicked_text(
                    found.identity.nick, f"{self.network}/{room}", kicked_by, status, HOLD), MessageKind.NOTICE))

    def renamed(self, user: str, network: str, channel: str, old: str, member: Member, me: bool = False) -> None:
        if me:
            self._forget(old)

    def said(self, user: str, network: str, channel: str, nick: str, text: str, kind: MessageKind) -> None:
        found = self._user(user)
        if channel or not nick or found is None or not found.occupant:
            return  # the channel is the relay's to hear; the server's own words
        self.adapter.emit(self.adapter.privates.received_by(nick, text, kind, found.identity, found.occupant))

    def nick_refused(self, user: str, network: str, nick: str, why: str) -> None:
        if (found := self._user(user)) is not None:
            found.log.info("xmpp_user_nick_refused")

    def undelivered(self, user: str, network: str, nick: str, why: str) -> None:
        if (found := self._user(user)) is not None:
            found.log.info("xmpp_user_private_undelivered")

    def member(self, user: str, network: str, channel: str, member: Member, me: bool = False) -> None:
        pass

    def left(self, user: str, network: str, channel: str, nick: str, status: str,
             kicked_by: str | None = None) -> None:
        pass

    def server_said(self, user: str, network: str, text: str) -> None:
        pass

    def topic(self, user: str, network: str, channel: str, nick: str, text: str) -> None:
        pass
