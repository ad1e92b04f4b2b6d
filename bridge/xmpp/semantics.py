"""What a room message means beyond its text: encrypted payloads, corrections (XEP-0308),
retractions (XEP-0424), reactions (XEP-0444) and replies (XEP-0461 with XEP-0428 fallbacks).

`special` tells, at the cost of a look at each child's namespace, whether a message is
more than text; plain messages take no other step here. `read` turns a special one into
what the room relays, and the `*_stanza` functions build the payloads a puppet sends.
Ids: a correction names the original's `id` attribute (XEP-0308 section 3); a retraction,
a reaction and a reply in a groupchat name the room's stanza-id (XEP-0424 section 6,
XEP-0444, XEP-0461), though clients also use the `id`: the message-id map knows both.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree as ET

from bridge.xmpp.stanza import attr, resource, text

NS_CORRECT = "urn:xmpp:message-correct:0"
NS_RETRACT = "urn:xmpp:message-retract:1"
NS_REACTIONS = "urn:xmpp:reactions:0"
NS_REPLY = "urn:xmpp:reply:0"
NS_FALLBACK = "urn:xmpp:fallback:0"
NS_EME = "urn:xmpp:eme:0"
#: End-to-end encrypted payloads, by namespace, named as people know them.
ENCRYPTED = {
    "eu.siacs.conversations.axolotl": "OMEMO",
    "urn:xmpp:omemo:2": "OMEMO",
    "urn:xmpp:openpgp:0": "OpenPGP",
    "jabber:x:encrypted": "OpenPGP",
    NS_EME: "end-to-end encryption",
}
#: XEP-0380 names for the encryption namespaces it lists.
EME_NAMES = {"urn:xmpp:otr:0": "OTR", "jabber:x:encrypted": "OpenPGP", "urn:xmpp:openpgp:0": "OpenPGP",
             "eu.siacs.conversations.axolotl": "OMEMO", "urn:xmpp:omemo:1": "OMEMO",
             "urn:xmpp:omemo:2": "OMEMO"}
_SPECIAL = frozenset((*ENCRYPTED, NS_CORRECT, NS_RETRACT, NS_REACTIONS, NS_REPLY))


def special(xml: ET.Element, body: str) -> bool:
    """Does the message carry anything beyond text (or is its text an OTR message)?"""
    for el in xml:
        tag = el.tag
        if tag[1:tag.find("}")] in _SPECIAL:
            return True
    return body.startswith("?OTR")


@dataclass(slots=True)
class Meaning:
    body: str  # the text to relay, fallbacks removed
    encrypted: str | None = None  # the encryption's name
    replaces: str | None = None
    retracts: str | None = None
    reacts_to: str | None = None
    reactions: tuple[str, ...] = ()
    reply_to: str | None = None
    reply_nick: str | None = None


def read(xml: ET.Element, body: str) -> Meaning:
    meaning = Meaning(body)
    fallbacks: list[ET.Element] = []
    for el in xml:
        ns, _, name = el.tag[1:].partition("}")
        if ns in ENCRYPTED:
            meaning.encrypted = meaning.encrypted or (
                EME_NAMES.get(el.get("namespace", ""), el.get("name") or ENCRYPTED[ns])
                if ns == NS_EME else ENCRYPTED[ns])
        elif ns == NS_CORRECT and name == "replace":
            meaning.replaces = el.get("id") or None
        elif ns == NS_RETRACT and name == "retract":
            meaning.retracts = el.get("id") or None
        elif ns == NS_REACTIONS and name == "reactions":
            meaning.reacts_to = el.get("id") or None
            meaning.reactions = tuple(dict.fromkeys(
                (r.text or "").strip() for r in el.iter(f"{{{NS_REACTIONS}}}reaction")
                if (r.text or "").strip()))
        elif ns == NS_REPLY and name == "reply":
            meaning.reply_to = el.get("id") or None
            meaning.reply_nick = resource(el.get("to", "")) or None
        elif ns == NS_FALLBACK and name == "fallback":
            fallbacks.append(el)
    if body.startswith("?OTR"):
        meaning.encrypted = "OTR"
    if meaning.reply_to is not None:
        meaning.body = _strip(body, [f for f in fallbacks if f.get("for") == NS_REPLY])
    return meaning


def _strip(body: str, fallbacks: list[ET.Element]) -> str:
    """`body` without the ranges its XEP-0428 fallbacks mark (code point offsets)."""
    cuts = []
    for fallback in fallbacks:
        for part in fallback.iter(f"{{{NS_FALLBACK}}}body"):
            try:
                start, end = int(part.get("start", "0")), int(part.get("end", str(len(body))))
            except ValueError:
                continue
            if 0 <= start <= end <= len(body):
                cuts.append((start, end))
    for start, end in sorted(cuts, reverse=True):
        body = body[:start] + body[end:]
    return body.strip()


def correction_stanza(body: str, replaces: str) -> str:
    return f"<body>{text(body)}</body><replace xmlns='{NS_CORRECT}' id={attr(replaces)}/>"


def retraction_stanza(target: str) -> str:
    """With the fallback body XEP-0424 asks for, marked as such (XEP-0428)."""
    return (f"<body>This person attempted to retract a previous message, but it's unsupported "
            f"by your client.</body><retract xmlns='{NS_RETRACT}' id={attr(target)}/>"
            f"<fallback xmlns='{NS_FALLBACK}' for='{NS_RETRACT}'/><store xmlns='urn:xmpp:hints'/>")


def reactions_stanza(target: str, emojis: tuple[str, ...]) -> str:
    """The sender's whole set of reactions to `target` (XEP-0444: empty removes them all)."""
    inner = "".join(f"<reaction>{text(e)}</reaction>" for e in emojis)
    return f"<reactions xmlns='{NS_REACTIONS}' id={attr(target)}>{inner}</reactions>" \
           "<store xmlns='urn:xmpp:hints'/>"


def reply_stanza(body: str, target: str, to: str, quote: str) -> str:
    """A reply to `target` (said by occupant `to`), with `quote` as its fallback (XEP-0428)."""
    full = quote + body
    return (f"<body>{text(full)}</body><reply xmlns='{NS_REPLY}' to={attr(to)} id={attr(target)}/>"
            f"<fallback xmlns='{NS_FALLBACK}' for='{NS_REPLY}'>"
            f"<body start='0' end='{len(quote)}'/></fallback>")
