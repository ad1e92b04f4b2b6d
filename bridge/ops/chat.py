"""The chat with the component: one line in, one answer out.

Anyone may ask for `help`, and for `security <room>` of a link whose MUC room they are in
(the bridge must see their real JID there: a room that hides it from the bridge's bot
cannot tell); admins get `status` and every report. Everything else admins do is in the
ad-hoc commands (`bridge.xmpp.commands`).
"""

from __future__ import annotations

from bridge.ops.control import Control

HELP = """muc-bridge relays chat rooms between XMPP, IRC and SILC. To write privately to someone \
on another network, write to them: nick%network@{domain}. To me:
  help             this text
  security <room>  what protects each hop of a linked room (a MUC JID, network/#channel, or a link name)"""
ADMIN_HELP = """
  status           each network and link (admins)
Admins also find status, security, reconnect and puppets among my ad-hoc commands."""


def answer(control: Control, sender: str, body: str) -> str:
    words = body.split()
    command = words[0].lower() if words else "help"
    admin = sender in control.admins
    usage = HELP.format(domain=control.config.component.jid) + (ADMIN_HELP if admin else "")
    if command == "help":
        return usage
    if command == "status":
        return "\n".join(control.status()) if admin else "status is for the bridge's admins."
    if command == "security":
        if len(words) < 2:
            return "Which room? security <room>, e.g. security " + _example(control)
        link = control.link(words[1])
        if link is None or not control.may_see(sender, link):
            # The same answer for a room that is not linked and one you are not in:
            # who is where is not told to strangers.
            return (f"No linked room {words[1]!r} that I can see you in. Ask from a room the bridge "
                    "links, as its occupant (the room must show the bridge your JID).")
        return "\n".join(control.security(link))
    return f"Unknown command {command!r}.\n" + usage


def _example(control: Control) -> str:
    rooms = [ep.room for link in control.config.links for ep in link.endpoints if ep.network == "xmpp"]
    return rooms[0] if rooms else "room@conference.example.org"
