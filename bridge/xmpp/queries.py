"""The control plane: what the component and its puppets answer to queries.

Room traffic stays raw (`component`); queries are rare and go through slixmpp's own
plugins on the component's stream: XEP-0030 disco, XEP-0054 vcard-temp (a puppet's card
says what its network says about the user: IRC's WHOIS, SILC's key fingerprint),
XEP-0092 software version (a puppet's says which network the user is on), XEP-0199 ping.
With portal mode on, disco#items on the component lists the portal channels in use
(`Portal.in_use`), paged with XEP-0059 (slixmpp's xep_0059 stanza on DiscoItems).
An iq first passes the gate here: to an address that does not exist, item-not-found
(`Addresses`); an ad-hoc command (XEP-0050, `bridge.xmpp.commands`) to the component from
anyone but an admin, forbidden (portal users' own, `bridge.xmpp.portal_commands`, from
anyone the portal does not let in); a namespace nobody here serves, or any other `set`,
service-unavailable (RFC 6120 8.4), so slixmpp only sees what one of its plugins answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from xml.etree import ElementTree as ET

import structlog
from slixmpp import ComponentXMPP
from slixmpp.exceptions import XMPPError
from slixmpp.plugins.xep_0030.stanza import DiscoInfo, DiscoItems
from slixmpp.plugins.xep_0054.stanza import VCardTemp
from slixmpp.plugins.xep_0059.stanza import Set as RsmSet
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from bridge import __version__
from bridge.core.adapter import Adapter
from bridge.core.profile import Profile
from bridge.xmpp.addresses import COMPONENT, Addresses
from bridge.xmpp.commands import NS_COMMANDS, Commands
from bridge.xmpp.portal_commands import PortalCommands
from bridge.xmpp.stanza import NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_PING, NS_VERSION

NS_VCARD = "vcard-temp"
#: What the component says it does (XEP-0030 features).
COMPONENT_FEATURES = (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_PING, NS_VERSION, NS_VCARD,
                      "jid\\20escaping")
#: What a puppet answers.
PUPPET_FEATURES = (NS_DISCO_INFO, NS_PING, NS_VERSION, NS_VCARD)
#: The namespaces handed to slixmpp's plugins (iq get only).
SERVED = {NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_VERSION, NS_VCARD}
#: A card waits this long at most for what the user's network says (IRC's WHOIS).
PROFILE_TIMEOUT = 8.0
NS_RSM = "http://jabber.org/protocol/rsm"
#: Items in one disco#items page unless the asker says fewer (RSM max).
ITEMS_PAGE = 100

log = structlog.get_logger(__name__)


class Queries:
    def __init__(self, addresses: Addresses, networks: Mapping[str, Adapter],
                 dispatch: Callable[[ET.Element], None]) -> None:
        """`dispatch` hands an iq to the stream's slixmpp handlers."""
        self.addresses = addresses
        self.networks = networks
        self.dispatch = dispatch
        self.commands: Commands | None = None  # the operator's commands, when the bridge has them
        #: The portal channels in use as `asker` may see them, (room JID, name); None: no portal.
        self.portal_rooms: Callable[[str], list[tuple[str, str]]] | None = None
        self.user_commands: PortalCommands | None = None  # portal users' commands

    def setup(self, stream: ComponentXMPP) -> None:
        """Register the plugins and our answers on a new stream."""
        for plugin in ("xep_0030", "xep_0054", "xep_0059", "xep_0092", "xep_0199"):
            stream.register_plugin(plugin)
        disco = stream.plugin["xep_0030"]
        disco.api.register(self._info, "get_info")
        disco.api.register(self._items, "get_items")
        stream.plugin["xep_0054"].api.register(self._vcard, "get_vcard")
        # XEP-0092's plugin gives one answer for every JID: a puppet says its network.
        stream.remove_handler("Software Version")
        stream.register_handler(Callback("bridge version", StanzaPath("iq@type=get/software_version"),
                                         self._version))
        if self.commands is not None:
            self.commands.setup(stream)
        if self.user_commands is not None:
            self.user_commands.setup(stream)

    def handle(self, iq: ET.Element) -> None:
        """An iq get or set to one of our addresses."""
        query = iq[0] if len(iq) else None
        namespace = query.tag[1:].partition("}")[0] if query is not None else ""
        entity = self.addresses.entity(iq.get("to", ""))
        if entity is None:
            self.addresses.error("iq", iq, "cancel", "item-not-found",
                                 f"{iq.get('to', '')} does not exist: this bridge has no such user")
        elif (entity is COMPONENT and namespace == NS_COMMANDS and iq.get("type") == "set"
              and self.user_commands is not None and self.user_commands.serves(query.get("node", ""))):
            if self.user_commands.allowed(iq.get("from", "")):
                self.dispatch(iq)
            else:
                self.addresses.error("iq", iq, "auth", "forbidden", "only portal users may run this command")
        elif (entity is COMPONENT and namespace == NS_COMMANDS and iq.get("type") == "set"
              and self.commands is not None):
            if self.commands.allowed(iq):
                self.dispatch(iq)
            else:  # XEP-0050 section 4.6
                self.addresses.error("iq", iq, "auth", "forbidden",
                                     "only the bridge's admins may run its commands")
        elif iq.get("type") != "get" or namespace not in SERVED:
            self.addresses.error("iq", iq, "cancel", "service-unavailable",
                                 "muc-bridge does not offer this here")
        else:
            self.dispatch(iq)

    # -- answers (slixmpp API handlers: jid, node, ifrom, data) -----------

    def _info(self, jid, node, ifrom, data) -> DiscoInfo:
        entity = self._entity(jid)
        if node:
            info = self.commands.info(node) if entity is COMPONENT and self.commands else None
            if info is None and entity is COMPONENT and self.user_commands is not None:
                info = self.user_commands.info(node)
            if info is None:
                raise XMPPError("item-not-found", text="no such node")
            return info
        info = DiscoInfo()
        if entity is COMPONENT:
            info.add_identity("gateway", "irc", "muc-bridge")
            info.add_identity("component", "generic", "muc-bridge")
            features = COMPONENT_FEATURES + ((NS_COMMANDS,) if self.commands or self.user_commands else ()) \
                + ((NS_RSM,) if self.portal_rooms else ())
        else:
            info.add_identity("client", "bot", entity.nick)
            features = PUPPET_FEATURES
        for feature in features:
            info.add_feature(feature)
        return info

    def _items(self, jid, node, ifrom, data) -> DiscoItems:
        entity = self._entity(jid)
        if entity is COMPONENT and node == NS_COMMANDS:
            items = self.commands.items(ifrom) if self.commands is not None else DiscoItems()
            return self.user_commands.items(str(ifrom), items) if self.user_commands else items
        if entity is COMPONENT and not node and self.portal_rooms is not None:
            return page(self.portal_rooms(str(ifrom)), data["disco_items"]["rsm"])
        return DiscoItems()

    async def _vcard(self, jid, node, ifrom, data) -> VCardTemp:
        entity = self._entity(jid)
        card = VCardTemp()
        if entity is COMPONENT:
            others = ", ".join(sorted({a.protocol for a in self.networks.values()}))
            card["FN"] = "muc-bridge"
            card["DESC"] = (f"A gateway relaying chat rooms between XMPP and {others or 'other networks'} "
                            f"(version {__version__}).")
            return card
        adapter = self.networks.get(entity.network)
        profile = Profile(entity.nick, entity.network, adapter.protocol if adapter else "")
        if adapter is not None:
            try:
                async with asyncio.timeout(PROFILE_TIMEOUT):
                    profile = await adapter.profile(entity)
            except Exception as exc:  # the card says less; the query is answered all the same
                log.warning("xmpp_profile_failed", network=entity.network, error=type(exc).__name__)
        card["FN"] = profile.realname or profile.nick
        card["NICKNAME"] = profile.nick
        card["DESC"] = "\n".join(profile.lines())
        return card

    def _version(self, iq) -> None:
        entity = self._entity(iq["to"])
        reply = iq.reply()
        reply["software_version"]["name"] = "muc-bridge"
        reply["software_version"]["version"] = __version__
        if entity is not COMPONENT:  # XEP-0092 `os`: where this user really is
            reply["software_version"]["os"] = self.addresses.where(entity.network)
        reply.send()

    def _entity(self, jid):
        entity = self.addresses.entity(str(jid))
        if entity is None:
            raise XMPPError("item-not-found", text="no such user")
        return entity


