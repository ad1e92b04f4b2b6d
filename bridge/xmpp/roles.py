"""IRC channel operators and voice as MUC roles, or in the puppet's presence status.

An op's puppet is made a moderator (XEP-0045 9.6, which takes an admin or owner: the
bot's affiliation), a voiced one a participant (8.4, which takes a moderator). Where the
bot lacks the rights, or the room refuses, the puppet's presence status says it instead
(`op in net/#chan`). Only changes seen live are shown (a puppet joining later shows none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.core.events import Standing
from bridge.core.roomevents import where
from bridge.xmpp.kicks import KICK_TIMEOUT, NS_MUC_ADMIN, settled
from bridge.xmpp.stanza import attr, text

if TYPE_CHECKING:
    from bridge.xmpp.room import Room

ROLES = {"op": "moderator", "voice": "participant", "": "participant"}


async def show(room: Room, event: Standing) -> None:
    puppet = room.puppets.get(event.sender.key)
    if puppet is not None:
        await settled(puppet)  # a role names a nick: only once the puppet holds it
    if puppet is None or not puppet.joined or event.rank == puppet.rank:
        return
    role = ROLES.get(event.rank, "participant")
    moderator_change = "op" in (event.rank, puppet.rank)
    allowed = (room.bot_affiliation in ("admin", "owner") if moderator_change
               else room.bot_role == "moderator")
    puppet.rank = event.rank
    if allowed:
        reply = await room.component.query(
            room.jid, room.bot_jid, f"<query xmlns='{NS_MUC_ADMIN}'><item nick={attr(puppet.nick)} "
            f"role='{role}'/></query>", kind="set", timeout=KICK_TIMEOUT)
        if reply is not None and reply.get("type") == "result":
            return
        room.log.warning("muc_role_refused", puppet=puppet.jid, role=role,
                         answer=None if reply is None else reply.get("type"))
    status = f"{event.rank} in {where(event.endpoint)}" if event.rank else ""
    room.component.send(f"<presence to={attr(room.jid + '/' + puppet.nick)} from={attr(puppet.jid)}>"
                        f"<status>{text(status)}</status></presence>")
