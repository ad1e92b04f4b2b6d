"""Portal addresses: `#chan%network@component` is a channel, `nick%network@component` a
person, `network@component` the network's server, on a network listed under
`portal.networks`.

The local part is XEP-0106-escaped (`\\26chan%net` is the channel `&chan`); the network is
what follows the last `%` (network names hold no `%`, channels may); whether the rest is a
channel or a nick is the network's CHANTYPES (ISUPPORT; `#&` until a connection says).
Servers fold local parts (nodeprep), so `#Chan%Libera` reaches us as `#chan%libera`: IRC
compares channels and nicks without case anyway.

A nick address has the shape of a plumbed puppet (`nick%network@component`, with the
puppets the store knows). The two coexist by who writes: a user the portal lets in writing
directly to an address on a portal network is writing from their own IRC connection, to
that nick (when the address is a puppet the store knows, to the nick it has now); anyone
else, and any message through a linked room, reaches the plumbed puppet as before.
Channel addresses cannot clash: no IRC nick starts with a CHANTYPES character.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bridge.store.sqlite import escape_localpart
from bridge.xmpp.stanza import bare, resource

_ESCAPED = re.compile(r"\\(20|22|26|27|2f|3a|3c|3e|40|5c)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PortalJid:
    network: str  # as configured
    name: str  # the channel or nick, unescaped; "" for the server
    channel: bool
    nick: str = ""  # the resource: an occupant's nick in a channel


def unescape(node: str) -> str:
    """XEP-0106 section 4.3: the escape sequences back to the characters they stand for."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), node)


def parse(jid: str, domain: str, networks: Mapping[str, str],
          chantypes: Callable[[str], str]) -> PortalJid | None:
    """The portal address `jid` is, or None. `networks`: folded name -> configured name."""
    node, at, host = bare(jid).rpartition("@")
    if not at or host != domain:
        return None
    name, percent, network = node.rpartition("%")
    if not percent:  # `NET@component`: the network's server itself (name "")
        network = networks.get(node.lower())
        return PortalJid(network, "", False, resource(jid)) if network is not None else None
    if not name:
        return None
    network = networks.get(network.lower())
    if network is None:
        return None
    name = unescape(name)
    return PortalJid(network, name, name[0] in chantypes(network), resource(jid))


def address(network: str, name: str, domain: str) -> str:
    """The bare JID of channel or nick `name` on `network`."""
    return f"{escape_localpart(name)}%{escape_localpart(network)}@{domain}"
