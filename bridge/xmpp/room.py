"""One linked MUC room: the bot occupant, the puppets, and what happens there.

The bot hears the room; each foreign user who speaks appears as a puppet
occupant (XEP-0045 section 7.2) with their own JID. Stanzas the server sends
to puppets are copies of what the bot already hears, and are dropped at once.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

import structlog

from bridge.config_types import ComponentConfig
from bridge.core.ratelimit import TokenBucket
from bridge.core.events import (
    BRIDGE, Endpoint, Event, Identity, Join, Kick, Message, MessageKind, NickChange, Part, Topic,
)
from bridge.store.base import Store
from bridge.xmpp.component import Component
from bridge.xmpp.stanza import (
    NS_DELAY, NS_MUC, NS_OCCUPANT_ID, NS_PING, NS_STANZA_ID, attr, child, child_text,
    error_condition, muc_statuses, resource, text,
)

log = structlog.get_logger(__name__)

#: How long deliveries wait for the bot to be in the room.
JOIN_TIMEOUT = 15.0
#: At the puppet limit, a puppet active this recently keeps its place and a
#: new speaker is relayed through the bot instead (no join/leave churn).
MIN_STAY = 60.0


@dataclass(eq=False)
class Puppet:
    identity: Identity
    jid: str
    nick: str  # its nick in this room (the wanted nick, or with a suffix)
    joined: bool = False
    joining: bool = False
    attempts: int = 0
    last_active: float = field(default_factory=time.monotonic)
    # Messages sent while the join was in flight, kept to resend if it fails.
    unconfirmed: list[tuple[str, str]] = field(default_factory=list)


class Room:
    def __init__(self, jid: str, options: dict, config: ComponentConfig, component: Component,
                 store: Store, emit: Callable[[Event], None]) -> None:
        self.jid = jid
        self.options = options
        self.config = config
        self.component = component
        self.store = store
        self.emit = emit
        self.endpoint = Endpoint("xmpp", jid)
        self.bot_jid = config.jid
        self.bot_nick = config.bot_nick
        self.joined = asyncio.Event()
        self.subject_seen = False
        self.occupants: dict[str, Identity] = {}
        # Puppets in the room (or joining), least recently active first; a
        # puppet that leaves is forgotten (the store keeps its JID).
        self.puppets: collections.OrderedDict[tuple[str, str], Puppet] = collections.OrderedDict()
        self.by_jid: dict[str, Puppet] = {}
        # Nicks our puppets hold, and those they gave up whose departure the
        # bot has not seen yet: a message from them is an echo of our own
        # (a second check besides `component.sent_ids`, for servers that rewrite ids).
        self.held: dict[str, Puppet] = {}
        self.leaving: set[str] = set()
        self.joining: dict[str, Puppet] = {}  # nicks our puppets asked for, unconfirmed
        # New puppets per time: a flood of new speakers comes through the bot.
        self.new_puppets = TokenBucket(config.puppet_joins.burst, config.puppet_joins.interval)
        self.log = log.bind(network="xmpp", room=jid)

    # -- joining ---------------------------------------------------------

    def join(self) -> None:
        """Join with the bot occupant, asking for no history (XEP-0045 7.2.14)."""
        self.joined.clear()
        self.subject_seen = False
        self.occupants.clear()
        self.component.send(
            f"<presence to={attr(self.jid + '/' + self.bot_nick)} from={attr(self.bot_jid)}>"
            f"<x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>")
        self.log.info("muc_joining", nick=self.bot_nick)

    def offline(self) -> None:
        """The stream is gone: the server has dropped all our occupants."""
        self.joined.clear()
        self.held.clear()
        self.leaving.clear()
        self.joining.clear()
        for puppet in self.puppets.values():  # they stay listed, to come back in `online`
            puppet.joined = puppet.joining = False

    def online(self) -> None:
        """Rejoin with the bot and every puppet that was in (XEP-0114 has no
        resumption: the server dropped them all)."""
        self.join()
        for puppet in list(self.puppets.values()):
            self._send_join(puppet)

    async def self_ping(self, timeout: float = 30.0) -> None:
        """XEP-0410: check that the bot is still in the room; rejoin if not."""
        if not self.joined.is_set():
            return
        reply = await self.component.query(f"{self.jid}/{self.bot_nick}", self.bot_jid,
                                           f"<ping xmlns='{NS_PING}'/>", timeout=timeout)
        if reply is None:
            self.log.warning("muc_self_ping_timeout")
            return
        if reply.get("type") == "error" and error_condition(reply) not in (
                "service-unavailable", "feature-not-implemented"):
            self.log.warning("muc_dropped", condition=error_condition(reply))
            self.online()

    # -- incoming stanzas ------------------------------------------------

    def on_presence(self, xml: ET.Element, to: str) -> None:
        nick = resource(xml.get("from", ""))
        if to != self.bot_jid:
            puppet = self.by_jid.get(to)
            if puppet is not None and (nick == puppet.nick or xml.get("type") == "error"):
                self._puppet_presence(puppet, xml)
            return
        kind = xml.get("type")
        x, codes = muc_statuses(xml)
        if kind == "error":
            self._bot_join_failed(xml)
            return
        if "110" in codes or (nick == self.bot_nick and not self.joined.is_set()):
            self._bot_presence(xml, kind, codes)
            return
        if self.is_own_nick(nick):
            if kind == "unavailable" and nick not in self.held:
                self.leaving.discard(nick)
            return
        item = x.find(f"{{{NS_MUC}#user}}item") if x is not None else None
        if kind == "unavailable":
            identity = self.occupants.pop(nick, None) or self._identity(xml, nick, item)
            if not self.joined.is_set():
                return
            if "303" in codes and item is not None and item.get("nick"):
                new = item.get("nick", "")
                self.occupants[new] = Identity("xmpp", identity.native_id, new)
                self.emit(NickChange(self.endpoint, identity, new))
            elif "307" in codes:
                reason = item.findtext(f"{{{NS_MUC}#user}}reason", "") if item is not None else ""
                self.emit(Kick(self.endpoint, BRIDGE, identity, reason))
            else:
                self.emit(Part(self.endpoint, identity, child_text(xml, "status") or ""))
        elif nick in self.joining and nick not in self.occupants:
            self.held[nick] = self.joining.pop(nick)  # a new occupant with our nick: our puppet
        elif nick not in self.occupants:
            self.occupants[nick] = self._identity(xml, nick, item)
            if self.joined.is_set():
                self.emit(Join(self.endpoint, self.occupants[nick]))

    def on_message(self, xml: ET.Element, to: str) -> None:
        kind = xml.get("type")
        if to != self.bot_jid:
            if kind == "error":
                puppet = self.by_jid.get(to)
                if puppet is not None:
                    self._puppet_message_failed(puppet, xml)
            return
        if kind == "error":
            self.log.warning("muc_message_error", condition=error_condition(xml))
            if error_condition(xml) == "not-acceptable":
                self.online()
            return
        if kind != "groupchat":
            return
        nick = resource(xml.get("from", ""))
        subject = child_text(xml, "subject")
        body = child_text(xml, "body")
        if subject is not None and body is None:
            first, self.subject_seen = not self.subject_seen, True
            if first or not nick or self._is_echo(nick, xml):  # the first one ends the join (7.2.15)
                return
            self.emit(Topic(self.endpoint, self._sender(xml, nick), subject))
            return
        if not body or not nick or self._is_echo(nick, xml):
            return
        identity = self._sender(xml, nick)
        sid = child(xml, NS_STANZA_ID, "stanza-id")
        native_id = sid.get("id") if sid is not None and sid.get("by") == self.jid else xml.get("id")
        kind_, body = (MessageKind.ACTION, body[4:]) if body.startswith("/me ") else (MessageKind.PLAIN, body)
        self.emit(Message(self.endpoint, identity, body, kind_, native_id=native_id))

    def _is_echo(self, nick: str, xml: ET.Element) -> bool:
        """Ours, or history (XEP-0203 delay): not to be relayed."""
        return (self.is_own_nick(nick) or xml.get("id") in self.component.sent_ids
                or child(xml, NS_DELAY, "delay") is not None)

    def _sender(self, xml: ET.Element, nick: str) -> Identity:
        return self.occupants.get(nick) or self._identity(xml, nick, None)

    def _identity(self, xml: ET.Element, nick: str, item: ET.Element | None) -> Identity:
        """XMPP identity: real JID when shown, else occupant id, else occupant JID."""
        real = item.get("jid") if item is not None else None
        if real:
            return Identity("xmpp", real.partition("/")[0], nick)
        occupant = child(xml, NS_OCCUPANT_ID, "occupant-id")
        if occupant is not None and occupant.get("id"):
            return Identity("xmpp", f"{self.jid}#{occupant.get('id')}", nick)
        return Identity("xmpp", f"{self.jid}/{nick}", nick)

    def _bot_presence(self, xml: ET.Element, kind: str | None, codes: set[str]) -> None:
        if kind == "unavailable":
            self.log.warning("muc_bot_removed", codes=sorted(codes))
            self.joined.clear()
            asyncio.get_running_loop().call_later(5.0, self.join)
            return
        if "201" in codes:  # a new room, locked until configured: make it an instant room (10.1.2)
            self.component.send(
                f"<iq type='set' id='{self.component.new_id()}' to={attr(self.jid)} "
                f"from={attr(self.bot_jid)}><query xmlns='{NS_MUC}#owner'>"
                f"<x xmlns='jabber:x:data' type='submit'/></query></iq>")
        if not self.joined.is_set():
            self.log.info("muc_joined", nick=self.bot_nick)
        self.joined.set()

    def _bot_join_failed(self, xml: ET.Element) -> None:
        condition = error_condition(xml)
        if condition == "conflict":
            self.bot_nick = self.bot_nick + self.config.nick_suffix
            self.log.warning("muc_bot_nick_taken", retry_nick=self.bot_nick)
            self.join()
        else:
            self.log.error("muc_join_failed", condition=condition)
            asyncio.get_running_loop().call_later(30.0, self.join)

    # -- puppets ---------------------------------------------------------

    def _puppet_for(self, identity: Identity) -> Puppet | None:
        """The puppet that speaks for `identity`, joining it if needed; None
        when the room is at `puppet_limit` with puppets all active recently,
        or new puppets came faster than `puppet_joins` allows."""
        puppet = self.puppets.get(identity.key)
        if puppet is not None:
            self.puppets.move_to_end(identity.key)
            return puppet
        if self.new_puppets.delay() > 0:
            return None
        if len(self.puppets) >= self.config.puppet_limit:
            oldest = next(iter(self.puppets.values()))
            if time.monotonic() - oldest.last_active < MIN_STAY:
                return None
            self.leave(oldest, "idle")
        record = self.store.puppet(identity)
        jid = f"{record.localpart}@{self.config.jid}/bridge"
        puppet = Puppet(identity, jid, record.nick)
        self.puppets[identity.key] = puppet
        self.by_jid[jid] = puppet
        self.new_puppets.spend()
        self._send_join(puppet)
        return puppet

    def _send_join(self, puppet: Puppet) -> None:
        puppet.joining = True
        puppet.last_active = time.monotonic()
        self.joining[puppet.nick] = puppet
        self.component.send(
            f"<presence to={attr(self.jid + '/' + puppet.nick)} from={attr(puppet.jid)}>"
            f"<x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>")

    def _puppet_presence(self, puppet: Puppet, xml: ET.Element) -> None:
        kind = xml.get("type")
        if self.joining.get(puppet.nick) is puppet:
            del self.joining[puppet.nick]
        if kind == "error":
            puppet.joining = puppet.joined = False
            if error_condition(xml) == "conflict" and puppet.attempts < 3:
                puppet.attempts += 1
                puppet.nick = f"{puppet.identity.nick}{self.config.nick_suffix * puppet.attempts}"
                self._send_join(puppet)
                self._resend(puppet)
            else:
                self.log.warning("puppet_join_failed", puppet=puppet.jid,
                                 condition=error_condition(xml))
                self._resend(puppet, via_bot=True)
                self._forget(puppet)
        elif kind == "unavailable":  # kicked, or the server dropped it
            self._release(puppet)
            self._forget(puppet)
        else:
            puppet.joined, puppet.joining, puppet.attempts = True, False, 0
            puppet.unconfirmed.clear()
            self.held[puppet.nick] = puppet

    def _puppet_message_failed(self, puppet: Puppet, xml: ET.Element) -> None:
        """The room refused a puppet's message: it was not (or no longer) in."""
        self.log.info("puppet_message_refused", puppet=puppet.jid, condition=error_condition(xml))
        body = next((b for i, b in puppet.unconfirmed if i == xml.get("id")), None)
        if body is None:
            body = child_text(xml, "body")
        if puppet.joined:
            puppet.joined = False
            if body:
                puppet.unconfirmed = [(xml.get("id", ""), body)]
                self._send_join(puppet)
                self._resend(puppet)
        elif body and not puppet.joining:
            self._send_groupchat(self.bot_jid, f"<{puppet.identity.nick}> {body}")

    def _resend(self, puppet: Puppet, via_bot: bool = False) -> None:
        pending, puppet.unconfirmed = puppet.unconfirmed, []
        for _, body in pending:
            if via_bot:
                self._send_groupchat(self.bot_jid, f"<{puppet.identity.nick}> {body}")
            else:
                self._puppet_say(puppet, body)

    def _puppet_say(self, puppet: Puppet, body: str) -> None:
        msg_id = self._send_groupchat(puppet.jid, body)
        if not puppet.joined:
            puppet.unconfirmed.append((msg_id, body))
            del puppet.unconfirmed[:-20]

    def leave(self, puppet: Puppet, status: str = "") -> None:
        self.component.send(
            f"<presence type='unavailable' to={attr(self.jid + '/' + puppet.nick)} "
            f"from={attr(puppet.jid)}><status>{text(status)}</status></presence>")
        self._release(puppet)
        self._forget(puppet)

    def _release(self, puppet: Puppet) -> None:
        if self.held.get(puppet.nick) is puppet:
            del self.held[puppet.nick]
            self.leaving.add(puppet.nick)

    def _forget(self, puppet: Puppet) -> None:
        puppet.joined = puppet.joining = False
        puppet.unconfirmed.clear()
        if self.puppets.get(puppet.identity.key) is puppet:
            del self.puppets[puppet.identity.key]
        if self.by_jid.get(puppet.jid) is puppet:
            del self.by_jid[puppet.jid]

    def sweep_idle(self, now: float | None = None) -> None:
        """Puppets silent for longer than `puppet_idle` leave the room."""
        cutoff = (now or time.monotonic()) - self.config.puppet_idle
        while self.puppets:
            oldest = next(iter(self.puppets.values()))
            if oldest.last_active >= cutoff:
                break
            self.leave(oldest, "idle")

    # -- delivering events from other networks ---------------------------

    async def deliver(self, event: Event) -> None:
        if not self.joined.is_set():
            try:
                async with asyncio.timeout(JOIN_TIMEOUT):
                    await self.joined.wait()
            except TimeoutError:
                self.log.warning("muc_not_joined_dropped", kind=type(event).__name__)
                return
        if isinstance(event, Message):
            self._deliver_message(event)
        elif isinstance(event, Topic):
            self.component.send(
                f"<message type='groupchat' to={attr(self.jid)} from={attr(self.bot_jid)} "
                f"id='{self._new_id()}'><subject>{text(event.text)}</subject></message>")
        elif isinstance(event, Join):
            if self.options.get("puppets") == "eager":
                self._puppet_for(event.sender)
        elif isinstance(event, (Part, Kick)):
            who = event.target if isinstance(event, Kick) else event.sender
            puppet = self.puppets.get(who.key)
            if puppet is not None:
                self.leave(puppet, event.reason)
        elif isinstance(event, NickChange):
            renamed = event.new_identity
            puppet = self.puppets.pop(event.sender.key, None)
            if renamed.key == event.sender.key:
                self.store.rename_puppet(renamed, renamed.nick)
            if puppet is not None:
                self.puppets[renamed.key] = puppet
                puppet.identity = renamed
                if event.new_nick != event.sender.nick:  # a MUC nick change (7.6): same occupant JID
                    puppet.attempts = 0
                    self._release(puppet)
                    puppet.nick = event.new_nick
                    self._send_join(puppet)

    def _deliver_message(self, event: Message) -> None:
        body = f"/me {event.text}" if event.kind is MessageKind.ACTION else event.text
        if event.sender == BRIDGE:
            self._send_groupchat(self.bot_jid, body)
            return
        puppet = self._puppet_for(event.sender)
        if puppet is None:  # the room is full of active puppets, or a flood of new speakers
            self._send_groupchat(self.bot_jid, f"<{event.sender.nick}> {body}")
            return
        if puppet.identity.nick != event.sender.nick:  # renamed while we were not looking
            puppet.identity = event.sender
            self.store.rename_puppet(event.sender, event.sender.nick)
        puppet.last_active = time.monotonic()
        self._puppet_say(puppet, body)

    def _send_groupchat(self, sender: str, body: str) -> str:
        msg_id = self._new_id()
        self.component.send(
            f"<message type='groupchat' to={attr(self.jid)} from={attr(sender)} id='{msg_id}'>"
            f"<body>{text(body)}</body></message>")
        return msg_id

    def _new_id(self) -> str:
        msg_id = self.component.new_id()
        self.component.sent_ids.add(msg_id)
        return msg_id

    def is_own_nick(self, nick: str) -> bool:
        return nick == self.bot_nick or nick in self.held or nick in self.leaving
