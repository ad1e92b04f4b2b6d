"""The operator's control plane on the component JID: XEP-0050 ad-hoc commands with
XEP-0004 forms (slixmpp's own plugins, on the stream `Queries` sets up), and the chat.

Commands: `status`, `security` (pick a link, get its report, optionally posted in its MUC
rooms), `reconnect` (pick a network), `puppets` (the list; the ones picked are
removed from their room) and `reload` (the config file read again and applied: what changed,
or why it was refused, in the answer's notes). Only admins run them: anyone else's command gets `forbidden`
(XEP-0050 section 4.6, "the requesting JID is not allowed to execute the command"), and
the command list (disco#items on the commands node, section 2.2) is empty for them.
The words are `bridge.ops.control`'s; this module only shapes them.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from xml.etree import ElementTree as ET

import structlog
from slixmpp import ComponentXMPP
from slixmpp.exceptions import XMPPError
from slixmpp.plugins.xep_0030.stanza import DiscoInfo, DiscoItems

from bridge.core.ratelimit import TokenBucket
from bridge.ops import chat
from bridge.ops.control import Control
from bridge.xmpp.stanza import attr, child_text, text

log = structlog.get_logger(__name__)

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
#: node -> name, in the order clients list them.
COMMANDS = {
    "status": "Status of networks and links",
    "security": "Security report of a link",
    "reconnect": "Reconnect a network",
    "puppets": "List puppets, remove some",
    "reload": "Reload the config file",
}
#: Command sessions kept (slixmpp keeps every one it starts, finished or not).
SESSIONS = 64
#: A reconnect of the component's own link waits this long, so its answer goes out first.
SELF_RECONNECT_DELAY = 1.0
#: Chat answers, all senders together: 20 at once, then one a second; chats beyond that
#: (a flood from anywhere in the federation) get none, and the log says how many.
CHAT_BURST, CHAT_INTERVAL = 20, 1.0


class Sessions(collections.OrderedDict):
    """slixmpp's session store, bounded: the oldest sessions go first."""

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > SESSIONS:
            self.popitem(last=False)


