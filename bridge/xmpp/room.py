"""One linked MUC room: the bot occupant, the puppets, and what happens there.

The bot hears the room; each foreign user who speaks appears as a puppet
occupant (XEP-0045 section 7.2) with their own JID. Stanzas the server sends
to puppets are copies of what the bot already hears, and are dropped at once.

Nothing said while the bot was out is lost: a rejoin asks the room for its
history since the last message the bot heard (7.2.14), and relays what it had
not heard, once, as late. Messages the bridge sent and whose copy never came
back (`Outgoing`) are sent again after the rejoin unless that history shows them.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from xml.etree import ElementTree as ET

import structlog

from bridge.config_types import ComponentConfig
from bridge.core.notices import gap_text, stale_text
from bridge.core.ratelimit import TokenBucket
from bridge.core.events import (
    BRIDGE, Endpoint, Event, Identity, Join, Kick, Message, MessageKind, NickChange, Part, Reaction,
    Retraction, Standing, Topic,
)
from bridge.core.idmap import MessageIds
from bridge.store.base import JsonList, Store
from bridge.xmpp import semantics
from bridge.xmpp.component import Component
from bridge.xmpp import roles
from bridge.xmpp.kicks import Kicks
from bridge.xmpp.subjects import Subjects
from bridge.xmpp.meaning import RoomMeaning
from bridge.xmpp.stanza import (
    NS_DELAY, NS_MUC, NS_OCCUPANT_ID, NS_PING, NS_STANZA_ID, attr, child, child_text,
    bare, error_condition, error_text, muc_statuses, resource, text,
)

log = structlog.get_logger(__name__)

#: A join unanswered this long is sent again (its answer may have gone to another
#: connection of ours: ejabberd accepts two for one component).
JOIN_TIMEOUT = 20.0
#: Nick suffixes tried for the bot when its nick is taken, before starting over.
BOT_NICK_TRIES = 3
#: At the puppet limit, a puppet active this recently keeps its place and a
#: new speaker is relayed through the bot instead (no join/leave churn).
MIN_STAY = 60.0
#: History asked for on a rejoin reaches back this much before the last message heard
#: (stamps have whole seconds; what was heard already is recognised and skipped).
HISTORY_MARGIN = 2.0
#: Messages remembered as heard, to skip them when history replays them.
HEARD_MEMORY = 512
#: Keys of the last messages heard kept on disk per room (for the replay's overlap).
SAVED_KEYS = 32
#: Ids of our own messages kept on disk per room (a replay after a restart reaches back
#: a couple of seconds before the last message heard).
SENT_MEMORY = 128
#: A replay this long that repeats nothing we heard may have been cut short by the room.
HISTORY_FULL = 20


@dataclass(eq=False)
class Puppet:
    identity: Identity
    jid: str
    nick: str  # its nick in this room (the wanted nick, or with a suffix)
    joining: bool = False
    rank: str = ""  # op or voice on the network it speaks for, as the room shows it
    attempts: int = 0
    last_active: float = field(default_factory=time.monotonic)
    # Messages sent while the join was in flight, kept to resend if it fails.
    unconfirmed: list[tuple[str, str]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set while joined

    @property
    def joined(self) -> bool:
        return self.ready.is_set()

    @joined.setter
    def joined(self, value: bool) -> None:
        if value:
            self.ready.set()
        else:
            self.ready.clear()


class Room:
    def __init__(self, jid: str, options: dict, config: ComponentConfig, component: Component,
                 store: Store, emit: Callable[[Event], None], ids: MessageIds | None = None) -> None:
        self.jid = jid
        self.options = options
        self.config = config
        self.component = component
        self.store = store
        self.emit = emit
        self.ids = ids or MessageIds(store)
        self.meaning = RoomMeaning(self)  # what is more than text, both ways
        self.kicks = Kicks(self)
        self.subjects = Subjects(self)  # topics from elsewhere
        self.endpoint = Endpoint("xmpp", jid)
        self.bot_jid = config.jid
        self.bot_nick = config.bot_nick
        self.bot_role = self.bot_affiliation = ""  # the bot's, in the room (XEP-0045 5.1, 5.2)
        self.joined = asyncio.Event()
        self.subject_seen = False
        self.occupants: dict[str, Identity] = {}
        # Puppets in the room (or joining), least recently active first; a
        # puppet that leaves is forgotten (the store keeps its JID).
        self.puppets: collections.OrderedDict[tuple[str, str], Puppet] = collections.OrderedDict()
        self.by_jid: dict[str, Puppet] = {}
        # Nicks our puppets hold, and those they gave up whose departure the
        # bot has not seen yet: a message from them is an echo of our own (copies of
        # ours are mostly cut before the parser already: `component.outgoing`).
        self.held: dict[str, Puppet] = {}
        self.leaving: set[str] = set()
        # Nicks of puppets still held whose departure the bot saw before the puppet's own
        # copy of it came (a kick): not to be waited for in `leaving` then.
        self.departed: set[str] = set()
        self.joining: dict[str, Puppet] = {}  # nicks our puppets asked for, unconfirmed
        # Occupants that took a nick one of our puppets asked for, before the puppet's own
        # presence (or error) says whether it was ours: not counted as ours meanwhile.
        self.parked: dict[str, Identity] = {}
        self.bot_nick_tries = 0
        #: The id of the bot's leave before a rejoin (`online`), while its answer may come.
        self.leave_id: str | None = None
        self.max_age = 300.0  # the adapter sets delivery.max_age
        # What the bot heard, for a rejoin's history: until when, and the recent messages
        # (kept in the store too, so that a restarted bridge asks for what it missed).
        saved = store.cursor(self._cursor)
        saved = saved if isinstance(saved, dict) else {}
        self.heard_until: float | None = saved.get("until")
        self.heard: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict(
            (tuple(key), None) for key in saved.get("keys", ()))
        self._saved = _Heard(self.heard_until, self.heard)
        # The ids of what we sent lately, on disk before the turn ends: a restarted bridge,
        # even one killed outright, knows its own lines when the room's history replays them.
        ours = store.cursor(self._sent_cursor)
        ours = ours if isinstance(ours, list) else []
        for msg_id, sender in ours:
            component.outgoing.remember(msg_id, sender)
        self._ours = JsonList(ours, SENT_MEMORY)
        self._gap_from = 0.0
        self._replay: list[tuple[float, tuple[str, str], ET.Element]] = []
        self._join_started = 0.0
        self._join_timer: asyncio.TimerHandle | None = None
        # New puppets per time: a flood of new speakers comes through the bot.
        self.new_puppets = TokenBucket(config.puppet_joins.burst, config.puppet_joins.interval)
        self.log = log.bind(network="xmpp", room=jid)

    # -- joining ---------------------------------------------------------

    @property
    def _cursor(self) -> str:
        return f"heard:xmpp/{self.jid}"

    @property
    def _sent_cursor(self) -> str:
        return f"sent:xmpp/{self.jid}"

    def join(self) -> None:
        """Join with the bot occupant (XEP-0045 7.2.14): the very first time with no
        history; after an absence, with what was said since the last message heard
        (no further back than `max_age`: older would not be relayed anyway)."""
        self.joined.clear()
        self.subject_seen = False
        self.occupants.clear()
        self.parked.clear()
        self._replay.clear()
        self._gap_from = self.heard_until or 0.0
        if self.heard_until is None:
            history = "<history maxstanzas='0'/>"
        else:
            since = max(self.heard_until - HISTORY_MARGIN, time.time() - self.max_age)
            history = f"<history since='{_stamp(since)}'/>"
        self.component.send(
            f"<presence id='{self.component.new_id()}' to={attr(self.jid + '/' + self.bot_nick)} "
            f"from={attr(self.bot_jid)}><x xmlns='{NS_MUC}'>{history}</x></presence>")
        self.log.info("muc_joining", nick=self.bot_nick)
        self._join_started = time.monotonic()
        self._retry_join(JOIN_TIMEOUT, "join_timeout")

    def _retry_join(self, delay: float, why: str) -> None:
        """Join again after `delay` unless joined by then."""
        if self._join_timer is not None:
            self._join_timer.cancel()

        def retry() -> None:
            self._join_timer = None
            if not self.joined.is_set() and self.component.online:
                self.log.warning("muc_join_retry", reason=why, nick=self.bot_nick)
                self.join()
        self._join_timer = asyncio.get_running_loop().call_later(delay, retry)

    def offline(self) -> None:
        """The stream is gone: the server has dropped all our occupants."""
        self.joined.clear()
        self.held.clear()
        self.leaving.clear()
        self.departed.clear()
        self.joining.clear()
        self.parked.clear()
        if self._join_timer is not None:
            self._join_timer.cancel()
            self._join_timer = None
        for puppet in self.puppets.values():  # they stay listed, to come back in `online`
            puppet.joined = puppet.joining = False

    def online(self) -> None:
        """A new stream: join with the bot and every puppet that was in (XEP-0114 has
        no resumption). A server may still hold the bot of the old stream (Prosody keeps
        a component's occupants when its link drops, or the bridge was restarted): a
        join would then be a mere presence update, with no history, so the bot leaves
        first. The leave's answer is the old bot's departure, or an error with the leave's
        id (RFC 6120 8.3.1) where the room does not exist, or nothing at all where the room
        exists without the bot (Prosody and ejabberd both ignore it)."""
        self.leave_id = self.component.new_id()
        self.component.send(f"<presence type='unavailable' id='{self.leave_id}' "
                            f"to={attr(self.jid + '/' + self.bot_nick)} from={attr(self.bot_jid)}/>")
        self.join()
        for puppet in list(self.puppets.values()):
            self._send_join(puppet)

    def close(self, status: str) -> None:
        """The room is no longer linked: every puppet and the bot leave it, with `status`."""
        for puppet in list(self.puppets.values()):
            self.leave(puppet, status)
        if self.component.online:
            self.component.send(f"<presence type='unavailable' to={attr(self.jid + '/' + self.bot_nick)} "
                                f"from={attr(self.bot_jid)}><status>{text(status)}</status></presence>")
        self.offline()
        self.log.info("muc_unlinked")

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
            self.log.warning("muc_dropped", condition=error_condition(reply), text=error_text(reply))
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
            if self.leave_id is not None and xml.get("id") == self.leave_id:
                self.leave_id = None  # the answer to our leave: the bot was not in (a new room)
                return
            self._bot_join_failed(xml)
            return
        if "110" in codes or (nick == self.bot_nick and not self.joined.is_set()):
            self._bot_presence(xml, kind, codes)
            return
        if self.is_own_nick(nick):
            if kind == "unavailable":
                if nick in self.held:
                    self.departed.add(nick)
                else:
                    self.leaving.discard(nick)
            return
        item = x.find(f"{{{NS_MUC}#user}}item") if x is not None else None
        if kind == "unavailable":
            identity = (self.occupants.pop(nick, None) or self.parked.pop(nick, None)
                        or self._identity(xml, nick, item))
            if not self.joined.is_set():
                return
            if "303" in codes and item is not None and item.get("nick"):
                new = item.get("nick", "")
                self.occupants[new] = Identity("xmpp", identity.native_id, new)
                self.emit(NickChange(self.endpoint, identity, new))
            elif "307" in codes:
                reason = item.findtext(f"{{{NS_MUC}#user}}reason", "") if item is not None else ""
                actor = item.find(f"{{{NS_MUC}#user}}actor") if item is not None else None
                by = actor.get("nick", "") if actor is not None else ""
                self.emit(Kick(self.endpoint, self._sender(xml, by) if by else BRIDGE, identity, reason))
            else:
                self.emit(Part(self.endpoint, identity, child_text(xml, "status") or ""))
        elif nick in self.joining and nick not in self.occupants:
            identity = self._identity(xml, nick, item)
            real = item.get("jid") if item is not None else None
            if real and bare(real) != bare(self.joining[nick].jid):
                self._new_occupant(nick, identity)  # someone else got there first
            else:  # ours, unless our puppet's own answer is an error
                self.parked[nick] = identity
        elif nick in self.parked:
            self.parked[nick] = self._identity(xml, nick, item)
        elif nick not in self.occupants:
            self._new_occupant(nick, self._identity(xml, nick, item))

    def _new_occupant(self, nick: str, identity: Identity) -> None:
        self.occupants[nick] = identity
        if self.joined.is_set():
            self.emit(Join(self.endpoint, identity))

    def on_message(self, xml: ET.Element, to: str) -> None:
        kind = xml.get("type")
        if to != self.bot_jid:
            if kind == "error":
                puppet = self.by_jid.get(to)
                if puppet is not None and not self.subjects.refused(xml.get("id", ""), error_condition(xml)):
                    self._puppet_message_failed(puppet, xml)
            return
        if kind == "error":
            self.log.warning("muc_message_error", condition=error_condition(xml),
                             text=error_text(xml))
            if error_condition(xml) == "not-acceptable":
                self.online()
            return
        if kind != "groupchat":
            return
        nick = resource(xml.get("from", ""))
        subject = child_text(xml, "subject")
        body = child_text(xml, "body")
        if subject is not None and body is None:
            self.component.outgoing.echo(xml.get("id", ""), xml.get("from", ""))
            first, self.subject_seen = not self.subject_seen, True
            if first:  # the first one ends the join (7.2.15)
                self._joined_with_history()
                return
            if not nick or self.is_own_nick(nick) or _delayed(xml) is not None:
                return
            self.emit(Topic(self.endpoint, self._sender(xml, nick), subject))
            return
        if not nick or not (body or semantics.special(xml, "")):  # a reaction, a retraction
            return
        stamp = _delayed(xml)
        if stamp is not None:  # history, during a join: sorted out when the join ends
            if not self.subject_seen and len(self._replay) < HISTORY_FULL * 50:
                self._replay.append((stamp, self._key(xml, nick), xml))
            return
        self._heard(self._key(xml, nick), time.time())
        if self.is_own_nick(nick) or self.component.outgoing.echo(xml.get("id", ""), xml.get("from", "")):
            sid = child(xml, NS_STANZA_ID, "stanza-id")  # ours (the reflection filter cuts
            if sid is not None and sid.get("by") == self.jid and sid.get("id"):  # most before
                self.meaning.learned(xml.get("id", ""), sid.get("id", ""))  # the parser)
            return
        self._relay(xml, nick, body or "")

    def _relay(self, xml: ET.Element, nick: str, body: str, when: float | None = None) -> None:
        identity = self._sender(xml, nick)
        sid = child(xml, NS_STANZA_ID, "stanza-id")
        native_id = sid.get("id") if sid is not None and sid.get("by") == self.jid else xml.get("id")
        if semantics.special(xml, body):
            self.meaning.relay(xml, identity, body, native_id, when)
            return
        self.meaning.remember(xml.get("id"), native_id, nick, body)
        kind_, body = (MessageKind.ACTION, body[4:]) if body.startswith("/me ") else (MessageKind.PLAIN, body)
        if when is None:
            self.emit(Message(self.endpoint, identity, body, kind_, native_id=native_id))
        else:
            self.emit(Message(self.endpoint, identity, body, kind_, native_id=native_id,
                              late=True, time=when))

    def _key(self, xml: ET.Element, nick: str) -> tuple[str, str]:
        """What tells one room message from another: the room's stanza-id, else sender and id."""
        sid = child(xml, NS_STANZA_ID, "stanza-id")
        if sid is not None and sid.get("by") == self.jid and sid.get("id"):
            return ("", sid.get("id", ""))
        if xml.get("id"):
            return (nick, xml.get("id", ""))
        body = (child_text(xml, "body") or "").encode()  # kept on disk: a digest, not the words
        return (nick, hashlib.blake2b(body, digest_size=12).hexdigest())

    def _heard(self, key: tuple[str, str] | None, when: float) -> None:
        """The bot has heard the room up to `when` (and the message `key`)."""
        if key is not None:
            self.heard[key] = None
            if len(self.heard) > HEARD_MEMORY:
                self.heard.popitem(last=False)
            self._saved.keys.append(key)
        if self.heard_until is None or when > self.heard_until:
            self.heard_until = self._saved.until = when
        # On disk by the end of the turn: a restart, even after a hard kill, neither misses
        # nor repeats what the replay brings (the last keys recognise the overlap).
        self.store.save_cursor(self._cursor, self._saved)

    def _joined_with_history(self) -> None:
        """The join is complete: relay what the history holds that we had not heard
        (once, as late), then send again what we sent and the room never showed."""
        replay, self._replay = self._replay, []
        overlap = False
        for stamp, key, xml in replay:
            sender = xml.get("from", "")
            if key in self.heard:
                overlap = True
                continue
            self._heard(key, stamp)
            nick = resource(sender)
            # It arrived after all; or an earlier run sent it (its store may not have the id).
            ours = (self.component.outgoing.echo(xml.get("id", ""), sender)
                    or self.component.outgoing.minted(xml.get("id", ""), sender))
            if not ours and not self.is_own_nick(nick):
                self._relay(xml, nick, child_text(xml, "body") or "", when=stamp)
        if replay and not overlap and len(replay) >= HISTORY_FULL and self._gap_from:
            self.log.warning("muc_history_short", since=round(self._gap_from), replayed=len(replay))
            self.emit(Message(self.endpoint, BRIDGE, gap_text(str(self.endpoint), self._gap_from,
                                                               replay[0][0]), MessageKind.NOTICE))
        self._heard(None, time.time())  # from here on the bot hears everything live
        self._resend_unconfirmed()

    def _resend_unconfirmed(self) -> None:
        """Messages sent before this join whose copy never came: again, same id (once:
        a copy that comes now confirms it); too old ones are dropped with one line."""
        stale = 0
        for msg_id, item in self.component.outgoing.unconfirmed(self.jid):
            if item.attempt >= self._join_started:
                continue
            if time.time() - item.sent > self.max_age:
                self.component.outgoing.drop(msg_id)
                stale += 1
                continue
            item.attempt = time.monotonic()
            self.component.send(item.stanza)
        if stale:
            self.log.warning("muc_unconfirmed_stale", count=stale, max_age=self.max_age)
            self._bot_say(stale_text(stale, ["the bridge"], self.max_age))

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
            self.joined.clear()
            if self.leave_id is not None:  # our own leave before a rejoin: the join is on its way
                self.leave_id = None
                return
            self.log.warning("muc_bot_removed", codes=sorted(codes))
            self._retry_join(5.0, "removed")
            return
        item = child(xml, f"{NS_MUC}#user", "x")
        item = item.find(f"{{{NS_MUC}#user}}item") if item is not None else None
        if item is not None:
            self.bot_role, self.bot_affiliation = item.get("role", ""), item.get("affiliation", "")
        if "201" in codes:  # a new room, locked until configured: make it an instant room (10.1.2)
            self.component.send(
                f"<iq type='set' id='{self.component.new_id()}' to={attr(self.jid)} "
                f"from={attr(self.bot_jid)}><query xmlns='{NS_MUC}#owner'>"
                f"<x xmlns='jabber:x:data' type='submit'/></query></iq>")
        self.leave_id = None  # in: a leave still unanswered was ignored (the bot was not in)
        if not self.joined.is_set():
            self.log.info("muc_joined", nick=self.bot_nick)
            self.bot_nick_tries = 0
        if self._join_timer is not None:
            self._join_timer.cancel()
            self._join_timer = None
        self.joined.set()

    def _bot_join_failed(self, xml: ET.Element) -> None:
        condition = error_condition(xml)
        if condition == "conflict" and self.bot_nick_tries < BOT_NICK_TRIES:
            self.bot_nick_tries += 1
            self.bot_nick = self.config.bot_nick + self.config.nick_suffix * self.bot_nick_tries
            self.log.warning("muc_bot_nick_taken", retry_nick=self.bot_nick)
            self.join()
        else:
            self.log.error("muc_join_failed", condition=condition, text=error_text(xml))
            self.bot_nick, self.bot_nick_tries = self.config.bot_nick, 0
            self._retry_join(30.0, condition or "error")

    # -- puppets ---------------------------------------------------------

    def puppet_for(self, identity: Identity) -> Puppet | None:
        """The puppet that speaks for `identity`, joining it if needed; None
        when the room is at `puppet_limit` with puppets all active recently,
        or new puppets came faster than `puppet_joins` allows."""
        puppet = self.puppets.get(identity.key)
        if puppet is not None:
            self.puppets.move_to_end(identity.key)
            return puppet
        if self.kicks.held_out(identity) or self.new_puppets.delay() > 0:
            return None
        if len(self.puppets) >= self.config.puppet_limit:
            oldest = next(iter(self.puppets.values()))
            if time.monotonic() - oldest.last_active < MIN_STAY:
                return None
            self.leave(oldest, "idle")
        record = self.store.puppet(identity)
        if record.nick != identity.nick:  # known from before, under another nick
            record = self.store.rename_puppet(identity, identity.nick)
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
        taken = self.parked.pop(puppet.nick, None)
        if kind == "error":
            if taken is not None:  # the occupant the bot saw with this nick is someone else
                self._new_occupant(puppet.nick, taken)
            puppet.joining = puppet.joined = False
            if error_condition(xml) == "conflict" and puppet.attempts < 3:
                puppet.attempts += 1
                puppet.nick = f"{puppet.identity.nick}{self.config.nick_suffix * puppet.attempts}"
                self._send_join(puppet)
                self._resend(puppet)
            else:
                self.log.warning("puppet_join_failed", puppet=puppet.jid,
                                 condition=error_condition(xml), text=error_text(xml))
                self._resend(puppet, via_bot=True)
                self._forget(puppet)
        elif kind == "unavailable":  # kicked, or the server dropped it
            x, codes = muc_statuses(xml)
            if "307" in codes:
                self.kicks.puppet_kicked(puppet, x.find(f"{{{NS_MUC}#user}}item"))
            self._release(puppet)
            self._forget(puppet)
        else:
            puppet.joined, puppet.joining, puppet.attempts = True, False, 0
            puppet.unconfirmed.clear()
            self.held[puppet.nick] = puppet
            self.departed.discard(puppet.nick)

    def _puppet_message_failed(self, puppet: Puppet, xml: ET.Element) -> None:
        """The room refused a puppet's message: it was not (or no longer) in."""
        self.log.info("puppet_message_refused", puppet=puppet.jid, condition=error_condition(xml),
                      text=error_text(xml))
        self.component.outgoing.drop(xml.get("id", ""))  # sent again below, with a new id
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
            self._bot_say(f"<{puppet.identity.nick}> {body}")

    def _resend(self, puppet: Puppet, via_bot: bool = False) -> None:
        pending, puppet.unconfirmed = puppet.unconfirmed, []
        for _, body in pending:
            if via_bot:
                self._bot_say(f"<{puppet.identity.nick}> {body}")
            else:
                self._puppet_say(puppet, body)

    def _puppet_say(self, puppet: Puppet, body: str, when: float | None = None,
                    inner: str | None = None) -> str:
        msg_id = self._send(puppet.jid, puppet.nick, inner or f"<body>{text(body)}</body>", when)
        if not puppet.joined:
            puppet.unconfirmed.append((msg_id, body))
            del puppet.unconfirmed[:-20]
        return msg_id

    def _bot_say(self, body: str, when: float | None = None) -> None:
        self._send(self.bot_jid, self.bot_nick, f"<body>{text(body)}</body>", when)

    def _send(self, sender: str, nick: str, inner: str, when: float | None) -> str:
        """A groupchat message from occupant `nick` (JID `sender`), kept until its copy comes."""
        occupant = f"{self.jid}/{nick}"
        msg_id = self.component.outgoing.new_id(occupant)
        stanza = (f"<message type='groupchat' to={attr(self.jid)} from={attr(sender)} id='{msg_id}'>"
                  f"{inner}</message>")
        self.component.outgoing.add(msg_id, self.jid, occupant, stanza, when)
        self.component.send(stanza)
        self._ours.append((msg_id, occupant))
        self.store.save_cursor(self._sent_cursor, self._ours)
        return msg_id

    def leave(self, puppet: Puppet, status: str = "") -> None:
        self.component.send(
            f"<presence type='unavailable' to={attr(self.jid + '/' + puppet.nick)} "
            f"from={attr(puppet.jid)}><status>{text(status)}</status></presence>")
        self._release(puppet)
        self._forget(puppet)

    def _release(self, puppet: Puppet) -> None:
        if self.held.get(puppet.nick) is puppet:
            del self.held[puppet.nick]
            if puppet.nick in self.departed:
                self.departed.discard(puppet.nick)
            else:
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
        """Waits while the bot is not in the room (events meanwhile wait in the router's
        bounded queue, where age limits apply), then shows `event`."""
        while not self.joined.is_set():
            try:
                async with asyncio.timeout(JOIN_TIMEOUT):
                    await self.joined.wait()
            except TimeoutError:
                self.log.warning("muc_not_joined_waiting", kind=type(event).__name__)
        if isinstance(event, Message):
            self._deliver_message(event)
        elif isinstance(event, (Retraction, Reaction)):
            inner = (self.meaning.retraction(event) if isinstance(event, Retraction)
                     else self.meaning.reaction(event))
            puppet = self.puppets.get(event.sender.key)
            if inner is not None:  # from whoever said the message: the puppet, else the bot
                self._send(*((puppet.jid, puppet.nick) if puppet is not None
                             else (self.bot_jid, self.bot_nick)), inner, event.time)
        elif isinstance(event, Topic):
            self.subjects.show(event)
        elif isinstance(event, Join):
            if self.options.get("puppets") == "eager":
                self.puppet_for(event.sender)
        elif isinstance(event, Kick):
            await self.kicks.kicked_elsewhere(event)
        elif isinstance(event, Standing):
            await roles.show(self, event)
        elif isinstance(event, Part):
            puppet = self.puppets.get(event.sender.key)
            if puppet is not None:
                self.leave(puppet, event.reason)
        elif isinstance(event, NickChange):
            renamed = event.new_identity
            puppet = self.puppets.pop(event.sender.key, None)
            if renamed.key == event.sender.key:
                self.store.rename_puppet(renamed, renamed.nick)
            if puppet is not None:
                self.puppets[renamed.key] = puppet
                self._rename(puppet, renamed)

    def _rename(self, puppet: Puppet, identity: Identity) -> None:
        """`puppet` speaks for `identity` now; a new nick is a MUC nick change (7.6):
        the same occupant JID asks for the new nick."""
        old, puppet.identity = puppet.identity.nick, identity
        if identity.nick != old:
            puppet.attempts = 0
            self._release(puppet)
            puppet.nick = identity.nick
            self._send_join(puppet)

    def _deliver_message(self, event: Message) -> None:
        body = f"/me {event.text}" if event.kind is MessageKind.ACTION else event.text
        if event.sender == BRIDGE:
            self._bot_say(body, event.time)
            return
        notice = event.kind is MessageKind.NOTICE
        if notice:  # marked as IRC clients show notices, from the puppet or the bot alike
            body = f"-{event.sender.nick}- {body}"
        puppet = self.puppet_for(event.sender)
        if puppet is None:  # the room is full of active puppets, or a flood of new speakers
            body = body if notice else f"<{event.sender.nick}> {body}"
            msg_id = self._send(self.bot_jid, self.bot_nick, self.meaning.payload(event, body), event.time)
        else:
            if puppet.identity.nick != event.sender.nick:  # renamed while we were not looking
                self.store.rename_puppet(event.sender, event.sender.nick)  # (a SILC user back
                self._rename(puppet, event.sender)  # under a new nick): the MUC sees it too
            puppet.last_active = time.monotonic()
            msg_id = self._puppet_say(puppet, body, event.time, self.meaning.payload(event, body))
        if event.native_id is not None and event.replaces is None:
            self.ids.remember(self.options.get("link", ""), event.endpoint, event.native_id,
                              self.endpoint, msg_id)
            self.meaning.remember(None, msg_id, puppet.nick if puppet else self.bot_nick, body)

    def is_own_nick(self, nick: str) -> bool:
        return nick == self.bot_nick or nick in self.held or nick in self.leaving


class _Heard:
    """What the bot heard, as kept on disk: until when, and the last messages' keys."""

    def __init__(self, until: float | None, keys: Iterable[tuple[str, str]]) -> None:
        self.until = until
        self.keys = JsonList(keys, SAVED_KEYS)

    def json(self) -> str:
        return f'{{"until": {json.dumps(self.until)}, "keys": {self.keys.json()}}}'


def _delayed(xml: ET.Element) -> float | None:
    """The XEP-0203 stamp of a message the room replays from its history, if it is one."""
    delay = child(xml, NS_DELAY, "delay")
    if delay is None:
        return None
    try:
        return datetime.fromisoformat(delay.get("stamp", "").replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0  # history all the same; too old to relay


def _stamp(when: float) -> str:
    """A Unix time as an XEP-0082 DateTime."""
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
