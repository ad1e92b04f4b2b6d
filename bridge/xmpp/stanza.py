"""Building and reading stanzas as raw XML: the hot path skips stanza objects.

Outgoing stanzas are strings written straight to the stream; incoming ones
are the ElementTree elements the stream parser produced.
"""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"
NS_VERSION = "jabber:iq:version"
NS_DELAY = "urn:xmpp:delay"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
NS_STANZA_ID = "urn:xmpp:sid:0"

# Characters XML 1.0 cannot carry (section 2.2), replaced before sending.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def text(value: str) -> str:
    """Escape character data, dropping what XML cannot carry."""
    return escape(_NOT_XML.sub("", value))


# What an attribute value can hold as it is (most JIDs and ids): no markup, quotes or controls.
_PLAIN_ATTR = re.compile("[^<>&'\"\x00-\x1f\ud800-\udfff\ufffe\uffff]*")


def attr(value: str) -> str:
    """A quoted attribute value."""
    if _PLAIN_ATTR.fullmatch(value):
        return f"'{value}'"
    return quoteattr(_NOT_XML.sub("", value))


def local(tag: str) -> str:
    """`{ns}name` -> `name`."""
    return tag.rpartition("}")[2]


def child(xml: ET.Element, ns: str, name: str) -> ET.Element | None:
    return xml.find(f"{{{ns}}}{name}")


def child_text(xml: ET.Element, name: str) -> str | None:
    """Text of the first child called `name` in the stanza's own namespace."""
    for el in xml:
        if local(el.tag) == name and el.tag.startswith(xml.tag[: xml.tag.find("}") + 1]):
            return el.text or ""
    return None


def error_condition(xml: ET.Element) -> str | None:
    """The defined condition of an error stanza (RFC 6120 8.3.3)."""
    for el in xml:
        if local(el.tag) == "error":
            for cond in el:
                if cond.tag.startswith(f"{{{NS_STANZAS}}}") and local(cond.tag) != "text":
                    return local(cond.tag)
    return None


def error_text(xml: ET.Element) -> str:
    """The human-readable text of an error stanza, if the server gave one (8.3.2)."""
    for el in xml:
        if local(el.tag) == "error":
            for cond in el:
                if cond.tag == f"{{{NS_STANZAS}}}text":
                    return (cond.text or "")[:200]
    return ""


def muc_statuses(xml: ET.Element) -> tuple[ET.Element | None, set[str]]:
    """The muc#user <x/> of a presence and its status codes."""
    x = child(xml, NS_MUC_USER, "x")
    if x is None:
        return None, set()
    return x, {s.get("code", "") for s in x.iter(f"{{{NS_MUC_USER}}}status")}


def bare(jid: str) -> str:
    return jid.partition("/")[0]


def resource(jid: str) -> str:
    return jid.partition("/")[2]
