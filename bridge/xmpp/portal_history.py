"""Portal rooms' history: a copy per user of what their connection heard and said there,
kept in the store (`portal.history` lines per room, the newest; 0: none), served on join
(XEP-0045 7.2.14, after the presences and before the subject) and by MAM on the room's JID
(XEP-0313 with RSM, XEP-0059: at most `PAGE` lines an answer, oldest first; `<before/>`
pages back from the newest). Each line's id is its stanza-id (XEP-0359, `by` the room) in
the live message too, so a client can catch up from the last one it saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from xml.etree import ElementTree as ET

from bridge.store.base import HistoryLine, Store
from bridge.core.tokens import new_id
from bridge.xmpp.stanza import NS_DELAY, NS_MUC, attr, text

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_DATA = "jabber:x:data"
NS_FORWARD = "urn:xmpp:forward:0"
#: Lines sent on a join that asks for no particular history.
ON_JOIN = 20
#: Most lines in one MAM answer.
PAGE = 100


class BadQuery(Exception):
    """A MAM query that cannot be answered: (condition, text)."""


def stamp(when: float) -> str:
    """XEP-0082 DateTime."""
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def asked(presence: ET.Element) -> tuple[int, float | None]:
    """How much history a join presence asks for (7.2.14): at most how many lines, since when."""
    history = presence.find(f"{{{NS_MUC}}}x/{{{NS_MUC}}}history")
    if history is None:
        return ON_JOIN, None
    maxstanzas = history.get("maxstanzas", "").strip()
    limit = int(maxstanzas) if maxstanzas.isdigit() else ON_JOIN
    if history.get("maxchars", "").strip() == "0":  # 7.2.14: no history at all
        limit = 0
    seconds = history.get("seconds", "").strip()
    start = time.time() - int(seconds) if seconds.isdigit() else None
    since = parse_stamp(history.get("since", "")) if history.get("since") else None
    if since is not None:
        start = max(start or since, since)
    return limit, start


class History:
    def __init__(self, store: Store, keep: int, send: Callable[[str], bool]) -> None:
        self.store = store
        self.keep = keep
        self.send = send

    def record(self, owner: str, room: str, nick: str, body: str) -> str | None:
        """Keep a line; its id, or None when history is off."""
        if not self.keep:
            return None
        return self.store.add_history(owner, room, time.time(), nick, body, self.keep)

    def replay(self, owner: str, room: str, to: str, limit: int, start: float | None) -> None:
        """Send resource `to` the history it asked for on joining."""
        if not self.keep or limit <= 0:
            return
        for line in self.store.history(owner, room, min(limit, self.keep), start=start) or ():
            self.send(f"<message type='groupchat' from={attr(room + '/' + line.nick)} to={attr(to)} "
                      f"id={attr(line.uuid)}><body>{text(line.body)}</body>"
                      f"<delay xmlns='{NS_DELAY}' stamp='{stamp(line.time)}' from={attr(room)}/></message>")

    def query(self, iq: ET.Element, owner: str, room: str) -> None:
        """Answer a MAM query (XEP-0313 4, 5) for `owner`'s copy of `room`; raises BadQuery."""
        query = iq.find(f"{{{NS_MAM}}}query")
        fields = {field.get("var"): (field.findtext(f"{{{NS_DATA}}}value") or "")
                  for field in query.iterfind(f"{{{NS_DATA}}}x/{{{NS_DATA}}}field")}
        if fields.get("with"):
            raise BadQuery("feature-not-implemented", "this archive is not searched by sender")
        start, end = (parse_stamp(fields[k]) if fields.get(k) else None for k in ("start", "end"))
        if (fields.get("start") and start is None) or (fields.get("end") and end is None):
            raise BadQuery("bad-request", "start and end are XEP-0082 date-times")
        rsm = query.find(f"{{{NS_RSM}}}set")
        max_text = rsm.findtext(f"{{{NS_RSM}}}max") if rsm is not None else None
        limit = min(PAGE, int(max_text)) if max_text and max_text.strip().isdigit() else PAGE
        after = rsm.findtext(f"{{{NS_RSM}}}after") if rsm is not None else None
        before_el = rsm.find(f"{{{NS_RSM}}}before") if rsm is not None else None
        before = (before_el.text or None) if before_el is not None else None
        newest = before_el is not None  # <before/>: the last page
        lines = self.store.history(owner, room, limit + 1, after=after or None, before=before,
                                   start=start, end=end, newest=newest)
        if lines is None:
            raise BadQuery("item-not-found", "no line of this archive has that id")
        more = len(lines) > limit
        lines = (lines[1:] if newest else lines[:-1]) if more else lines
        queryid, to = query.get("queryid"), iq.get("from", "")
        for line in lines:
            self._result(line, room, to, queryid)
        rsm_set = (f"<first>{text(lines[0].uuid)}</first><last>{text(lines[-1].uuid)}</last>" if lines
                   else "<count>0</count>")
        complete = "" if more else " complete='true'"
        self.send(f"<iq type='result' id={attr(iq.get('id', ''))} to={attr(to)} from={attr(room)}>"
                  f"<fin xmlns='{NS_MAM}'{complete}><set xmlns='{NS_RSM}'>{rsm_set}</set></fin></iq>")

    def _result(self, line: HistoryLine, room: str, to: str, queryid: str | None) -> None:
        qid = f" queryid={attr(queryid)}" if queryid is not None else ""
        self.send(f"<message to={attr(to)} from={attr(room)} id='{new_id()}'>"
                  f"<result xmlns='{NS_MAM}'{qid} id={attr(line.uuid)}><forwarded xmlns='{NS_FORWARD}'>"
                  f"<delay xmlns='{NS_DELAY}' stamp='{stamp(line.time)}'/>"
                  f"<message xmlns='jabber:client' type='groupchat' from={attr(room + '/' + line.nick)} "
                  f"id={attr(line.uuid)}><body>{text(line.body)}</body></message>"
                  "</forwarded></result></message>")
