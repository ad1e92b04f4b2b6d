"""Kicks between a MUC room and the rest of its link.

A puppet kicked from the room (status 307, XEP-0045 9.1) is told to the link, with who
kicked it, and stays out for `HOLD` seconds: its user's lines come through the bot as
`<nick> text` meanwhile. A kick elsewhere (an IRC KICK) of a user whose puppet is in the
room becomes a MUC kick with the reason (8.2: role 'none' through muc#admin) when the bot
is a moderator; else the puppet leaves with a status saying who kicked it.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

import structlog

from bridge.core.events import BRIDGE, Identity, Kick
from bridge.xmpp.stanza import NS_MUC_USER, attr, text

if TYPE_CHECKING:
    from bridge.xmpp.room import Puppet, Room

log = structlog.get_logger(__name__)

#: A puppet kicked from the room stays out this long.
HOLD = 300.0
#: Kicked users remembered per room, at most.
HELD_MEMORY = 1024
NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
KICK_TIMEOUT = 10.0
#: How long a kick waits for the answer to its puppet's join, at most.
JOIN_WAIT = 5.0


class Kicks:
    def __init__(self, room: Room) -> None:
        self.room = room
        self.held: collections.OrderedDict[tuple[str, str], float] = collections.OrderedDict()
        self.ours: set[tuple[str, str]] = set()  # puppets the bot is kicking itself

    def held_out(self, identity: Identity) -> bool:
        """True while `identity`'s puppet is to stay out of the room after a kick."""
        until = self.held.get(identity.key)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self.held[identity.key]
        return False

    def hold(self, identity: Identity) -> None:
        """Keep `identity`'s puppet out of the room for `HOLD` seconds."""
        self.held[identity.key] = time.monotonic() + HOLD
        self.held.move_to_end(identity.key)
        while len(self.held) > HELD_MEMORY:
            self.held.popitem(last=False)

    def puppet_kicked(self, puppet: Puppet, item: ET.Element | None) -> None:
        """`puppet`'s own presence says it was kicked: told to the link (unless the bridge
        kicked it, for a kick elsewhere), and it stays out for a while."""
        key = puppet.identity.key
        if key in self.ours:
            self.ours.discard(key)
            return
        actor = item.find(f"{{{NS_MUC_USER}}}actor") if item is not None else None
        nick = actor.get("nick", "") if actor is not None else ""
        if nick == self.room.bot_nick:
            return
        reason = item.findtext(f"{{{NS_MUC_USER}}}reason", "") if item is not None else ""
        by = (self.room.occupants.get(nick) or Identity("xmpp", f"{self.room.jid}/{nick}", nick)
              if nick else BRIDGE)
        self.hold(puppet.identity)
        self.room.log.info("puppet_kicked", puppet=puppet.jid, by=nick or None)
        self.room.emit(Kick(self.room.endpoint, by, puppet.identity, reason))

    async def kicked_elsewhere(self, event: Kick) -> None:
        """A kick on another endpoint: the kicked user's puppet goes too."""
        room = self.room
        puppet = room.puppets.get(event.target.key)
        if puppet is None:
            return
        why = f"kicked by {event.sender.nick}" + (f": {event.reason}" if event.reason else "")
        await settled(puppet)  # a kick names a nick: only once the puppet holds it
        if puppet.joined and room.bot_role == "moderator":
            self.ours.add(puppet.identity.key)
            reply = await room.component.query(
                room.jid, room.bot_jid,
                f"<query xmlns='{NS_MUC_ADMIN}'><item nick={attr(puppet.nick)} role='none'>"
                f"<reason>{text(why)}</reason></item></query>", kind="set", timeout=KICK_TIMEOUT)
            if reply is not None and reply.get("type") == "result":
                return
            self.ours.discard(puppet.identity.key)
            room.log.warning("muc_kick_refused", puppet=puppet.jid,
                             answer=None if reply is None else reply.get("type"))
        if room.puppets.get(event.target.key) is puppet:
            room.leave(puppet, why)


async def settled(puppet: Puppet) -> None:
    """Wait (a little) for a puppet's join in flight to be answered."""
    for _ in range(int(JOIN_WAIT / 0.05)):
        if not puppet.joining:
            return
        await asyncio.sleep(0.05)