def page(entries: Sequence[tuple[str, str]], rsm: RsmSet) -> DiscoItems:
    """One page of (JID, name) `entries`, sorted by JID, as XEP-0059 asks: `after` a JID
    (2.2), `before` one or the last page (2.3, `before` empty), `index` (2.4), at most `max`
    (2.1; 0 is the count alone, 2.6); the page says its first (with its index), last and
    the count (2.1). An `after`/`before` JID that is gone is item-not-found (2.5)."""
    jids = [jid for jid, _ in entries]
    limit = ITEMS_PAGE
    if rsm["max"]:
        if not rsm["max"].isdigit():
            raise XMPPError("bad-request", text="RSM max is not a number")
        limit = min(int(rsm["max"]), ITEMS_PAGE)
    before = rsm.xml.find(f"{{{NS_RSM}}}before")
    if rsm["after"]:
        if rsm["after"] not in jids:
            raise XMPPError("item-not-found", text="no such item to page after")
        first = jids.index(rsm["after"]) + 1
    elif before is not None:
        end = len(jids) if not before.text else jids.index(before.text) if before.text in jids else -1
        if end < 0:
            raise XMPPError("item-not-found", text="no such item to page before")
        first = max(0, end - limit)
        limit = end - first
    elif rsm["index"]:
        first = int(rsm["index"]) if rsm["index"].isdigit() else len(jids)
    else:
        first = 0
    items = DiscoItems()
    chosen = entries[first:first + limit]
    for jid, name in chosen:
        items.add_item(jid, name=name)
    result = items["rsm"]
    if chosen:
        result["first"] = chosen[0][0]
        result["first_index"] = str(first)
        result["last"] = chosen[-1][0]
    result["count"] = str(len(entries))
    return items
