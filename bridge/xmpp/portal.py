"""Portal rooms: the component serves `#chan%network@component` as a MUC (XEP-0045, the
room's side) for users with their own IRC connection (`bridge.irc.users`).

Join (7.2): the IRC JOIN goes out; at the end of NAMES the user gets every occupant
(role and affiliation from their prefix mode, biboumi's table: q/a owner and o admin are
moderators, h a moderator member, v a participant member), then their own presence (110,
100: occupants' JIDs are shown, as `nick%network@component`; 210 when the network gave
another nick than asked), then the subject (7.2.15). IRC join refusals are the presence
errors 7.2 names for the same cases (`bridge.irc.users.JOIN_ERRORS`).
Several resources of one account share the connection: a resource joining a channel the
connection is in gets the occupants, its presence and the subject at once; everything from
IRC goes to every resource in the room, and a message of one resource is reflected to all
of them (7.4, with its id) once written to IRC (or queued for the reconnect, the link
being down). The IRC PART goes when the last resource leaves. A message from a resource
that is not in the room is refused (not-acceptable); what IRC refuses there (a topic
without op, a line to a moderated channel) the room says, from its own JID. A join IRC
does not answer within `JOIN_WAIT` is refused with remote-server-timeout.
Nick changes (7.6) both ways: a presence with another nick to the room asks IRC for it
(a mere status update changes nothing); an IRC NICK is an unavailable presence with 303
and the new nick, then an available one. Kicks (307) with the kicker as actor; a kick
from the user is a muc#admin role=none (8.2). XEP-0410 self-pings are answered at once:
result while the resource is in the room as that nick, else not-acceptable. An error a
client sends back (a resource gone) takes that resource out of every portal room.

Private chats: a chat to `nick%network@component` goes from the user's connection to the
nick, and one to `#chan%network@component/nick` (a MUC private message) likewise; what an
IRC user writes to the user's nick comes as a chat from `nick%network@component`. A chat
to `network@component` is IRC commands; the server's answers come from there.
All stanzas are raw strings, as on plumbed rooms.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

import structlog

from bridge.config_types import PortalConfig
from bridge.core.events import MessageKind
from bridge.core.portal import Member, PortalNetworks, PortalView, Refused, Snapshot, allowed
from bridge.store.base import Store
from bridge.store.sqlite import escape_localpart
from bridge.core.tokens import new_id
from bridge.xmpp.portal_history import NS_MAM, NS_RSM, BadQuery, History, asked
from bridge.xmpp.portal_jids import PortalJid, address, parse
from bridge.xmpp.stanza import (
    NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_MUC_USER, NS_PING, NS_STANZA_ID, NS_STANZAS, attr, bare,
    child, child_text, error_condition, text,
)

log = structlog.get_logger(__name__)

#: `Component.query`: (to, from, payload, kind, timeout) -> the answer, None if none came.
Query = Callable[[str, str, str, str, float], Awaitable[ET.Element | None]]

#: XEP-0045 5.1, 5.2 as biboumi maps IRC prefix modes (role, affiliation).
ROLES = {"q": ("moderator", "owner"), "a": ("moderator", "owner"), "o": ("moderator", "admin"),
         "h": ("moderator", "member"), "v": ("participant", "member"), "": ("participant", "none")}
NS_MUC_ADMIN = f"{NS_MUC}#admin"
#: muc#admin roles and affiliations as the prefix mode given on IRC (biboumi's mapping).
ADMIN_MODES = {"owner": "q", "admin": "o", "moderator": "h", "member": "v", "participant": "v",
               "visitor": "", "none": ""}
#: What a room says it is (XEP-0030; XEP-0045 6.4; XEP-0410 section 5).
ROOM_FEATURES = (NS_DISCO_INFO, NS_MUC, "muc_nonanonymous", "muc_open", "muc_unmoderated",
                 "muc_unsecured", "muc_persistent", NS_PING,
                 "http://jabber.org/protocol/muc#self-ping-optimization")
#: Errors of a client's that say the resource is gone (biboumi's and slidge's list).
GONE = {"gone", "item-not-found", "recipient-unavailable", "redirect", "remote-server-not-found",
        "remote-server-timeout", "service-unavailable", "malformed-error"}
#: How often resources in portal rooms are pinged, how long an answer may take, how many at
#: once, and the answers (RFC 6120 8.3.3) that say a resource is gone (service-unavailable
#: does not: a client without XEP-0199 answers so).
PROBE_INTERVAL = 300.0
PROBE_TIMEOUT = 30.0
PROBES_AT_ONCE = 32
PROBE_GONE = {"gone", "item-not-found", "recipient-unavailable", "remote-server-not-found",
              "remote-server-timeout", "redirect"}
#: A join IRC has not answered in this long (a server down, a connection not registered) is
#: given up with remote-server-timeout; the connection goes on trying, for the next join.
JOIN_WAIT = 60.0
#: Channels in one disco#items answer unless the asker says (RSM max).
LIST_PAGE = 100
#: The store cursor that keeps persistent rooms across restarts.
PERSISTENT = "portal:persistent"
NS_MUC_OWNER = f"{NS_MUC}#owner"
PERSISTENT_FIELD = "muc#roomconfig_persistentroom"
#: Resources per user remembered as writing private messages, and users remembered so.
CHATTING = 8
CHATTING_USERS = 4096
_ERROR_TYPES = {"not-authorized": "auth", "forbidden": "auth", "registration-required": "auth",
                "service-unavailable": "wait", "resource-constraint": "wait", "not-acceptable": "modify",
                "jid-malformed": "modify", "conflict": "cancel", "remote-server-timeout": "wait",
                "policy-violation": "modify"}


@dataclass
class PortalRoom:
    jid: str  # the bare room JID as addressed
    network: str
    channel: str
    resources: dict[str, str] = field(default_factory=dict)  # full JID -> nick asked for, in the room
    waiting: dict[str, str] = field(default_factory=dict)  # full JID -> nick asked for, joining
    asked: dict[str, tuple[int, float | None]] = field(default_factory=dict)  # history to send on join
    nick: str = ""  # the user's nick there now
    persistent: bool = False  # stays on IRC (and keeps history) with nobody in it


class Portal(PortalView):
    def __init__(self, config: PortalConfig, domain: str, networks: PortalNetworks,
                 send: Callable[[str], bool], store: Store, linked: Callable[[str], bool]) -> None:
        """`linked(jid)`: is `jid` a room of a plumbed link (its messages are never the portal's)."""
        self.config = config
        self.domain = domain
        self.networks = networks
        self.send = send
        self.store = store
        self.linked = linked
        self.names = {name.lower(): name for name in config.networks}
        self.history = History(store, config.history, send)
        saved = store.cursor(PERSISTENT)
        #: Persistent rooms, kept in the store: "user network channel" -> [room JID, nick].
        self.persistent: dict[str, list[str]] = saved if isinstance(saved, dict) else {}
        self.rooms: dict[tuple[str, str, str], PortalRoom] = {}  # (user, network, channel folded)
        #: The resources that wrote private messages lately, per user: where answers go.
        self.chatting: collections.OrderedDict[str, dict[str, None]] = collections.OrderedDict()
        self._probed = time.monotonic()
        self._tasks: set[asyncio.Task] = set()  # channel lists being fetched

    # -- stanzas from users ------------------------------------------------

    def take(self, kind: str, xml: ET.Element) -> bool:
        """Handle a stanza to a portal address; False: not the portal's (plumbed puppets,
        the component, a stanza from a linked room)."""
        to, sender = xml.get("to", ""), xml.get("from", "")
        where = parse(to, self.domain, self.names, self.networks.chantypes)
        if where is None or self.linked(bare(sender)):
            return False
        user = bare(sender)
        if not where.channel:
            if not allowed(user, self.config.users):
                return False  # the plumbed meaning, if any: `bridge.xmpp.addresses`
            if kind == "iq":
                return not where.name and self._server_iq(xml, where, user)
            if xml.get("type") == "error":
                self._client_error(xml)
            elif kind == "message":
                self._private(xml, where, user, where.name)
            return True
        if xml.get("type") == "error":
            if kind == "message" or kind == "presence":
                self._client_error(xml)
            return True
        if not allowed(user, self.config.users):
            self._error(kind, xml, "forbidden", "this bridge's portal is not open to your account")
            return True
        room = self.rooms.get((user, where.network, where.name.lower()))
        if kind == "presence":
            self._presence(xml, where, user, room)
        elif kind == "message":
            self._message(xml, where, user, room)
        else:
            self._iq(xml, where, room)
        return True

    def _presence(self, xml: ET.Element, where: PortalJid, user: str, room: PortalRoom | None) -> None:
        sender = xml.get("from", "")
        if xml.get("type") == "unavailable":
            if room is not None and (room.resources.pop(sender, None) is not None
                                     or room.waiting.pop(sender, None) is not None):
                room.asked.pop(sender, None)
                self._self_leave(room, sender, room.nick or where.nick, ("110",), "")
                self._emptied(user, room)
            return
        if xml.get("type") is not None or not where.nick:
            if not where.nick:
                self._error("presence", xml, "jid-malformed", "join with a nick: room/nick")
            return
        joining = child(xml, NS_MUC, "x") is not None
        if room is not None and sender in room.resources:
            if where.nick != room.nick:  # a nick change (7.6), not a status update
                self.networks.nick(user, room.network, where.nick)
            snapshot = self.networks.snapshot(user, room.network, room.channel)
            if joining and snapshot is not None:  # a client that lost track joins again: shown it all
                room.asked[sender] = asked(xml)
                self._show(room, sender, snapshot)
            return
        if room is None:
            x = child(xml, NS_MUC, "x")
            key = (x.findtext(f"{{{NS_MUC}}}password") or "") if joining else ""
            try:
                self.networks.join(user, where.network, where.name, where.nick, key)
            except Refused as why:
                self._error("presence", xml, why.condition, str(why))
                return
            room = PortalRoom(bare(xml.get("to", "")), where.network, where.name)
            self.rooms[(user, where.network, where.name.lower())] = room
        room.asked[sender] = asked(xml)
        snapshot = self.networks.snapshot(user, room.network, room.channel)
        if snapshot is None:
            room.waiting[sender] = where.nick
            asyncio.get_running_loop().call_later(JOIN_WAIT, self._join_overdue, user, room, sender)
        else:  # another resource of a user already in: shown the room at once
            room.resources[sender] = where.nick
            self._show(room, sender, snapshot)

    def _message(self, xml: ET.Element, where: PortalJid, user: str, room: PortalRoom | None) -> None:
        sender, kind = xml.get("from", ""), xml.get("type", "normal")
        body, subject = child_text(xml, "body"), child_text(xml, "subject")
        if kind in ("chat", "normal") and where.nick:  # a MUC private message (7.5)
            self._private(xml, where, user, where.nick)
            return
        if kind != "groupchat" or (body is None and subject is None):
            return
        if room is None or sender not in room.resources:
            self._error("message", xml, "not-acceptable", "you are not in this room: join it first")
            return
        if body is None:
            self.networks.set_topic(user, room.network, room.channel, subject or "")
            return
        kind_, said = (MessageKind.ACTION, body[4:]) if body.startswith("/me ") else (MessageKind.PLAIN, body)
        msg_id = xml.get("id") or new_id()
        try:
            done = self.networks.say(user, room.network, room.channel, said, kind_)
        except Refused as why:
            self._error("message", xml, why.condition, str(why))
            return
        done.add_done_callback(lambda _: self._reflect(user, room, msg_id, body))

    def _join_overdue(self, user: str, room: PortalRoom, sender: str) -> None:
        if self._room(user, room.network, room.channel) is not room or sender not in room.waiting:
            return
        nick = room.waiting.pop(sender)
        room.asked.pop(sender, None)
        xml = ET.Element("presence", {"from": sender, "to": f"{room.jid}/{nick}"})
        self._error("presence", xml, "remote-server-timeout",
                    f"{room.network} did not answer within {JOIN_WAIT:g} s; try again later")
        self._emptied(user, room)

    def _emptied(self, user: str, room: PortalRoom) -> None:
        """The room's last resource left: the IRC channel is left too, unless persistent."""
        if not room.resources and not room.waiting and not room.persistent:
            del self.rooms[(user, room.network, room.channel.lower())]
            self.networks.part(user, room.network, room.channel)

    def _reflect(self, user: str, room: PortalRoom, msg_id: str, body: str) -> None:
        sid = self._stanza_id(room, self.history.record(user, room.jid, room.nick, body))
        for jid in room.resources:
            self.send(f"<message type='groupchat' from={attr(room.jid + '/' + room.nick)} to={attr(jid)} "
                      f"id={attr(msg_id)}><body>{text(body)}</body>{sid}</message>")

    @staticmethod
    def _stanza_id(room: PortalRoom, uuid: str | None) -> str:
        return f"<stanza-id xmlns='{NS_STANZA_ID}' id={attr(uuid)} by={attr(room.jid)}/>" if uuid else ""

    def _private(self, xml: ET.Element, where: PortalJid, user: str, nick: str) -> None:
        body = child_text(xml, "body")
        if not body or xml.get("type", "normal") not in ("chat", "normal"):
            return  # chat states, receipts
        if not where.channel:  # the nick the store knows a plumbed puppet of this address by
            puppet = self.store.identity_for_localpart(bare(xml.get("to", "")).rpartition("@")[0])
            if puppet is not None and puppet.network == where.network:
                nick = puppet.nick
        self._chatting(user, xml.get("from", ""))
        if not where.name:  # to the server: IRC commands, one a line (10 at most)
            try:
                for line in [line for line in body.splitlines() if line.strip()][:10]:
                    self.networks.raw(user, where.network, line)
            except Refused as why:
                self._error("message", xml, why.condition, str(why))
            return
        kind, said = (MessageKind.ACTION, body[4:]) if body.startswith("/me ") else (MessageKind.PLAIN, body)
        try:
            self.networks.say(user, where.network, nick, said, kind)
        except Refused as why:
            self._error("message", xml, why.condition, str(why))

    def _chatting(self, user: str, resource: str) -> None:
        """Remember `resource` as one that writes privately: answers go there."""
        resources = self.chatting.pop(user, {})
        self.chatting[user] = resources  # the newest last; the oldest forgotten beyond CHATTING_USERS
        if len(self.chatting) > CHATTING_USERS:
            self.chatting.popitem(last=False)
        resources.pop(resource, None)
        resources[resource] = None
        if len(resources) > CHATTING:
            del resources[next(iter(resources))]

    def _iq(self, xml: ET.Element, where: PortalJid, room: PortalRoom | None) -> None:
        query = xml[0] if len(xml) else None
        tag, kind, sender = query.tag if query is not None else "", xml.get("type"), xml.get("from", "")
        if kind == "get" and tag == f"{{{NS_PING}}}ping":
            if not where.nick or (room is not None and room.resources.get(sender) is not None
                                  and where.nick == room.nick):
                self._result(xml)
            else:  # XEP-0410 section 4: not (or no longer) in the room as that nick
                self._error("iq", xml, "not-acceptable", "you are not in this room")
        elif tag == f"{{{NS_MUC_OWNER}}}query" and not where.nick and room is not None \
                and sender in room.resources:
            self._configure(xml, query, bare(sender), room)
        elif kind == "set" and tag == f"{{{NS_MAM}}}query" and not where.nick and self.history.keep:
            try:
                self.history.query(xml, bare(sender), bare(xml.get("to", "")))
            except BadQuery as why:
                self._error("iq", xml, *why.args)
        elif kind == "get" and tag == f"{{{NS_DISCO_INFO}}}query" and not where.nick \
                and not query.get("node"):
            mam = (NS_MAM,) if self.history.keep else ()
            features = "".join(f"<feature var={attr(f)}/>" for f in (*ROOM_FEATURES, *mam))
            snapshot = self.networks.snapshot(bare(sender), where.network, where.name)
            info = "" if snapshot is None else (  # XEP-0045 6.4, as the asker's connection sees it
                "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
                "<value>http://jabber.org/protocol/muc#roominfo</value></field>"
                f"<field var='muc#roominfo_occupants'><value>{len(snapshot.members) + 1}</value></field>"
                f"<field var='muc#roominfo_subject'><value>{text(snapshot.topic)}</value></field></x>")
            self._result(xml, f"<query xmlns='{NS_DISCO_INFO}'><identity category='conference' type='irc' "
                              f"name={attr(where.name + ' on ' + where.network)}/>{features}{info}</query>")
        elif kind == "set" and tag == f"{{{NS_MUC_ADMIN}}}query" and room is not None \
                and sender in room.resources:
            self._admin(xml, query.find(f"{{{NS_MUC_ADMIN}}}item"), bare(sender), room)
        else:
            self._error("iq", xml, "service-unavailable", "a portal room does not offer this")

    def _admin(self, iq: ET.Element, item: ET.Element | None, user: str, room: PortalRoom) -> None:
        """A moderator's change (XEP-0045 8, 9): role none is a KICK; other roles and
        affiliations are prefix modes, as biboumi maps them (participant or member +v,
        moderator +h, admin +o, owner +q; visitor or none takes them all). IRC says whether
        it worked: the KICK or MODE is seen, or the room says why not."""
        nick, role, affiliation = (item.get(k, "") for k in ("nick", "role", "affiliation")) \
            if item is not None else ("", "", "")
        try:
            if not nick or affiliation == "outcast" or (role, affiliation) == ("", ""):
                raise Refused("feature-not-implemented", "portal rooms take kicks, roles and "
                              "affiliations by nick (bans are IRC's: /mode +b)")
            if role == "none":
                self.networks.kick(user, room.network, room.channel, nick,
                                   item.findtext(f"{{{NS_MUC_ADMIN}}}reason") or "")
            else:
                self.networks.set_mode(user, room.network, room.channel, nick, ADMIN_MODES.get(
                    affiliation or role, ""))
        except Refused as why:
            self._error("iq", iq, why.condition, str(why))
            return
        self._result(iq)

    def _configure(self, iq: ET.Element, query: ET.Element, user: str, room: PortalRoom) -> None:
        """The room's configuration (XEP-0045 10.2): whether it is persistent, which is what
        a portal room can be configured for: it stays on IRC with nobody in it, like a bouncer,
        keeping its history (when kept), until made not persistent and left."""
        if iq.get("type") == "get":
            value = "1" if room.persistent else "0"
            self._result(iq, f"<query xmlns='{NS_MUC_OWNER}'><x xmlns='jabber:x:data' type='form'>"
                             f"<title>{text(room.channel + ' on ' + room.network)}</title>"
                             f"<field var='FORM_TYPE' type='hidden'>"
                             f"<value>http://jabber.org/protocol/muc#roomconfig</value></field>"
                             f"<field var='{PERSISTENT_FIELD}' type='boolean' label='Stay in the channel "
                             f"when no client of yours is in the room'><value>{value}</value></field>"
                             f"</x></query>")
            return
        form = query.find("{jabber:x:data}x")
        if form is not None and form.get("type") == "submit":
            for item in form.iterfind("{jabber:x:data}field"):
                if item.get("var") == PERSISTENT_FIELD:
                    self._persist(user, room, item.findtext("{jabber:x:data}value", "") in ("1", "true"))
        self._result(iq)

    def _persist(self, user: str, room: PortalRoom, on: bool) -> None:
        room.persistent = on
        key = f"{user} {room.network} {room.channel.lower()}"
        if on:
            self.persistent[key] = [room.jid, room.nick]
        elif self.persistent.pop(key, None) is None:
            return
        self.store.set_cursor(PERSISTENT, self.persistent)

    def online(self) -> None:
        """The component is connected: join the persistent rooms nobody is in (after a restart)."""
        for key, (jid, nick) in list(self.persistent.items()):
            user, network, channel = key.split(" ", 2)
            if (user, network, channel) in self.rooms:
                continue
            if network not in self.names.values() or not allowed(user, self.config.users):
                del self.persistent[key]  # the portal no longer lets them in there
                self.store.set_cursor(PERSISTENT, self.persistent)
                continue
            try:
                self.networks.join(user, network, channel, nick)
            except Refused:
                continue
            self.rooms[(user, network, channel)] = PortalRoom(jid, network, channel, nick=nick,
                                                              persistent=True)

    def in_use(self, asker: str) -> list[tuple[str, str]]:
        """The portal channels in use, for disco#items on the component: (room JID, name),
        one per channel, sorted; to a user the portal lets in, the channels they are in and
        those no connection saw as secret or private (+s, +p: IRC's LIST hides them too);
        to anyone else, none."""
        asker = bare(asker)
        if not allowed(asker, self.config.users):
            return []
        found: dict[str, str] = {}
        for (user, network, channel), room in self.rooms.items():
            jid = address(network, channel, self.domain)
            if jid in found:
                continue
            snapshot = self.networks.snapshot(user, network, room.channel)
            if user == asker or (snapshot is not None and not snapshot.secret):
                found[jid] = f"{room.channel} on {network}"
        return sorted(found.items())

    def _server_iq(self, iq: ET.Element, where: PortalJid, user: str) -> bool:
        """disco#items on `NET@component`: the network's public channels (IRC LIST, XEP-0030
        with RSM, XEP-0059); other iqs there get the component's answers."""
        query = iq[0] if len(iq) else None
        if iq.get("type") != "get" or query is None or query.tag != f"{{{NS_DISCO_ITEMS}}}query" \
                or query.get("node"):
            return False
        task = asyncio.create_task(self._list(iq, query, where.network, user))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _list(self, iq: ET.Element, query: ET.Element, network: str, user: str) -> None:
        try:
            channels = sorted(await self.networks.channels(user, network))
        except Refused as why:
            self._error("iq", iq, why.condition, str(why))
            return
        except Exception:  # a bug must not leave the query unanswered
            log.exception("portal_list_failed", network=network)
            self._error("iq", iq, "internal-server-error", "the channel list could not be made")
            return
        rsm = query.find(f"{{{NS_RSM}}}set")
        limit = rsm.findtext(f"{{{NS_RSM}}}max", "") if rsm is not None else ""
        after = rsm.findtext(f"{{{NS_RSM}}}after") if rsm is not None else None
        names = [address(network, name, self.domain) for name, _, _ in channels]
        first = names.index(after) + 1 if after in names else 0
        page = channels[first:first + (int(limit) if limit.strip().isdigit() else LIST_PAGE)]
        items = "".join(f"<item jid={attr(address(network, name, self.domain))} "
                        f"name={attr(f'{name} ({users})' + (f': {topic[:80]}' if topic else ''))}/>"
                        for name, users, topic in page)
        paging = "" if not page else (
            f"<set xmlns='{NS_RSM}'><first index='{first}'>{text(names[first])}</first>"
            f"<last>{text(names[first + len(page) - 1])}</last><count>{len(channels)}</count></set>")
        self._result(iq, f"<query xmlns='{NS_DISCO_ITEMS}'>{items}{paging}</query>")

    def _client_error(self, xml: ET.Element) -> None:
        """A client answered with an error: a resource gone leaves every portal room."""
        if error_condition(xml) in GONE:
            self._drop_resource(xml.get("from", ""))

    async def probe(self, query: Query) -> None:
        """Every `PROBE_INTERVAL`, ping (XEP-0199) each resource in a portal room: one whose
        server answers that it is gone (its server vanished without sending unavailable, say)
        leaves every portal room. Silence proves nothing (the link may be the trouble)."""
        if time.monotonic() - self._probed < PROBE_INTERVAL:
            return
        self._probed = time.monotonic()
        self._tasks: set[asyncio.Task] = set()  # channel lists being fetched
        slots = asyncio.Semaphore(PROBES_AT_ONCE)

        async def ping(jid: str, room_jid: str) -> None:
            async with slots:
                reply = await query(jid, room_jid, f"<ping xmlns='{NS_PING}'/>", "get", PROBE_TIMEOUT)
            if reply is not None and reply.get("type") == "error" and error_condition(reply) in PROBE_GONE:
                log.info("portal_resource_gone", network="xmpp", condition=error_condition(reply))
                self._drop_resource(jid)
        targets = {jid: room.jid for room in self.rooms.values() for jid in room.resources}
        await asyncio.gather(*(ping(jid, room_jid) for jid, room_jid in targets.items()))

    def _drop_resource(self, sender: str) -> None:
        """`sender` is gone: out of every portal room (the channel parted where it was the last)."""
        self.chatting.get(bare(sender), {}).pop(sender, None)
        for key, room in list(self.rooms.items()):
            if room.resources.pop(sender, None) is not None or room.waiting.pop(sender, None) is not None:
                room.asked.pop(sender, None)
                self._emptied(key[0], room)

    # -- what IRC says (PortalView) ----------------------------------------

    def _room(self, user: str, network: str, channel: str) -> PortalRoom | None:
        return self.rooms.get((user, network, channel.lower()))

    def entered(self, user: str, network: str, channel: str, snapshot: Snapshot) -> None:
        room = self._room(user, network, channel)
        if room is None:
            return
        room.resources.update(room.waiting)
        room.waiting.clear()
        for jid in room.resources:
            self._show(room, jid, snapshot)

    def _show(self, room: PortalRoom, jid: str, snapshot: Snapshot) -> None:
        """The room as a joining resource sees it: occupants, itself, the subject (7.2)."""
        for member in snapshot.members:
            self._occupant(room, jid, member)
        room.nick = snapshot.me.nick
        codes = ("110", "100") if room.resources[jid] == room.nick else ("110", "100", "210")
        self._occupant(room, jid, snapshot.me, codes, real=jid)
        history = room.asked.pop(jid, None)
        if history is not None:  # joining: the history it asked for, before the subject (7.2.15)
            self.history.replay(bare(jid), room.jid, jid, *history)
        by = f"/{snapshot.topic_by}" if snapshot.topic_by else ""
        self.send(f"<message type='groupchat' from={attr(room.jid + by)} to={attr(jid)} id='{new_id()}'>"
                  f"<subject>{text(snapshot.topic)}</subject></message>")

    def _occupant(self, room: PortalRoom, to: str, member: Member, codes: tuple[str, ...] = (),
                  real: str = "", unavailable: bool = False, new_nick: str = "", actor: str = "",
                  reason: str = "") -> None:
        """An occupant's presence (7.2.3), to resource `to`; `real` is the user's own JID
        when it is their own presence."""
        role, affiliation = ("none", "none") if unavailable and not new_nick else ROLES.get(
            member.mode, ROLES[""])
        jid = real or address(room.network, member.nick, self.domain)
        inner = (f"<actor nick={attr(actor)}/>" if actor else "") + \
            (f"<reason>{text(reason)}</reason>" if reason else "")
        nick = f" nick={attr(new_nick)}" if new_nick else ""
        statuses = "".join(f"<status code='{code}'/>" for code in codes)
        kind = " type='unavailable'" if unavailable else ""
        self.send(f"<presence{kind} from={attr(room.jid + '/' + member.nick)} to={attr(to)}>"
                  f"<x xmlns='{NS_MUC_USER}'><item affiliation='{affiliation}' role='{role}' jid={attr(jid)}"
                  f"{nick}>{inner}</item>{statuses}</x></presence>")

    def refused(self, user: str, network: str, channel: str, why: Refused) -> None:
        room = self._room(user, network, channel)
        if room is None:
            return
        for jid, nick in room.waiting.items():
            xml = ET.Element("presence", {"from": jid, "to": f"{room.jid}/{nick}"})
            self._error("presence", xml, why.condition, str(why))
            room.asked.pop(jid, None)
        room.waiting.clear()
        if not room.resources:
            del self.rooms[(user, network, channel.lower())]
            self._persist(user, room, False)

    def out(self, user: str, network: str, channel: str, status: str, kicked_by: str = "") -> None:
        room = self.rooms.pop((user, network, channel.lower()), None)
        if room is None:
            return
        self._persist(user, room, False)  # out of the channel: persistent no more
        for jid in [*room.resources, *room.waiting]:
            self._self_leave(room, jid, room.nick, ("110", "307") if kicked_by else ("110", "333"),
                             status, kicked_by)

    def _self_leave(self, room: PortalRoom, jid: str, nick: str, codes: tuple[str, ...], reason: str,
                    actor: str = "") -> None:
        self._occupant(room, jid, Member(nick), codes, real=jid, unavailable=True, actor=actor, reason=reason)

    def member(self, user: str, network: str, channel: str, member: Member, me: bool = False) -> None:
        room = self._room(user, network, channel)
        for jid in room.resources if room is not None else ():
            self._occupant(room, jid, member, ("110",) if me else (), real=jid if me else "")

    def left(self, user: str, network: str, channel: str, nick: str, status: str,
             kicked_by: str | None = None) -> None:
        room = self._room(user, network, channel)
        if room is None:
            return
        for jid in room.resources:
            self._occupant(room, jid, Member(nick), ("307",) if kicked_by else (), unavailable=True,
                           actor=kicked_by or "", reason=status if kicked_by else "")

    def renamed(self, user: str, network: str, channel: str, old: str, member: Member,
                me: bool = False) -> None:
        room = self._room(user, network, channel)
        if room is None:
            return
        if me:
            room.nick = member.nick
        mine = ("110",) if me else ()
        for jid in room.resources:
            real = jid if me else ""
            self._occupant(room, jid, Member(old, member.mode), ("303", *mine), real=real, unavailable=True,
                           new_nick=member.nick)
            if me:
                room.resources[jid] = member.nick
            self._occupant(room, jid, member, mine, real=real)

    def nick_refused(self, user: str, network: str, nick: str, why: str) -> None:
        for (owner, net, _), room in self.rooms.items():
            if owner == user and net == network:
                for jid in room.resources:
                    xml = ET.Element("presence", {"from": jid, "to": f"{room.jid}/{nick}"})
                    self._error("presence", xml, "conflict", why)

    def said(self, user: str, network: str, channel: str, nick: str, said: str, kind: MessageKind) -> None:
        body = f"/me {said}" if kind is MessageKind.ACTION else said
        if not channel:  # to the user's resources we know (a bare JID reaches no resource
            sender = address(network, nick, self.domain)  # that sent no presence)
            for jid in self._resources(user) or (user,):
                self.send(f"<message type='chat' from={attr(sender)} to={attr(jid)} id='{new_id()}'>"
                          f"<body>{text(body)}</body></message>")
            return
        room = self._room(user, network, channel)
        if room is None:
            return
        sid = self._stanza_id(room, self.history.record(user, room.jid, nick, body) if nick else None)
        for jid in room.resources:  # nick "": from the room itself
            self.send(f"<message type='groupchat' from={attr(room.jid + ('/' + nick if nick else ''))} "
                      f"to={attr(jid)} id='{new_id()}'><body>{text(body)}</body>{sid}</message>")

    def server_said(self, user: str, network: str, said: str) -> None:
        sender = f"{escape_localpart(network)}@{self.domain}"
        for jid in self._resources(user) or (user,):
            self.send(f"<message type='chat' from={attr(sender)} to={attr(jid)} id='{new_id()}'>"
                      f"<body>{text(said)}</body></message>")

    def undelivered(self, user: str, network: str, nick: str, why: str) -> None:
        sender = address(network, nick, self.domain)
        for jid in self._resources(user) or (user,):
            self.send(f"<message type='error' from={attr(sender)} to={attr(jid)} id='{new_id()}'>"
                      f"<error type='cancel'><item-not-found xmlns='{NS_STANZAS}'/>"
                      f"<text xmlns='{NS_STANZAS}' xml:lang='en'>{text(why)}</text></error></message>")

    def _resources(self, user: str) -> set[str]:
        """The user's resources in portal rooms (or joining one) and those that wrote
        privately lately."""
        found = set(self.chatting.get(user, ()))
        for (owner, _, _), room in self.rooms.items():
            if owner == user:
                found.update(room.resources, room.waiting)
        return found

    def topic(self, user: str, network: str, channel: str, nick: str, said: str) -> None:
        room = self._room(user, network, channel)
        for jid in room.resources if room is not None else ():
            self.send(f"<message type='groupchat' from={attr(room.jid + '/' + nick)} to={attr(jid)} "
                      f"id='{new_id()}'><subject>{text(said)}</subject></message>")

    def close(self) -> None:
        """The bridge is going: every user is out of every portal room (332, 7.2.x)."""
        for room in self.rooms.values():
            for jid in [*room.resources, *room.waiting]:
                self._occupant(room, jid, Member(room.nick), ("110", "332"), real=jid, unavailable=True)
        self.rooms.clear()

    # -- answers -----------------------------------------------------------

    def _result(self, iq: ET.Element, payload: str = "") -> None:
        self.send(f"<iq type='result' id={attr(iq.get('id', ''))} to={attr(iq.get('from', ''))} "
                  f"from={attr(iq.get('to', ''))}>{payload}</iq>")

    def _error(self, kind: str, xml: ET.Element, condition: str, why: str) -> None:
        """An error in answer to `xml` (RFC 6120 8.3.2); a presence error carries the MUC
        <x/> (XEP-0045 7.2.x examples)."""
        stanza_id = xml.get("id")
        x = f"<x xmlns='{NS_MUC}'/>" if kind == "presence" else ""
        self.send(f"<{kind} type='error'{'' if stanza_id is None else ' id=' + attr(stanza_id)} "
                  f"to={attr(xml.get('from', ''))} from={attr(xml.get('to', ''))}>{x}"
                  f"<error type='{_ERROR_TYPES.get(condition, 'cancel')}'><{condition} xmlns='{NS_STANZAS}'/>"
                  f"<text xmlns='{NS_STANZAS}' xml:lang='en'>{text(why)}</text></error></{kind}>")
