"""Portal users' own IRC connections: one per (XMPP account, network), nick = the MUC nick.

Each is a `RelayClient` (the relay's hardening, flood control, delivery window, ping timeout
and reconnects with backoff) under a configuration of its own: the user's nick (made an IRC
nick: `irc_nick`), an ident and real name that do not show the JID, and SASL PLAIN with the
account the user gave (`configure` command, `bridge.store.sealed`), read when the connection
opens. A SASL login that fails ends the connection, as biboumi does: joins under way are
refused with the server's text, channels joined are left, and the network's address says
why (connecting without the login would put the user on IRC as someone else). Connections are
capped per network and per user (`portal.per_network`, `portal.per_user`) and go (QUIT) once
they are in no channel and have carried no private message for `PRIVATE_IDLE`. The bridge's
identd, when configured (`bridge.irc.identd`), answers each one's own ident; where the network gave
the bridge a WEBIRC password, each connection says it comes from an address made of a hash
of the JID (`webirc`). After a reconnect every channel is joined again; who left meanwhile
is told as gone, and the channel is shown again as it is (`PortalView.entered`).

What the user is to see goes to the `PortalView` (`bridge.core.portal`); formatting codes
become XEP-0393 styling and back, as on plumbed links.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

import structlog
from irc.client import Event as IrcEvent
from irc.events import numeric

from bridge import __version__
from bridge.config_types import IrcNetworkConfig, NetworkConfig, PortalConfig, SaslConfig
from bridge.core.adapter import Adapter
from bridge.core.events import Event, Identity, MessageKind
from bridge.core.portal import Member, PortalNetworks, PortalView, Refused, Snapshot
from bridge.irc import modes
from bridge.irc.client import RelayClient
from bridge.irc.formatting import irc_to_text
from bridge.irc.identd import Identd
from bridge.irc.members import Channel, State, Table
from bridge.irc.roster import Roster
from bridge.irc.split import clean, wire_lines
from bridge.irc.styling import text_to_irc

log = structlog.get_logger(__name__)

#: A connection in no channel stays this long after its last private message.
PRIVATE_IDLE = 600.0
#: How often connections are checked for that.
SWEEP = 30.0
#: Lines one message of a user's may become (longer ones are cut, saying so).
MAX_LINES = 20
#: Prefix modes to give instead of one a network lacks, nearest first.
STRONGER = {"h": "o", "q": "ao", "a": "o", "v": ""}
#: A LIST answer is cut at this many channels, or after this many seconds.
LIST_LIMIT = 1000
LIST_WAIT = 30.0
#: How long after a command the user sent to the server its numeric replies go to the user.
RAW_ANSWERS = 30.0
#: Channels one connection may be in (or joining) at once.
MAX_CHANNELS = 100
#: Longest nick asked for (servers cut or refuse longer ones: NICKLEN).
MAX_NICK = 30
#: Join replies (RFC 2812 5.2; 477 is "register your nick first" on most networks) as the
#: XMPP errors XEP-0045 7.2 gives for the same refusal.
JOIN_ERRORS = {
    "channelisfull": "service-unavailable",  # 471; 7.2.10 maximum users
    "inviteonlychan": "registration-required",  # 473; 7.2.7 members-only
    "bannedfromchan": "forbidden",  # 474; 7.2.8 banned
    "badchannelkey": "not-authorized",  # 475; 7.2.6 password required
    "nochanmodes": "registration-required",  # 477
    "nosuchchannel": "item-not-found",  # 403
    "badchanmask": "jid-malformed",  # 476
    "toomanychannels": "resource-constraint",  # 405
    "479": "jid-malformed",  # InspIRCd, ngIRCd: illegal channel name
    "489": "not-allowed",  # secure connections only
}
#: Replies that refuse something the user did in a channel (482: a topic or kick without op,
#: 404: a message to a moderated channel without voice), told in the room.
REFUSALS = ("chanoprivsneeded", "cannotsendtochan", "usernotinchannel", "notonchannel")
NICK_REFUSED = ("nicknameinuse", "erroneusnickname", "nickcollision", "unavailresource")
#: What no channel, nick or key can hold (RFC 2812 2.3.1: a space or comma would make one
#: line name other targets, or carry other parameters).
_NOT_TARGET = re.compile(r"[\s,\x00\x07]|^:")
_NOT_NICK = re.compile(r"[^A-Za-z0-9\[\]\\`_^{|}-]")
_KINDS = {"pubmsg": MessageKind.PLAIN, "privmsg": MessageKind.PLAIN, "action": MessageKind.ACTION,
          "pubnotice": MessageKind.NOTICE, "privnotice": MessageKind.NOTICE}


def irc_nick(nick: str) -> str:
    """A MUC nick as an IRC nick (RFC 2812 2.3.1): other characters become `_`, and it
    does not start with a digit or `-`."""
    out = _NOT_NICK.sub("_", nick)[:MAX_NICK]
    return out if out and not (out[0].isdigit() or out[0] == "-") else ("_" + out)[:MAX_NICK]


class UserLink:
    """One user's connection to one network and the channels it is in."""

    def __init__(self, user: str, config: IrcNetworkConfig, nick: str, users: IrcUsers) -> None:
        self.user = user
        self.users = users
        self.network = config.name
        self.roster = users.rosters.setdefault(config.name, Roster())  # the case mapping, shared
        nick = irc_nick(nick)
        digest = hashlib.sha256(user.encode()).digest()
        ident = "x" + digest.hex()[:9]
        login = users.credentials(user, config.name)
        self.client = RelayClient(
            replace(config, nick=nick, alt_nicks=(nick + "_", nick + "__"), username=ident,
                    realname=nick, sasl=SaslConfig(*login) if login else None),
            on_registered=self._registered, on_lost=self._lost, notice=self._dropped,
            fold=self.roster.fold, max_age=users.max_age, prelude=webirc(config, digest),
            on_sasl_failed=self._sasl_failed if login else None, echo=False)
        self.channels: dict[str, Channel] = {}  # folded name ->
        self.last_private = float("-inf")  # monotonic time of the last private message
        self.raw_until = 0.0  # the server's replies go to the user until then (a raw command)
        self.listing: asyncio.Future[list[tuple[str, int, str]]] | None = None  # a LIST under way
        self.listed: list[tuple[str, int, str]] = []
        self.task: asyncio.Task | None = None
        # One handler for every event, dispatched by type here: one closure per connection
        # instead of one per event type (thousands of connections).
        self.client.on("all_events", self._dispatch)

    def _dispatch(self, event: IrcEvent) -> None:
        name = _HANDLERS.get(event.type)
        if name is not None:
            getattr(self, name)(event)
        elif (event.type in _NUMERICS and time.monotonic() < self.raw_until and event.arguments):
            self.view.server_said(self.user, self.network, irc_to_text(" ".join(event.arguments)))

    @property
    def view(self) -> PortalView:
        return self.users.view

    @property
    def log(self):
        """The log, with the network and a hash of the user (never the JID)."""
        return log.bind(network=self.network, user_hash=self.client.config.username)

    def start(self) -> None:
        self.task = asyncio.create_task(self.client.run(), name=f"irc {self.network} portal user")

    async def close(self, message: str) -> None:
        for channel in self.channels.values():
            channel.leave()
        try:
            async with asyncio.timeout(4.0):
                await self.client.close(message, drain=1.0)
        except TimeoutError:
            pass
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def idle(self) -> bool:
        return not self.channels and time.monotonic() - self.last_private >= PRIVATE_IDLE

    # What the user does

    def join(self, channel: str, key: str) -> None:
        folded = self.roster.fold(channel)
        if folded in self.channels:
            return
        if len(self.channels) >= MAX_CHANNELS:
            raise Refused("resource-constraint", f"{self.network}: you are in {MAX_CHANNELS} channels "
                          "through this bridge already, the most it allows")
        self.channels[folded] = Channel(channel, key)
        if self.client.registered:
            self._send_join(self.channels[folded])

    def _send_join(self, channel: Channel) -> None:
        table = self.users.table(self.network, self.roster.fold(channel.name))
        channel.expect(table, self.roster.fold(self.client.nick))
        self.client.control(f"JOIN {channel.name}" + (f" {channel.key}" if channel.key else ""))

    def part(self, channel: str) -> None:
        chan = self.channels.pop(self.roster.fold(channel), None)
        if chan is not None:
            chan.leave()
            if self.client.registered:
                self.client.control(f"PART {channel}")

    def say(self, target: str, text: str, kind: MessageKind) -> asyncio.Future:
        styled_text = text_to_irc(text)
        command = "NOTICE" if kind is MessageKind.NOTICE else "PRIVMSG"
        budget = self.client.budget(command, target)
        if kind is MessageKind.ACTION:
            budget -= len("\x01ACTION \x01")
        lines = wire_lines(styled_text, lambda piece: piece, budget, MAX_LINES, styled_text is not text)
        if kind is MessageKind.ACTION:
            lines = [f"\x01ACTION {line}\x01" for line in lines]
        outbox = self.client.outbox
        if len(outbox) + len(lines) > outbox.size:  # refused, not queued over older lines
            raise Refused("resource-constraint", f"{self.network} takes your lines slower than you "
                          f"send them ({len(outbox)} still waiting): this message was not sent")
        return self.client.send([f"{command} {target} :{line}" for line in lines], target, "you",
                                time.time())

    def snapshot(self, channel: str) -> Snapshot | None:
        chan = self.channels.get(self.roster.fold(channel))
        if chan is None or not chan.joined:
            return None
        me = self.roster.fold(self.client.nick)
        everyone = chan.everyone()
        members = tuple(self._member(state) for folded, state in everyone.items() if folded != me)
        mine = self._member(everyone[me]) if me in everyone else Member(self.client.nick)
        table = chan.table
        return Snapshot(mine, members, irc_to_text(table.topic), table.topic_by, table.secret)

    def _member(self, state: tuple[str, str]) -> Member:
        return Member(state[0], self._top(state[1]))

    def _top(self, held: str) -> str:
        """The most significant of the prefix modes `held` (ISUPPORT PREFIX order)."""
        return next((mode for mode in self._prefix_modes() if mode in held), "") if held else ""

    def _names(self, nick: str) -> tuple[str, str]:
        """`nick` folded and as given, both interned (shared by every connection)."""
        return sys.intern(self.roster.fold(nick)), sys.intern(nick)

    def _prefix_modes(self) -> str:
        prefix = getattr(self.client.features, "prefix", None)
        return "".join(prefix.values()) if isinstance(prefix, dict) else "" if prefix is True \
            else modes.DEFAULT_PREFIX

    def _dropped(self, target: str, text: str) -> list[str]:
        """Lines of the user's that waited longer than `delivery.max_age` (the link was down)
        were dropped: told to the user, not to IRC."""
        channel = self._channel(target)
        if channel is not None:
            self.view.said(self.user, self.network, channel.name, "", text, MessageKind.NOTICE)
        elif target:
            self.view.undelivered(self.user, self.network, target, text)
        return []

    # The connection

    def _registered(self) -> None:
        for channel in self.channels.values():
            self._send_join(channel)
        self.client.outbox.open()

    def _lost(self) -> None:
        for channel in self.channels.values():
            channel.lost()

    def _sasl_failed(self, why: str) -> None:
        """The SASL login failed: this connection ends (no reconnect with the same login)."""
        account = self.client.config.sasl.username if self.client.config.sasl else ""
        self.log.warning("portal_sasl_failed")
        text = f"{self.network}: logging in as {account} failed ({why}); not connected. " \
               "Change or clear the login with the bridge's configure command."
        self.view.server_said(self.user, self.network, text)
        for channel in list(self.channels.values()):
            if channel.joined:
                self.view.out(self.user, self.network, channel.name, text)
            else:
                self.view.refused(self.user, self.network, channel.name, Refused("not-authorized", text))
            channel.leave()
        self.channels.clear()
        self.users.drop(self, "SASL login failed")

    def _on_isupport(self, event: IrcEvent) -> None:
        features = self.client.features
        casemapping = getattr(features, "casemapping", None)
        if casemapping:
            if self.users.casemappings.get(self.network) != casemapping:  # the network's, once
                self.users.casemappings[self.network] = casemapping
                self.roster.set_casemapping(casemapping)
            self.channels = {self.roster.fold(c.name): c for c in self.channels.values()}
        chantypes = getattr(features, "chantypes", None)
        if isinstance(chantypes, str) and chantypes:
            self.users.known_chantypes[self.network] = chantypes

    def _channel(self, name: str | None) -> Channel | None:
        return self.channels.get(self.roster.fold(name)) if name else None

    def _on_join(self, event: IrcEvent) -> None:
        channel = self._channel(event.target)
        if channel is None or event.source is None:
            return
        folded, nick = self._names(event.source.nick)
        if self.client.is_me(nick):  # NAMES follow
            channel.sit(folded, nick)
            return
        if not channel.placed:
            return
        channel.change(("join", folded), {folded: (nick, "")})
        if channel.joined:
            self.view.member(self.user, self.network, channel.name, Member(nick))

    def _on_names(self, event: IrcEvent) -> None:  # 353: <me> <symbol> <channel> :<names>
        channel = self._channel(event.arguments[-2] if len(event.arguments) >= 2 else None)
        if channel is None or channel.names is None:
            return
        channel.table.secret = len(event.arguments) >= 3 and event.arguments[-3] in "@*"  # RFC 2812 5.1
        prefix = getattr(self.client.features, "prefix", None)
        symbols = "".join(prefix) if isinstance(prefix, dict) else "" if prefix is True else "@+"
        table = prefix if isinstance(prefix, dict) else {"@": "o", "+": "v"}
        for name in event.arguments[-1].split():  # multi-prefix: every mode the member holds
            nick = name.lstrip(symbols).partition("!")[0]
            held = name[:len(name) - len(name.lstrip(symbols))]
            if nick:
                folded, nick = self._names(nick)
                channel.names[folded] = (nick, "".join(table.get(s, "") for s in held))

    def _on_end_of_names(self, event: IrcEvent) -> None:  # 366: <me> <channel> :End of /NAMES list
        channel = self._channel(event.arguments[0] if event.arguments else None)
        if channel is None or channel.names is None:
            return
        channel.take_names(self._top)
        channel.joined = True
        now = channel.everyone()
        for folded, nick in channel.gone.items():
            if folded not in now:
                self.view.left(self.user, self.network, channel.name, nick, "")
        channel.gone = {}
        self.view.entered(self.user, self.network, channel.name, self.snapshot(channel.name))

    def _on_current_topic(self, event: IrcEvent) -> None:  # 332: <me> <channel> :<topic>
        channel = self._channel(event.arguments[0] if event.arguments else None)
        if channel is not None and channel.table is not None and len(event.arguments) > 1:
            channel.table.topic = event.arguments[1]

    def _on_topic(self, event: IrcEvent) -> None:
        channel = self._channel(event.target)
        if channel is None or channel.table is None or event.source is None:
            return
        table = channel.table
        table.topic = event.arguments[0] if event.arguments else ""
        table.topic_by = event.source.nick
        if channel.joined:
            self.view.topic(self.user, self.network, channel.name, event.source.nick, irc_to_text(table.topic))

    def _on_part(self, event: IrcEvent) -> None:
        reason = irc_to_text(event.arguments[0]) if event.arguments else ""
        self._gone("part", event.target, event.source.nick if event.source else "", reason)

    def _on_kick(self, event: IrcEvent) -> None:
        if len(event.arguments) < 1 or event.source is None:
            return
        reason = irc_to_text(event.arguments[1]) if len(event.arguments) > 1 else ""
        self._gone("kick", event.target, event.arguments[0], reason, kicked_by=event.source.nick)

    def _gone(self, how: str, name: str | None, nick: str, reason: str, kicked_by: str | None = None) -> None:
        channel = self._channel(name)
        if channel is None or not nick:
            return
        folded = self.roster.fold(nick)
        if channel.placed:
            channel.change((how, folded), {folded: None})
        if self.client.is_me(nick):
            channel.leave()
            del self.channels[self.roster.fold(channel.name)]
            self.view.out(self.user, self.network, channel.name, reason, kicked_by or "")
            self.users.reap_if_idle(self)
        elif channel.joined:
            self.view.left(self.user, self.network, channel.name, nick, reason, kicked_by)

    def _on_quit(self, event: IrcEvent) -> None:
        if event.source is None or self.client.is_me(event.source.nick):
            return
        nick, folded = event.source.nick, self.roster.fold(event.source.nick)
        reason = irc_to_text(event.arguments[0]) if event.arguments else ""
        for channel in self.channels.values():
            if channel.member(folded) is not None:  # the QUIT is one of this channel's events
                channel.change(("quit", folded), {folded: None})
                if channel.joined:
                    self.view.left(self.user, self.network, channel.name, nick, reason)

    def _on_nick(self, event: IrcEvent) -> None:  # before the client follows its own
        if event.source is None or not event.target:
            return
        old, new = event.source.nick, event.target
        me = self.client.is_me(old)
        if me:
            self.client.config = replace(self.client.config, nick=new)
        was = self.roster.fold(old)
        folded, nick = self._names(new)
        for channel in self.channels.values():
            state = channel.member(was)
            if state is None:
                continue
            channel.change(("nick", was, folded), {was: None, folded: (nick, state[1])})  # was == folded: one
            if channel.joined:
                self.view.renamed(self.user, self.network, channel.name, old, self._member((nick, state[1])), me)

    def _on_mode(self, event: IrcEvent) -> None:  # MODE <channel> <modes> [<params>]
        channel = self._channel(event.target)
        if channel is None or not channel.placed or not event.arguments:
            return
        prefix_modes = self._prefix_modes()
        before: dict[str, State] = {}
        after: dict[str, State] = {}
        for sign, mode, nick in modes.parse(event.arguments, getattr(self.client.features, "chanmodes", None),
                                            prefix_modes):
            if not nick or mode not in prefix_modes:
                continue
            folded = self.roster.fold(nick)
            if folded not in after:
                before[folded] = after[folded] = channel.member(folded)
            state = after[folded]
            if state is not None:
                after[folded] = (state[0], state[1].replace(mode, "") + (mode if sign == "+" else ""))
        after = {folded: state for folded, state in after.items() if state is not None}
        if not after:
            return
        channel.change(("mode", *event.arguments), after)
        if channel.joined:
            for folded, state in after.items():
                if self._top(state[1]) != self._top(before[folded][1]):
                    self.view.member(self.user, self.network, channel.name, self._member(state),
                                     folded == self.roster.fold(self.client.nick))

    def _on_message(self, event: IrcEvent) -> None:
        source = event.source
        if source is not None and not source.userhost and event.type == "privnotice" and event.arguments \
                and self.client.registered:  # the server's own notice (registration's are noise)
            self.view.server_said(self.user, self.network, irc_to_text(event.arguments[0]))
            return
        if source is None or not source.userhost or self.client.is_me(source.nick) or not event.arguments:
            return  # our own line (never asked to be echoed; a PRIVMSG to ourselves)
        channel = self._channel(event.target)
        text = irc_to_text(event.arguments[0])
        if not text.strip():
            return
        if channel is not None:
            if channel.joined:
                self.view.said(self.user, self.network, channel.name, source.nick, text, _KINDS[event.type])
        elif self.client.is_me(event.target):
            self.last_private = time.monotonic()
            self.view.said(self.user, self.network, "", source.nick, text, _KINDS[event.type])

    async def public_channels(self) -> list[tuple[str, int, str]]:
        """IRC LIST, one at a time per connection (a second asker shares the answer)."""
        if self.listing is None or self.listing.done():
            self.listing, self.listed = asyncio.get_running_loop().create_future(), []
            self.client.send(["LIST"], "", "you", time.time())
        listing = self.listing
        try:
            async with asyncio.timeout(LIST_WAIT):
                return list(await asyncio.shield(listing))
        except TimeoutError:
            if self.listing is listing:
                self.listing = None  # the next asker starts anew
            return list(self.listed)  # as far as it got

    def _on_list(self, event: IrcEvent) -> None:  # 322: <me> <channel> <users> :<topic>
        if self.listing is not None and not self.listing.done() and len(event.arguments) >= 2 \
                and len(self.listed) < LIST_LIMIT:
            users = int(event.arguments[1]) if event.arguments[1].isdigit() else 0
            self.listed.append((event.arguments[0], users, irc_to_text(event.arguments[-1])
                                if len(event.arguments) > 2 else ""))

    def _on_list_end(self, event: IrcEvent) -> None:  # 323
        if self.listing is not None and not self.listing.done():
            self.listing.set_result(self.listed)

    def _on_ctcp(self, event: IrcEvent) -> None:  # to the user's nick: VERSION and PING answered
        if event.source is None or not self.client.is_me(event.target) or not event.arguments:
            return
        ctcp, param = event.arguments[0], event.arguments[1] if len(event.arguments) > 1 else ""
        answers = {"VERSION": f"muc-bridge {__version__}, an XMPP gateway", "PING": clean(param)[:64]}
        answer = answers.get(ctcp)
        if answer is not None:
            self.client.control(f"NOTICE {event.source.nick} :\x01{ctcp} {answer}\x01")

    def _on_join_refused(self, event: IrcEvent) -> None:  # <me> <channel> :<text>
        channel = self._channel(event.arguments[0] if event.arguments else None)
        if channel is None or channel.joined:
            return
        del self.channels[self.roster.fold(channel.name)]
        why = Refused(JOIN_ERRORS.get(event.type, "not-allowed"), self._reply_text(event))
        self.log.info("portal_join_refused", room=channel.name, reply=event.type)
        channel.leave()
        self.view.refused(self.user, self.network, channel.name, why)
        self.users.reap_if_idle(self)

    def _on_refused(self, event: IrcEvent) -> None:  # <me> [<nick>] <channel> :<text>
        channel = next((c for c in map(self._channel, event.arguments[:-1]) if c is not None), None)
        if channel is not None and channel.joined:
            self.view.said(self.user, self.network, channel.name, "", self._reply_text(event),
                           MessageKind.NOTICE)

    def _on_no_such_nick(self, event: IrcEvent) -> None:  # 401: <me> <nick> :No such nick/channel
        if len(event.arguments) > 1 and self._channel(event.arguments[0]) is None:
            self.view.undelivered(self.user, self.network, event.arguments[0], self._reply_text(event))

    def _on_nick_refused(self, event: IrcEvent) -> None:  # after registration: a NICK of the user's
        if not self.client.registered:
            return
        wanted = event.arguments[0] if event.arguments else ""
        self.client.config = replace(self.client.config, nick=self.client.nick)  # no retries of it
        self.view.nick_refused(self.user, self.network, wanted, self._reply_text(event))

    def _reply_text(self, event: IrcEvent) -> str:
        """What the server said in a numeric reply (`<me> <param> :<text>`), with the network."""
        return f"{self.network}: {event.arguments[-1] if len(event.arguments) > 1 else event.type}"


