"""Portal addresses: channel or nick by CHANTYPES, XEP-0106 escaping, portal networks only."""

from bridge.core.portal import allowed
from bridge.xmpp.portal_jids import PortalJid, address, parse, unescape

DOMAIN = "bridge.example.org"
NETWORKS = {"libera": "Libera"}


def chantypes(network):
    return "#&"


def test_a_channel_of_a_portal_network_with_the_occupant_nick():
    assert parse("#chan%libera@bridge.example.org/Alice", DOMAIN, NETWORKS, chantypes) == \
        PortalJid("Libera", "#chan", True, "Alice")


def test_a_nick_is_what_does_not_start_with_a_channel_type():
    assert parse("bob%libera@bridge.example.org", DOMAIN, NETWORKS, chantypes) == \
        PortalJid("Libera", "bob", False)
    assert parse("+chan%libera@bridge.example.org", DOMAIN, NETWORKS, lambda n: "#&+").channel


def test_escaped_characters_and_percent_signs_in_channel_names():
    assert parse(r"\26local%libera@bridge.example.org", DOMAIN, NETWORKS, chantypes).name == "&local"
    assert parse("#50%off%libera@bridge.example.org", DOMAIN, NETWORKS, chantypes).name == "#50%off"
    assert unescape(r"a\20b\3a\5c") == "a b:\\"
    assert address("Libera", "&Local", DOMAIN) == r"\26local%libera@bridge.example.org"


def test_not_portal_addresses():
    for jid in ("#chan%efnet@bridge.example.org", "#chan%libera@other.example.org",
                "#chan@bridge.example.org", "%libera@bridge.example.org", "bridge.example.org"):
        assert parse(jid, DOMAIN, NETWORKS, chantypes) is None, jid


def test_who_may_use_the_portal():
    patterns = ("alice@example.org", "example.net", "*.example.com")
    assert allowed("alice@example.org", patterns)
    assert not allowed("bob@example.org", patterns)
    assert allowed("bob@example.net", patterns) and not allowed("bob@sub.example.net", patterns)
    assert allowed("bob@example.com", patterns) and allowed("bob@a.b.example.com", patterns)
    assert not allowed("bob@badexample.com", patterns)
    assert allowed("anyone@any.where", ("*",))


def test_the_network_itself():
    assert parse("libera@bridge.example.org/x", DOMAIN, NETWORKS, chantypes) == \
        PortalJid("Libera", "", False, "x")
    assert parse("efnet@bridge.example.org", DOMAIN, NETWORKS, chantypes) is None
