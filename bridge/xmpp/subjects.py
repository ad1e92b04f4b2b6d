"""Topics set elsewhere as the room's subject, from whoever set them (XEP-0045 8.1).

A subject change is a message with a subject and no body, so it cannot carry a name: it
comes from the setter's puppet when that is in the room (or joining); else (or when the room refuses the
puppet's change) the bot says who set it, then sets it.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

from bridge.core.events import Topic
from bridge.core.roomevents import topic_setter_text
from bridge.xmpp.stanza import text

if TYPE_CHECKING:
    from bridge.xmpp.room import Room

#: Subject changes sent from puppets whose answer may still be an error, at most.
PENDING = 16


class Subjects:
    def __init__(self, room: Room) -> None:
        self.room = room
        self.sent: collections.OrderedDict[str, Topic] = collections.OrderedDict()

    def show(self, event: Topic) -> None:
        room = self.room
        puppet = room.puppets.get(event.sender.key)
        if puppet is None or not (puppet.joined or puppet.joining):  # (joining: the room takes
            self._by_bot(event)  # the join first; a failed one makes the change an error)
            return
        msg_id = room._send(puppet.jid, puppet.nick, _subject(event), event.time)
        self.sent[msg_id] = event
        while len(self.sent) > PENDING:
            self.sent.popitem(last=False)

    def refused(self, msg_id: str, condition: str | None) -> bool:
        """The room refused a puppet's subject change `msg_id`: the bot sets it instead.
        False if `msg_id` is no subject change of ours."""
        event = self.sent.pop(msg_id, None)
        if event is None:
            return False
        self.room.component.outgoing.drop(msg_id)
        self.room.log.info("muc_subject_refused", condition=condition)
        self._by_bot(event)
        return True

    def _by_bot(self, event: Topic) -> None:
        room = self.room
        line = topic_setter_text(event)
        if line is not None:
            room._bot_say(line, event.time)
        room._send(room.bot_jid, room.bot_nick, _subject(event), event.time)


def _subject(event: Topic) -> str:
    return f"<subject>{text(event.text)}</subject>"