class IrcUsers(Adapter, PortalNetworks):
    """Every portal user's connections, capped; an adapter only so that the bridge
    supervises its housekeeping and closes it on shutdown (it serves no link)."""

    protocol = "IRC"

    def __init__(self, config: PortalConfig, networks: Mapping[str, NetworkConfig],
                 max_age: float = 300.0, credentials: Callable[[str, str], tuple[str, str] | None]
                 = lambda user, network: None, identd: Identd | None = None, logged: bool = True) -> None:
        """`credentials(user, network)`: the SASL account and password the user gave;
        `identd`: the bridge's, which is to answer for these connections; `logged`: whether
        a connection's opening is logged here (False: its owner logs it, as plumbed links do)."""
        super().__init__("portal:irc", lambda event: None)
        self.logged = logged
        self.identd = identd
        if identd is not None:
            identd.add(self.ident)
        self.credentials = credentials
        self.config = config
        self.networks = {name: networks[name] for name in config.networks
                         if isinstance(networks.get(name), IrcNetworkConfig)}
        self.max_age = max_age
        self.view: PortalView | None = None  # the XMPP side sets it
        self.links: dict[tuple[str, str], UserLink] = {}
        self.known_chantypes: dict[str, str] = {}
        #: Per network, for its case mapping (and the cache of folded names all its users share).
        self.rosters: dict[str, Roster] = {}
        self.casemappings: dict[str, str] = {}
        #: (network, folded channel) -> its members, shared by every connection in it.
        self.tables: dict[tuple[str, str], Table] = {}
        self._closing: set[asyncio.Task] = set()

    def table(self, network: str, folded: str) -> Table:
        """The members of channel `folded` on `network`, shared (kept while someone reads it)."""
        table = self.tables.get((network, folded))
        if table is None:
            table = self.tables[(network, folded)] = Table(self.tables, (network, folded))
        return table

    # PortalNetworks

    def chantypes(self, network: str) -> str:
        return self.known_chantypes.get(network, "#&")

    def join(self, user: str, network: str, channel: str, nick: str, key: str = "") -> None:
        _check(channel, "channel name")
        if key:
            _check(key, "channel key")
        self._link(user, network, nick).join(channel, key)

    def snapshot(self, user: str, network: str, channel: str) -> Snapshot | None:
        link = self.links.get((user, network))
        return link.snapshot(channel) if link is not None else None

    def part(self, user: str, network: str, channel: str) -> None:
        link = self.links.get((user, network))
        if link is not None:
            link.part(channel)
            self.reap_if_idle(link)

    def say(self, user: str, network: str, target: str, text: str, kind: MessageKind) -> asyncio.Future:
        _check(target, "nick or channel")
        link = self.links.get((user, network))
        if link is None:
            link = self._link(user, network, user.partition("@")[0])
        if target[:1] not in self.chantypes(network):
            link.last_private = time.monotonic()
        return link.say(target, text, kind)

    async def channels(self, user: str, network: str) -> list[tuple[str, int, str]]:
        link = self.links.get((user, network)) or self._link(user, network, user.partition("@")[0])
        link.last_private = time.monotonic()  # kept a while, as for a private chat
        return await link.public_channels()

    def raw(self, user: str, network: str, line: str) -> None:
        if not line.strip() or any(c in line for c in "\r\n\0"):
            raise Refused("bad-request", "one IRC command per line")
        link = self.links.get((user, network)) or self._link(user, network, user.partition("@")[0])
        link.last_private = time.monotonic()
        link.raw_until = time.monotonic() + RAW_ANSWERS
        link.client.send([line.strip()], "", "you", time.time())  # once registered

    def set_topic(self, user: str, network: str, channel: str, text: str) -> None:
        link = self.links.get((user, network))
        if link is not None:
            link.client.control(f"TOPIC {channel} :{_one_line(text_to_irc(text))}")

    def nick(self, user: str, network: str, nick: str) -> None:
        link = self.links.get((user, network))
        if link is not None and not link.client.is_me(irc_nick(nick)):
            link.client.control(f"NICK {irc_nick(nick)}")

    def set_mode(self, user: str, network: str, channel: str, nick: str, mode: str) -> None:
        link = self.links.get((user, network))
        chan = link.channels.get(link.roster.fold(channel)) if link is not None else None
        state = chan.member(link.roster.fold(nick)) if chan is not None else None
        if state is None:
            raise Refused("item-not-found", f"{nick} is not in {channel}")
        order = link._prefix_modes()
        if mode:  # the next mode up where the network has none of the kind (no halfops: +o)
            wanted, mode = mode, next((m for m in mode + STRONGER.get(mode, "") if m in order), "")
            if not mode:
                raise Refused("not-acceptable", f"{network} has no channel mode +{wanted}")
        higher = order[:order.index(mode)] if mode else order  # what the member is to lose
        held = state[1]
        taken = "".join(m for m in held if m in higher)
        given = mode if mode and mode not in held else ""
        changes = (f"-{taken}" if taken else "") + (f"+{given}" if given else "")
        if changes:
            link.client.control(f"MODE {channel} {changes} {' '.join([nick] * (len(taken) + len(given)))}")

    def kick(self, user: str, network: str, channel: str, nick: str, reason: str) -> None:
        _check(nick, "nick")
        link = self.links.get((user, network))
        if link is not None:
            link.client.control(f"KICK {channel} {nick} :{_one_line(reason)}")

    def _link(self, user: str, network: str, nick: str) -> UserLink:
        link = self.links.get((user, network))
        if link is not None:
            return link
        if network not in self.networks:
            raise Refused("item-not-found", f"{network} is not reachable through this portal")
        if sum(1 for u, n in self.links if n == network) >= self.config.per_network:
            raise Refused("resource-constraint", f"{network}: the bridge has as many IRC connections "
                          "there as it may; try again later")
        if sum(1 for u, n in self.links if u == user) >= self.config.per_user:
            raise Refused("policy-violation", f"you have {self.config.per_user} IRC connections "
                          "through this bridge already, the most it allows")
        link = UserLink(user, self.networks[network], nick, self)
        self.links[(user, network)] = link
        link.start()
        if self.logged:
            link.log.info("portal_connection_opened", connections=len(self.links))
        return link

    def reap_if_idle(self, link: UserLink) -> None:
        """QUIT a connection that serves nothing any more."""
        if link.idle():
            self.drop(link, "left every channel")

    def drop(self, link: UserLink, why: str, message: str = "") -> None:
        """End `link` (QUIT with `message`, else `why`: only `why` is logged), if it is still
        the user's connection."""
        if self.release(link, message or why):
            link.log.info("portal_connection_closed", connections=len(self.links), reason=why)

    def release(self, link: UserLink, message: str) -> bool:
        """End `link` with the QUIT message `message`, unlogged (its owner logs it); False
        if it was no longer the user's connection."""
        if self.links.get((link.user, link.network)) is not link:
            return False
        del self.links[(link.user, link.network)]
        task = asyncio.create_task(link.close(message))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return True

    # Adapter

    def add_endpoint(self, room: str, options) -> None:
        raise ValueError("portal connections serve no link")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP)
            for link in list(self.links.values()):
                self.reap_if_idle(link)

    def ident(self, here: int, there: int) -> str | None:
        """The ident of the connection from our port `here` to the server's port `there`."""
        for link in self.links.values():
            transport = getattr(link.client.conn, "transport", None)  # none while connecting
            if transport is None:
                continue
            local, remote = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
            if local and remote and (local[1], remote[1]) == (here, there):
                return link.client.config.username
        return None

    async def deliver(self, room: str, event: Event) -> None:
        return None

    def is_own(self, identity: Identity) -> bool:
        return False

    async def close(self) -> None:
        if self.identd is not None:
            self.identd.discard(self.ident)
        links, self.links = list(self.links.values()), {}
        await asyncio.gather(*(link.close("muc-bridge shutting down") for link in links),
                             *self._closing, return_exceptions=True)