class Commands:
    def __init__(self, control: Control, jid: str, send: Callable[[str], bool]) -> None:
        self.control = control
        self.jid = jid
        self.send = send
        self.forms = None  # slixmpp's xep_0004, once a stream is set up
        self.answers = TokenBucket(CHAT_BURST, CHAT_INTERVAL)
        self.unanswered = 0

    def setup(self, stream: ComponentXMPP) -> None:
        stream.register_plugin("xep_0004")
        stream.register_plugin("xep_0050", pconfig={"session_db": Sessions()})
        self.forms = stream.plugin["xep_0004"]
        adhoc = stream.plugin["xep_0050"]
        for node, name in COMMANDS.items():
            adhoc.add_command(jid=self.jid, node=node, name=name, handler=getattr(self, f"_{node}"))

    def allowed(self, iq: ET.Element) -> bool:
        return iq.get("from", "") in self.control.admins

    # -- discovery (for `Queries`) -----------------------------------------

    def items(self, ifrom) -> DiscoItems:
        items = DiscoItems()
        if str(ifrom) in self.control.admins:
            for node, name in COMMANDS.items():
                items.add_item(self.jid, node, name)
        return items

    def info(self, node: str) -> DiscoInfo | None:
        """disco#info of the command list or of a command (XEP-0050 sections 2.2, 2.3);
        None for any other node."""
        info = DiscoInfo()
        if node == NS_COMMANDS:
            info.add_identity("automation", "command-list", "Ad-hoc commands")
        elif node in COMMANDS:
            info.add_identity("automation", "command-node", COMMANDS[node])
            info.add_feature(NS_COMMANDS)
            info.add_feature(NS_DATA)
        else:
            return None
        return info

    # -- the chat ----------------------------------------------------------

    def chat(self, xml: ET.Element) -> None:
        """Answer a chat message to the component."""
        sender = xml.get("from", "")
        if self.answers.delay() > 0:
            self.unanswered += 1
            if self.unanswered & (self.unanswered - 1) == 0:  # at 1, 2, 4, 8, ...
                log.warning("chat_flood_unanswered", network="xmpp", sender=sender.partition("/")[0],
                            unanswered=self.unanswered)
            return
        self.answers.spend()
        reply = chat.answer(self.control, sender, child_text(xml, "body") or "")
        log.info("operator_chat", network="xmpp", sender=sender.partition("/")[0])
        self.send(f"<message type='chat' to={attr(sender)} from={attr(self.jid)}>"
                  f"<body>{text(reply)}</body></message>")

    # -- commands (slixmpp XEP-0050 handlers: first (iq, session), then (form, session)) --

    def _status(self, iq, session: dict) -> dict:
        control = self.control
        form = self.forms.make_form("result", "muc-bridge status")
        for name in control.networks():
            form.add_field(var=f"network/{name}", ftype="text-single",
                           label=f"{name} ({control.adapters[name].protocol})",
                           value=control.network_status(name))
        for link in control.config.links:
            form.add_field(var=f"link/{link.name}", ftype="text-multi", label=f"link {link.name}",
                           value=control.link_status(link))
        return _done(session, form)

    def _security(self, iq, session: dict) -> dict:
        form = self.forms.make_form("form", "Security report",
                                    "Which link? The report says what protects each hop.")
        form.add_field(var="link", ftype="list-single", label="Link", required=True,
                       options=_options(link.name for link in self.control.config.links))
        form.add_field(var="post", ftype="boolean", label="Also post it in the link's XMPP rooms",
                       value=False)
        return _ask(session, form, self._security_report)

    def _security_report(self, form, session: dict) -> dict:
        values = _values(form)
        link = self.control.link(str(values.get("link") or ""))
        if link is None:
            raise XMPPError("bad-request", text="no such link")
        report = self.control.security(link)
        if values.get("post") in (True, "1", "true"):
            self.control.post_security(link)
        result = self.forms.make_form("result", f"Security of link {link.name}")
        result.add_field(var="report", ftype="text-multi", label="Hop by hop", value=report[1:])
        return _done(session, result)

    def _reconnect(self, iq, session: dict) -> dict:
        form = self.forms.make_form("form", "Reconnect a network",
                                    "Its connection is dropped and made again at once.")
        form.add_field(var="network", ftype="list-single", label="Network", required=True,
                       options=_options(self.control.networks()))
        return _ask(session, form, self._reconnect_now)

    def _reconnect_now(self, form, session: dict) -> dict:
        network = str(_values(form).get("network") or "")
        if network not in self.control.adapters:
            raise XMPPError("bad-request", text="no such network")
        if network == "xmpp":  # this very link: the answer goes out first
            asyncio.get_running_loop().call_later(SELF_RECONNECT_DELAY, self.control.reconnect, network)
            note = "xmpp: reconnecting."
        else:
            note = self.control.reconnect(network)
        session["notes"] = [("info", note)]
        return _done(session, None)

    def _puppets(self, iq, session: dict) -> dict:
        puppets = self.control.puppets()
        if not puppets:
            session["notes"] = [("info", "No puppets are in any room now.")]
            return _done(session, None)
        form = self.forms.make_form("form", "Puppets", "Those picked leave their room, and stay out "
                                    "5 minutes (their users speak through the bot meanwhile).")
        form.add_field(var="remove", ftype="list-multi", label="Remove", options=[
            {"label": f"{p.nick} in {p.room} ({p.name} on {p.network})", "value": f"{p.room}/{p.nick}"}
            for p in puppets])
        return _ask(session, form, self._remove_puppets)

    def _remove_puppets(self, form, session: dict) -> dict:
        picked = _values(form).get("remove") or []
        removed = []
        for item in picked if isinstance(picked, list) else [picked]:
            room, slash, nick = str(item).partition("/")  # an occupant JID: room@service/nick
            if slash and self.control.kick(room, nick):
                removed.append(item)
        session["notes"] = [("info", f"Removed {len(removed)}: {', '.join(removed)}" if removed
                             else "Nobody removed.")]
        return _done(session, None)


    async def _reload(self, iq, session: dict) -> dict:
        log.info("operator_reload", network="xmpp", sender=str(iq["from"]).partition("/")[0])
        outcome = await self.control.reload()
        # XEP-0050 <note/> types: error (refused: nothing changed), info, warn (needs a restart).
        session["notes"] = ([("error", line) for line in outcome.problems]
                            + [("info", line) for line in outcome.changes]
                            + [("warn", line) for line in outcome.kept])
        return _done(session, None)


def _ask(session: dict, form, then) -> dict:
    """A form to fill in; `then` takes it back (XEP-0050 section 3.4: one stage, complete)."""
    session.update(payload=form, next=then, has_next=False)
    return session


def _done(session: dict, form) -> dict:
    session.update(payload=form, next=None, has_next=False)
    return session


def _options(values) -> list[dict]:
    return [{"label": value, "value": value} for value in values]


def _values(form) -> dict:
    if isinstance(form, list):  # several payloads: the data form among them
        form = next((item for item in form if item.plugin_attrib == "form"), None)
    return form.get_values() if form is not None else {}
