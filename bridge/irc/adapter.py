"""The IRC adapter: IRC channels as bridge endpoints, through one relay client.

IRC -> bridge: PRIVMSG, CTCP ACTION and NOTICE in a linked channel become
`Message`s (formatting codes turned into XEP-0393 styling); JOIN, PART, QUIT
(one `Part(quit=True)` per linked channel the user was in), NICK, KICK, AWAY
(with away-notify), MODE +o/+v (a `Standing`) and live TOPIC changes become their events. The topic the
server shows on join (RPL_TOPIC) is remembered but not relayed: it is not a
change, and relaying it on every reconnect would overwrite newer topics
elsewhere. Other CTCP is ignored. Nothing the relay client itself caused is
emitted. What is said in a channel while the relay client is out of it (link
lost, kicked...) cannot be fetched later (InspIRCd 3 and ngIRCd have no
CHATHISTORY): on rejoin, a notice from the bridge tells the rest of the link
that messages between those times may be missing.

Bridge -> IRC: `Message`s as `config.format` / `config.action_format` lines, XEP-0393
styling as formatting codes (`bridge.irc.styling`)
(NOTICEs stay NOTICEs; the bridge's own notices go out without a nick), split
to fit the wire (`bridge.irc.split`); `Topic` as TOPIC, after a NOTICE naming who set it. Corrections, replies,
retractions and reactions as IRCv3 tags / REDACT where the server carries them,
else in the text forms of `bridge.core.semantics`; from IRC, `s/old/new/` after
one's own line, `+draft/reply`, `+draft/react` / `+draft/unreact` (TAGMSG) and
REDACT become corrections, replies, reactions and retractions. Private messages to the
relay client (`alice: text`) and from people elsewhere: `bridge.irc.private`. In channels
whose endpoint says `xmpp_users: connect`, XMPP users who speak get IRC connections of their
own (`bridge.irc.plumbed`): their lines go out from them once they are in, and nothing those
connections say or do is emitted. Kicks and nick changes elsewhere are
one NOTICE line each (`bridge.core.roomevents`); joins and parts elsewhere are not shown on
IRC. Relayed lines are sent again
after a reconnect until the server confirms them, and dropped with one notice
once older than `max_age` (`bridge.irc.outbox`).
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog
from irc.client import Event as IrcEvent

from bridge.config_types import IrcNetworkConfig
from bridge.core.adapter import Adapter, EventSink
from bridge.core.events import (
    BRIDGE, Endpoint, Event, Identity, Join, Kick, Message, MessageKind, NickChange, Part,
    Presence, Private, Reaction, Retraction, Standing, Topic,
)
from bridge.core.idmap import MessageIds
from bridge.core.notices import gap_text, late_mark
from bridge.core.profile import Profile
from bridge.core.roomevents import RoomEvents, topic_setter_text
from bridge.core.semantics import (
    Gatherer, Pacer, Recent, correction_text, reply_text, retraction_text,
)
from bridge.core.users import Usage
from bridge.irc.client import RelayClient
from bridge.irc import modes
from bridge.irc.connection import MAX_RECEIVED_LINE
from bridge.irc.formatting import irc_to_text
from bridge.irc.identd import Identd
from bridge.irc.joins import REJOIN_INTERVAL, Joins
from bridge.irc.plumbed import ECHOES, Echoes, PlumbedUser, PlumbedUsers
from bridge.irc.private import IrcPrivates
from bridge.irc.roster import Roster
from bridge.irc.split import clean, truncate, wire_lines
from bridge.irc.whois import Whois
from bridge.irc.styling import text_to_irc

log = structlog.get_logger(__name__)

#: Longest sender nick shown in a relayed line (XMPP nicks may be 1023 bytes).
MAX_SHOWN_NICK = 64
#: Marks the native id of a user known by nick only. Account names are IRC parameters
#: (ACCOUNT, extended-join) and services never allow ":" in them: no account looks like this.
NICK_KEY = "nick:"
JOIN_FAILURES = ("nosuchchannel", "toomanychannels", "channelisfull", "inviteonlychan",
                 "bannedfromchan", "badchannelkey", "badchanmask",
                 "nochanmodes")  # 477, which networks use for "register your nick first"
_KINDS = {"pubmsg": MessageKind.PLAIN, "action": MessageKind.ACTION, "pubnotice": MessageKind.NOTICE}
#: `s/old/new/` (or `s/old/new/g`): a correction of the sender's own last line.
_SED = re.compile(r"s/((?:[^/\\]|\\.)+)/((?:[^/\\]|\\.)*)/?(g?)")
#: Longest corrected line, in characters: what one received line can hold. Corrections of
#: corrections would otherwise grow it without bound (s/a/aaaa/g three times: gigabytes).
MAX_CORRECTED = MAX_RECEIVED_LINE


class IrcAdapter(Adapter):
    protocol = "IRC"

    def __init__(self, config: IrcNetworkConfig, emit: EventSink, *, max_age: float = 300.0,
                 ids: MessageIds | None = None, identd: Identd | None = None) -> None:
        """`identd`: the bridge's, which is to answer for XMPP users' own connections."""
        super().__init__(config.name, emit)
        for fmt in (config.format, config.action_format):
            fmt.format(nick="nick", text="text")  # a broken format fails at start, not per message
        self.config = config
        self.roster = Roster()
        self.client = RelayClient(config, on_registered=self._on_registered, on_lost=self._on_lost,
                                  notice=self._notice_lines, fold=self.roster.fold, max_age=max_age)
        self.rooms: dict[str, str] = {}  # folded channel -> channel as configured
        self.joined: set[str] = set()  # folded
        self.topics: dict[str, str] = {}  # folded channel -> current topic, as IRC has it
        self.joins = Joins(config.name, self.client.control, self.in_room)  # channels as configured
        self.client.outbox.gate, self.client.outbox.held = self.joins.may_send, self.joins.hurry
        self._out_since: dict[str, float] = {}  # folded channel -> since when we do not hear it
        # Message ids and semantics: the link of each channel, texts relayed here (for
        # corrections and excerpts), each user's last line (for s/old/new/), our lines
        # whose echo will tell their msgid.
        self.ids = ids
        self.links: dict[str, str] = {}  # folded channel -> link name
        self.recent = Recent()
        self.last_lines = Recent()
        self.redacting = Recent(64)  # (room, msgid) -> the notice to send if the relay's REDACT fails
        self._echoes: Echoes = collections.deque(maxlen=ECHOES)
        self.pacer = Pacer(self._show_correction)
        self.privates = IrcPrivates(self)
        self.users = PlumbedUsers(self, max_age, identd)  # XMPP users' own connections (`xmpp_users: connect`)
        self.emit = self._unless_own(emit)
        self.whois = Whois(self.client, self.roster.fold)
        self.room_events = RoomEvents()  # kicks and nick changes elsewhere, as lines here
        self.reactions = Gatherer(lambda room, text: self.client.send(
            self._notice_lines(room, text), room, "reactions"))
        on = self.client.on
        on("featurelist", self._on_isupport)
        on("endofmotd", self._on_motd_done)
        on("nomotd", self._on_motd_done)
        on("join", self._on_join)
        on("part", self._on_part)
        on("kick", self._on_kick)
        on("quit", self._on_quit)
        on("nick", self._on_nick)
        on("account", self._on_account)
        on("away", self._on_away)
        on("namreply", self._on_names)
        on("mode", self._on_mode)
        on("topic", self._on_topic)
        on("currenttopic", self._on_current_topic)
        on("notopic", self._on_no_topic)
        on("tagmsg", self._on_tagmsg)
        on("redact", self._on_redact)
        on("fail", self._on_fail)
        on("privmsg", self.privates.received)
        on("action", self.privates.received)
        on("chanoprivsneeded", self._on_refused)
        on("cannotsendtochan", self._on_refused)
        for kind in _KINDS:
            on(kind, self._on_message)
        for reply in JOIN_FAILURES:
            on(reply, self._on_join_failed)

    def _unless_own(self, emit: EventSink) -> EventSink:
        """`emit`, passing on nothing XMPP users' own connections did or had done to them
        (what they do comes from the MUC)."""
        def filtered(event: Event) -> None:
            if not self.users.caused(event):
                emit(event)
        return filtered

    # Adapter interface

    def add_endpoint(self, room: str, options: Mapping[str, Any]) -> None:
        self.rooms[self.roster.fold(room)] = room  # options: topic direction is the router's
        self.joins.add(room)
        self.links[self.roster.fold(room)] = options.get("link", "")
        if options.get("xmpp_users") == "connect" and self.config.xmpp_user_clients:
            self.users.rooms.add(self.roster.fold(room))
        if self.client.registered:  # added by a reload: JOIN ahead of any line for it
            self._join_missing()

    def remove_endpoint(self, room: str) -> None:
        folded = self.roster.fold(room)
        self.rooms.pop(folded, None)
        self.links.pop(folded, None)
        self.topics.pop(folded, None)
        self.joins.remove(room)
        self._out_since.pop(folded, None)
        self.users.unlinked(room)
        if folded in self.joined:
            self.joined.discard(folded)
            self.roster.drop(room)
            self.client.control(f"PART {room} :unlinked from the bridge")
        log.info("irc_unlinked", network=self.network, room=room)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.client.run(), name=f"irc {self.network}")
            tasks.create_task(self._keep_joined(), name=f"irc {self.network} joins")
            tasks.create_task(self.users.run(), name=f"irc {self.network} users")

    async def deliver(self, room: str, event: Event) -> None:
        if isinstance(event, Private):
            await self.privates.deliver(event)
            return
        if isinstance(event, Message) and event.replaces is not None and event.sender != BRIDGE:
            self.pacer.offer((room, str(event.endpoint), event.replaces), (room, event))
            return
        own = None  # the sender's own connection, once in the channel
        if isinstance(event, Message):
            own = self.users.speaker(room, event)
            lines, when = self._message_lines(room, event, own), event.time
        elif isinstance(event, Retraction):
            own = self._retracting(room, event)
            lines, when = self._retraction_lines(room, event, own), event.time
        elif isinstance(event, Reaction):
            own = self.users.present(room, event.sender)
            lines, when = self._reaction_lines(room, event, own), event.time
        elif isinstance(event, Topic):  # the latest topic, however late: never too old
            lines, when = self._topic_lines(room, event), None
        elif self.users.follow(room, event):  # done by the user's own connection
            return
        else:  # kicks and nick changes elsewhere, as one line from the relay
            line = self.room_events.line(room, event)
            if line is None:
                return
            lines, when = self._notice_lines(room, line), event.time
        client = own.link.client if own is not None else self.client
        done = client.send(lines, room, str(event.endpoint), when)
        # Wait only once a backlog builds (flood control, a slow server), not
        # for a reconnect: lines queued in one loop turn then go out in one write.
        if self.client.registered and len(self.client.outbox) >= self.client.outbox.size // 2:
            await done

    def wants(self, event: Event) -> bool:
        if isinstance(event, Part):  # users' own connections leave with them
            return bool(self.users.rooms)
        return isinstance(event, (Message, Topic, Retraction, Reaction, Kick, NickChange))

    def reach(self, room: str, nick: str) -> str | None:
        return self.privates.reach(room, nick)

    def refuse(self, event: Private, why: str) -> None:
        self.privates.refuse(event, why)

    def is_own(self, identity: Identity) -> bool:
        if identity.network != self.network:
            return False
        account = self.client.account
        return self.client.is_me(identity.nick) or (account is not None and identity.native_id == account) \
            or self.users.own(identity.nick)

    async def profile(self, identity: Identity) -> Profile:
        """What WHOIS says about the nick now (real name, account, away), when it answers."""
        profile = Profile(identity.nick, self.network, self.protocol)
        reply = await self.whois.ask(identity.nick)
        if reply is None:
            return profile
        return replace(profile, online=reply.online, realname=reply.realname,
                       account=reply.account, away=reply.away)

    def security(self, room: str | None = None) -> list[str]:
        own = [self.users.security(name) for folded, name in self.rooms.items()
               if folded in self.users.rooms and (room is None or folded == self.roster.fold(room))]
        return [self.client.security(), *own]

    def own_clients(self) -> Usage | None:
        return self.users.usage()

    def connected(self) -> bool:
        return self.client.registered

    def in_room(self, room: str) -> bool:
        return self.roster.fold(room) in self.joined

    def reconnect(self) -> None:
        self.client.reconnect("reconnect asked by an operator")

    async def close(self) -> None:
        await asyncio.gather(self.client.close(), self.users.close())

    # Outgoing

    def _message_lines(self, room: str, msg: Message, own: PlumbedUser | None = None) -> list[str]:
        """`msg` as lines to `room` from the relay (`<alice> text`), or from `own`, its
        sender's own connection (`text`, /me as CTCP ACTION)."""
        client = own.link.client if own is not None else self.client
        command = "NOTICE" if msg.kind is MessageKind.NOTICE or msg.sender == BRIDGE else "PRIVMSG"
        text, tags, styled = msg.text, "", False
        if msg.sender != BRIDGE:
            text, tags = self._meaning(room, msg)
            styled_text = text_to_irc(text)
            text, styled = styled_text, styled_text is not text
        budget = client.budget(command, room) - len(tags)
        action = own is not None and msg.kind is MessageKind.ACTION  # a CTCP ACTION of the sender's own
        if action:
            budget -= len("\x01ACTION \x01")
        if msg.sender == BRIDGE or own is not None:
            def render(text: str) -> str:
                return text
        else:
            nick = truncate(clean(msg.sender.nick), MAX_SHOWN_NICK)
            fmt = self.config.action_format if msg.kind is MessageKind.ACTION else self.config.format

            def render(text: str) -> str:
                return fmt.format(nick=nick, text=text)
        lines = wire_lines(late_mark(msg) + text, render, budget, self.config.max_lines, styled)
        log.debug("irc_relay", network=self.network, room=room, lines=len(lines))
        if lines and msg.native_id is not None and msg.replaces is None:
            self._expect_echo(room, lines[0], msg, own)
        if action:
            lines = [f"\x01ACTION {line}\x01" for line in lines]
        return [f"{tags if n == 0 else ''}{command} {room} :{line}" for n, line in enumerate(lines)]

    # Corrections, replies, retractions, reactions

    def _meaning(self, room: str, msg: Message) -> tuple[str, str]:
        """The text a message shows here (a correction marked, a reply addressed) and the
        IRCv3 tags that go with it (`+draft/reply` where the server carries client tags)."""
        origin = str(msg.endpoint)
        if msg.replaces is not None:
            text = correction_text(self.recent.get((origin, msg.replaces)), msg.text)
            self.recent.put((origin, msg.replaces), msg.text)
            return text, ""
        if msg.native_id is not None:
            self.recent.put((origin, msg.native_id), msg.text)
        if msg.reply_to is None:
            return msg.text, ""
        msgid = self._msgid(room, msg.endpoint, msg.reply_to)
        tags = f"@+draft/reply={_tag_value(msgid)} " if msgid and "message-tags" in self.client.caps else ""
        return reply_text(msg.reply_nick, msg.text), tags

    def _msgid(self, room: str, origin: Endpoint, origin_id: str) -> str | None:
        """This channel's msgid for message `origin_id` of `origin`, if known."""
        if self.ids is None:
            return None
        link = self.links.get(self.roster.fold(room), "")
        return self.ids.translate(link, origin, origin_id, Endpoint(self.network, room))

    def _show_correction(self, item: object) -> None:
        room, msg = item
        own = self.users.speaker(room, msg)
        client = own.link.client if own is not None else self.client
        client.send(self._message_lines(room, msg, own), room, str(msg.endpoint), msg.time)

    def _retracting(self, room: str, event: Retraction) -> PlumbedUser | None:
        """The sender's own connection, when the line `event` takes back was said from it:
        REDACT is the sender's to send (or an operator's); the relay takes back its own."""
        own = self.users.present(room, event.sender)
        msgid = self._msgid(room, event.endpoint, event.target) if own is not None else None
        return own if msgid is not None and own.said.get(msgid) is not None else None

    def _retraction_lines(self, room: str, event: Retraction, own: PlumbedUser | None = None) -> list[str]:
        """REDACT where the server offers draft/message-redaction and the msgid is known,
        else a short notice (never XEP-0424's fallback text); from `own` when the line was
        said from it."""
        msgid = self._msgid(room, event.endpoint, event.target)
        client = own.link.client if own is not None else self.client
        if msgid and "draft/message-redaction" in client.caps:
            if own is None:  # if the server refuses the relay's REDACT (its window passed; a line
                # said from the sender's own connection too long ago to be known): `_on_fail`
                self.redacting.put((self.roster.fold(room), msgid),
                                   (str(event.endpoint), self._retraction_notice(event)))
            return [f"REDACT {room} {msgid}"]
        return self._message_lines(room, self._retraction_notice(event), own)

    def _retraction_notice(self, event: Retraction) -> Message:
        old = self.recent.get((str(event.endpoint), event.target))
        return Message(event.endpoint, event.sender, retraction_text(old), MessageKind.NOTICE)

    def _reaction_lines(self, room: str, event: Reaction, own: PlumbedUser | None = None) -> list[str]:
        """TAGMSG with +draft/react where client tags are carried (from `own`, the sender's
        own connection, when it is in the channel), else one gathered line."""
        msgid = self._msgid(room, event.endpoint, event.target)
        client = own.link.client if own is not None else self.client
        if msgid and "message-tags" in client.caps:
            key = "+draft/unreact" if event.removed else "+draft/react"
            return [f"@{key}={_tag_value(event.emoji)};+draft/reply={_tag_value(msgid)} TAGMSG {room}"]
        if not event.removed:
            nick = truncate(clean(event.sender.nick), MAX_SHOWN_NICK)
            self.reactions.add(room, nick, clean(event.emoji)[:16],
                               self.recent.get((str(event.endpoint), event.target)))
        return []

    def _notice_lines(self, room: str, text: str) -> list[str]:
        """`text` said in `room` by the bridge itself."""
        notice = Message(Endpoint(self.network, room), BRIDGE, text, MessageKind.NOTICE)
        return self._message_lines(room, notice)

    def _topic_lines(self, room: str, topic: Topic) -> list[str]:
        text = clean(topic.text).strip()
        limit = self.client.budget("TOPIC", room)
        topiclen = getattr(self.client.features, "topiclen", None)
        if isinstance(topiclen, int) and not isinstance(topiclen, bool) and topiclen > 0:
            limit = min(limit, topiclen)
        text = truncate(text, limit)
        folded = self.roster.fold(room)
        if self.topics.get(folded) == text:
            return []  # already so: no TOPIC that would only echo back
        self.topics[folded] = text
        setter = topic_setter_text(topic)  # TOPIC names the relay: who set it comes first
        return [*(self._notice_lines(room, setter) if setter else []), f"TOPIC {room} :{text}"]

    # Connection life

    def _on_registered(self) -> None:
        self.joins.registered()
        self.client.outbox.open()  # relayed lines for a channel wait for its JOIN (`joins`)

    def _on_motd_done(self, event: IrcEvent) -> None:
        self.joins.motd_done()
        self._join_missing()

    def _on_lost(self) -> None:
        heard = self.client.last_heard
        for folded in self.joined:
            self._out_since.setdefault(folded, heard)
        self.joined.clear()
        self.roster.clear()
        self.topics.clear()  # learnt again on rejoin (RPL_TOPIC)

    async def _keep_joined(self) -> None:
        while True:
            await asyncio.sleep(self.joins.wait())
            if self.client.registered:
                self._join_missing()

    def _join_missing(self) -> None:
        if self.joins.tick():
            self.client.outbox.wake()  # lines that waited for these JOINs

    # IRC events

    def _endpoint(self, channel: str | None) -> Endpoint | None:
        room = self.rooms.get(self.roster.fold(channel)) if channel else None
        return Endpoint(self.network, room) if room is not None else None

    def _identity(self, nick: str, tags: dict[str, str | None] | None = None) -> Identity:
        """Keyed by account when the network tells it, else by nick (folded and marked,
        so that an unregistered nick never passes for an account of the same name)."""
        account = (tags or {}).get("account")
        if account:
            self.roster.set_account(nick, account)
        account = account or self.roster.account(nick)
        return Identity(self.network, account or NICK_KEY + self.roster.fold(nick), nick)

    def _on_isupport(self, event: IrcEvent) -> None:
        self.joins.isupport(event.arguments)
        casemapping = getattr(self.client.features, "casemapping", None)
        if casemapping:
            self.roster.set_casemapping(casemapping)
            self.rooms = {self.roster.fold(room): room for room in self.rooms.values()}

    def _on_join(self, event: IrcEvent) -> None:
        nick, channel = event.source.nick, event.target
        endpoint = self._endpoint(channel)
        if endpoint is None:
            return  # only linked channels are tracked (a server could invent any number)
        if self.client.is_me(nick):
            folded = self.roster.fold(channel)
            self.joined.add(folded)
            self.roster.reset(channel)
            log.info("irc_joined", network=self.network, room=channel)
            since = self._out_since.pop(folded, None)
            if since is not None:
                self._gap(endpoint, since)
            return
        self.roster.joined(channel, nick)
        tags = _tags(event)
        if "extended-join" in self.client.caps and event.arguments:
            self.roster.set_account(nick, event.arguments[0])
        self.emit(Join(endpoint, self._identity(nick, tags), time=_time(tags)))

    def _on_part(self, event: IrcEvent) -> None:
        nick, channel = event.source.nick, event.target
        if self.client.is_me(nick) and self.roster.fold(channel) in self.rooms:
            self._left(channel, "parted")
            return
        endpoint = self._endpoint(channel)
        if endpoint is None:
            return
        tags = _tags(event)
        sender = self._identity(nick, tags)
        self.roster.left(channel, nick)
        reason = irc_to_text(event.arguments[0]) if event.arguments else ""
        self.emit(Part(endpoint, sender, reason, time=_time(tags)))

    def _on_kick(self, event: IrcEvent) -> None:
        channel, victim = event.target, event.arguments[0]
        reason = irc_to_text(event.arguments[1]) if len(event.arguments) > 1 else ""
        if self.client.is_me(victim):
            self._left(channel, "kicked", by=event.source.nick)
            return
        endpoint = self._endpoint(channel)
        if endpoint is None:
            return
        tags = _tags(event)
        target = self._identity(victim)
        self.roster.left(channel, victim)
        if not self.client.is_me(event.source.nick):
            self.emit(Kick(endpoint, self._identity(event.source.nick, tags), target, reason,
                           time=_time(tags)))

    def _gap(self, endpoint: Endpoint, since: float) -> None:
        """Say once that what was said in `endpoint` since `since` may not have been relayed."""
        until = time.time()
        log.warning("irc_gap", network=self.network, room=endpoint.room, seconds=round(until - since, 1))
        self.emit(Message(endpoint, BRIDGE, gap_text(str(endpoint), since, until), MessageKind.NOTICE))

    def _left(self, channel: str, how: str, **fields: Any) -> None:
        folded = self.roster.fold(channel)
        if folded in self.joined:
            self._out_since.setdefault(folded, time.time())
            self.joins.left(self.rooms[folded], kicked=how == "kicked")
        self.joined.discard(folded)
        self.roster.drop(channel)
        log.warning("irc_left_channel", network=self.network, room=channel, how=how, **fields)

    def _on_quit(self, event: IrcEvent) -> None:
        nick = event.source.nick
        if self.client.is_me(nick):
            return
        tags = _tags(event)
        sender = self._identity(nick, tags)
        reason = irc_to_text(event.arguments[0]) if event.arguments else ""
        for folded in self.roster.quit(nick):
            endpoint = self._endpoint(folded)
            if endpoint is not None:
                self.emit(Part(endpoint, sender, reason, quit=True, time=_time(tags)))

    def _on_nick(self, event: IrcEvent) -> None:
        old, new = event.source.nick, event.target
        if self.client.is_me(old) or not new:
            return  # our own: the client follows it
        tags = _tags(event)
        sender = self._identity(old, tags)
        channels = self.roster.rename(old, new)
        self.privates.partners.renamed(old, new)
        self._rekeyed(channels, sender, self._identity(new, tags), tags)

    def _on_account(self, event: IrcEvent) -> None:  # account-notify: ACCOUNT <name or *>
        nick = event.source.nick
        if self.client.is_me(nick):
            return
        before = self._identity(nick)
        self.roster.set_account(nick, event.target)
        after = self._identity(nick)
        if after.key != before.key:  # logged in or out: the same person, keyed anew
            self._rekeyed(self.roster.channels_of(nick), before, after, _tags(event))

    def _rekeyed(self, channels: list[str], before: Identity, after: Identity,
                 tags: dict[str, str | None]) -> None:
        for folded in channels:
            endpoint = self._endpoint(folded)
            if endpoint is not None:
                self.emit(NickChange(endpoint, before, after.nick, renamed=after, time=_time(tags)))

    def _on_away(self, event: IrcEvent) -> None:  # away-notify: AWAY [:message]
        if event.source is None or event.source.userhost is None:
            return  # RPL_AWAY (301, a WHOIS answer, from the server) has this event's name too
        nick = event.source.nick
        if self.client.is_me(nick):
            return
        tags = _tags(event)
        sender = self._identity(nick, tags)
        away = event.target is not None
        status = irc_to_text(event.target) if away else ""
        for folded in self.roster.channels_of(nick):
            endpoint = self._endpoint(folded)
            if endpoint is not None:
                self.emit(Presence(endpoint, sender, away, status, time=_time(tags)))

    def _on_names(self, event: IrcEvent) -> None:  # 353: <me> <symbol> <channel> :<names>
        channel, names = event.arguments[-2], event.arguments[-1]
        if self.roster.fold(channel) not in self.joined:
            return
        prefix = getattr(self.client.features, "prefix", None)  # True: PREFIX= (none)
        prefixes = "".join(prefix) if isinstance(prefix, dict) else "" if prefix is True else "@+"
        for name in names.split():
            nick = name.lstrip(prefixes).partition("!")[0]  # multi-prefix, userhost-in-names
            if nick:
                self.roster.joined(channel, nick)
                for symbol, mode in (("@", "o"), ("+", "v")):
                    if symbol in name[:len(name) - len(name.lstrip(prefixes))]:
                        self.roster.set_mode(channel, nick, mode, True)

    def _on_mode(self, event: IrcEvent) -> None:  # MODE <channel> <modes> [<params>]
        endpoint = self._endpoint(event.target)
        if endpoint is None or not event.arguments:
            return
        tags, features = _tags(event), self.client.features
        prefix = getattr(features, "prefix", None)  # True: PREFIX= (no prefix modes)
        prefix_modes = "".join(prefix.values()) if isinstance(prefix, dict) else \
            "" if prefix is True else modes.DEFAULT_PREFIX
        for sign, mode, nick in modes.parse(event.arguments, getattr(features, "chanmodes", None),
                                            prefix_modes):
            if mode in ("o", "v") and nick and not self.client.is_me(nick):
                before = self.roster.rank(event.target, nick)
                after = self.roster.set_mode(event.target, nick, mode, sign == "+")
                if after != before:
                    self.emit(Standing(endpoint, self._identity(nick), after, time=_time(tags)))

    def _on_topic(self, event: IrcEvent) -> None:
        channel = event.target
        endpoint = self._endpoint(channel)
        if endpoint is None:
            return
        text = event.arguments[0] if event.arguments else ""
        self.topics[self.roster.fold(channel)] = text
        if self.client.is_me(event.source.nick):
            return
        tags = _tags(event)
        self.emit(Topic(endpoint, self._identity(event.source.nick, tags), irc_to_text(text),
                        time=_time(tags)))

    def _on_current_topic(self, event: IrcEvent) -> None:  # 332: <me> <channel> :<topic>
        if self._endpoint(event.arguments[0]) is not None:
            self.topics[self.roster.fold(event.arguments[0])] = event.arguments[1]

    def _on_no_topic(self, event: IrcEvent) -> None:  # 331: <me> <channel> :No topic is set
        if self._endpoint(event.arguments[0]) is not None:
            self.topics[self.roster.fold(event.arguments[0])] = ""

    def _on_message(self, event: IrcEvent) -> None:
        source, channel = event.source, event.target
        endpoint = self._endpoint(channel)
        if endpoint is None or source is None or source.userhost is None:
            return  # not a linked channel, or a server notice
        tags = _tags(event)
        if self.client.is_me(source.nick):
            self._echoed(self._echoes, channel, event.arguments[0], tags.get("msgid"))
            return
        if self.users.users and (own := self.users.speaking(source.nick)) is not None:
            msgid = tags.get("msgid")
            if self._echoed(own.echoes, channel, event.arguments[0], msgid) and msgid:
                own.said.put(msgid, channel)
            return  # an XMPP user's line from their own connection: it came from the MUC
        text = irc_to_text(event.arguments[0])
        if not text.strip():
            return
        sender, msgid = self._identity(source.nick, tags), tags.get("msgid")
        key = (self.roster.fold(channel), sender.key)
        replaces, fixed = self._substitution(key, text) if event.type == "pubmsg" else (None, None)
        if replaces is None and msgid:
            self.last_lines.put(key, (msgid, text))
        self.emit(Message(
            endpoint, sender, fixed or text, _KINDS[event.type], native_id=msgid, replaces=replaces,
            reply_to=tags.get("+reply") or tags.get("+draft/reply"), time=_time(tags),
        ))

    def _substitution(self, key: tuple, text: str) -> tuple[str | None, str | None]:
        """`s/old/new/` right after the sender's own line (with a msgid): the id of that
        line and its corrected text; else (None, None)."""
        match = _SED.fullmatch(text.strip())
        last = self.last_lines.get(key)
        if match is None or last is None:
            return None, None
        msgid, said = last
        old, new = (re.sub(r"\\(.)", r"\1", part) for part in match.group(1, 2))
        count = said.count(old) if match.group(3) else min(said.count(old), 1)
        if not count or len(said) + count * (len(new) - len(old)) > MAX_CORRECTED:
            return None, None  # no such text, or a line no IRC line could hold: said as it is
        fixed = said.replace(old, new, count)
        self.last_lines.put(key, (msgid, fixed))
        return msgid, fixed

    def _expect_echo(self, room: str, first: str, msg: Message, own: PlumbedUser | None) -> None:
        """Learn the msgid `msg`'s first line gets here when it comes back: the relay's own
        line by echo-message, a line of an XMPP user's own connection as the relay hears it
        in the channel (with message-tags, the same msgid its sender gets)."""
        if own is None and "echo-message" in self.client.caps:
            self._echoes.append((self.roster.fold(room), first, msg.endpoint, msg.native_id))
        elif own is not None and "message-tags" in self.client.caps:
            own.echoes.append((self.roster.fold(room), first, msg.endpoint, msg.native_id))

    def _echoed(self, echoes: Echoes, channel: str, line: str, msgid: str | None) -> bool:
        """A line we sent came back (to the relay: echo-message, or heard from an XMPP user's
        own connection) with the msgid the server gave it: `echoes` are that connection's.
        True if it was one of them."""
        folded = self.roster.fold(channel)
        for n, (room, first, origin, origin_id) in enumerate(echoes):
            if room == folded and first == line:
                for _ in range(n + 1):  # those before it will not come (lost with a link)
                    echoes.popleft()
                if msgid and self.ids is not None:
                    self.ids.remember(self.links.get(folded, ""), origin, origin_id,
                                      Endpoint(self.network, self.rooms[folded]), msgid)
                return True
        return False

    def _on_tagmsg(self, event: IrcEvent) -> None:  # +draft/react, +draft/unreact (client-tag-react)
        endpoint, tags = self._endpoint(event.target), _tags(event)
        target = tags.get("+reply") or tags.get("+draft/reply")
        if endpoint is None or event.source is None or self.client.is_me(event.source.nick) or not target:
            return
        sender = self._identity(event.source.nick, tags)
        for key, removed in (("+draft/react", False), ("+draft/unreact", True)):
            if tags.get(key):
                self.emit(Reaction(endpoint, sender, target, tags[key], removed=removed, time=_time(tags)))

    def _on_redact(self, event: IrcEvent) -> None:  # REDACT <channel> <msgid> [:reason]
        endpoint, tags = self._endpoint(event.target), _tags(event)
        if endpoint is None or event.source is None or self.client.is_me(event.source.nick) \
                or not event.arguments:
            return
        self.emit(Retraction(endpoint, self._identity(event.source.nick, tags), event.arguments[0],
                             time=_time(tags)))

    def _on_fail(self, event: IrcEvent) -> None:
        """IRCv3 standard replies: `FAIL REDACT <code> <channel> <msgid> ...` (message-redaction)
        refuses a retraction; the channel then gets the notice said where REDACT is missing."""
        args = event.arguments
        log.warning("irc_command_failed", network=self.network, command=event.target,
                    code=args[0] if args else "")
        if event.target != "REDACT" or len(args) < 3:
            return
        room, msgid = args[1], args[2]
        refused = self.redacting.pop((self.roster.fold(room), msgid))
        if refused is not None and self._endpoint(room) is not None:
            origin, notice = refused
            self.client.send(self._message_lines(room, notice), room, origin, None)

    def _on_join_failed(self, event: IrcEvent) -> None:
        endpoint = self._endpoint(event.arguments[0] if event.arguments else None)
        if endpoint is None:
            return
        if event.type == "toomanychannels":  # said once per wave of refusals, not retried
            self.joins.too_many(endpoint.room)
            return
        log.warning("irc_join_failed", network=self.network, room=endpoint.room, reply=event.type,
                    retry_in=REJOIN_INTERVAL)

    def _on_refused(self, event: IrcEvent) -> None:
        log.warning("irc_refused", network=self.network, room=event.arguments[0] if event.arguments else "",
                    reply=event.type)


def _tag_value(value: str) -> str:
    """IRCv3 message-tags escaping of a tag value."""
    return (value.replace("\\", "\\\\").replace(";", "\\:").replace(" ", "\\s")
            .replace("\r", "\\r").replace("\n", "\\n"))


def _tags(event: IrcEvent) -> dict[str, str | None]:
    return {tag["key"]: tag["value"] for tag in event.tags or ()}


def _time(tags: dict[str, str | None]) -> float:
    """The server-time tag as a timestamp, or now."""
    stamp = tags.get("time")
    if stamp:
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()