def webirc(config: IrcNetworkConfig, digest: bytes) -> tuple[str, ...]:
    """The WEBIRC line of a user's connection, if the network gave the bridge a password
    (IRCv3 webirc): the address is an IPv6 unique local address made of a hash of the JID,
    so the network can tell users apart (and ban one) without learning who they are; with no
    DNS name, it is the host name too."""
    if not config.webirc_password:
        return ()
    address = str(ipaddress.IPv6Address(b"\xfd" + digest[:15]))
    return (f"WEBIRC {config.webirc_password} muc-bridge {address} {address}",)


def _check(name: str, what: str) -> None:
    """Refuse a name that would not be one IRC parameter."""
    if not name or _NOT_TARGET.search(name):
        raise Refused("jid-malformed", f"{name!r} is not a valid IRC {what}")


def _one_line(text: str) -> str:
    return " ".join(text.split("\n")).replace("\r", "").replace("\0", "")


#: IRC event type -> the `UserLink` method that takes it.
_HANDLERS = {
    "featurelist": "_on_isupport", "join": "_on_join", "namreply": "_on_names",
    "endofnames": "_on_end_of_names", "currenttopic": "_on_current_topic", "topic": "_on_topic",
    "part": "_on_part", "kick": "_on_kick", "quit": "_on_quit", "nick": "_on_nick", "mode": "_on_mode",
    "ctcp": "_on_ctcp", "nosuchnick": "_on_no_such_nick", "list": "_on_list", "listend": "_on_list_end",
    **dict.fromkeys(_KINDS, "_on_message"), **dict.fromkeys(JOIN_ERRORS, "_on_join_refused"),
    **dict.fromkeys(NICK_REFUSED, "_on_nick_refused"), **dict.fromkeys(REFUSALS, "_on_refused"),
}
#: Numeric replies by the names the `irc` library gives them (and unnamed ones by number).
_NUMERICS = frozenset(numeric.values()) | frozenset(f"{n:03d}" for n in range(1, 1000))
