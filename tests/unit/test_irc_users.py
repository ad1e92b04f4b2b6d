"""Portal users' IRC connections: names IRC could not carry are refused before anything is
sent, and nicks are made IRC nicks."""

import pytest

from bridge.config_types import IrcNetworkConfig, PortalConfig
from bridge.core.events import MessageKind
from bridge.core.portal import Refused
from bridge.irc.users import IrcUsers, irc_nick


@pytest.fixture
def users():
    return IrcUsers(PortalConfig(networks=("net",), users=("*",)),
                    {"net": IrcNetworkConfig("net", host="irc.example.net")})


@pytest.mark.parametrize("channel, key", [("#a,#b", ""), ("#a b", ""), ("#a", "k1 k2"), ("#a", "k,x")])
async def test_a_channel_or_key_that_is_no_single_parameter_is_refused(users, channel, key):
    with pytest.raises(Refused) as refused:
        users.join("alice@example.org", "net", channel, "alice", key)
    assert refused.value.condition == "jid-malformed" and users.links == {}


@pytest.mark.parametrize("target", ["bob,carol", "bob smith", ":bob", ""])
async def test_a_private_message_to_no_single_nick_is_refused(users, target):
    with pytest.raises(Refused):
        users.say("alice@example.org", "net", target, "hi", MessageKind.PLAIN)
    with pytest.raises(Refused):
        users.kick("alice@example.org", "net", "#a", target, "bye")
    assert users.links == {}


def test_muc_nicks_become_irc_nicks():
    assert irc_nick("alice") == "alice"
    assert irc_nick("Alice Smith") == "Alice_Smith"
    assert irc_nick("7of9") == "_7of9"
    assert irc_nick("Zoë") == "Zo_"
    assert len(irc_nick("x" * 100)) == 30


def test_webirc_says_a_hashed_address_and_the_password_never_reaches_a_log():
    from hashlib import sha256

    from bridge.irc.connection import _redacted
    from bridge.irc.users import webirc
    net = IrcNetworkConfig("net", host="irc.example.net")
    assert webirc(net, sha256(b"alice@example.org").digest()) == ()
    net = IrcNetworkConfig("net", host="irc.example.net", webirc_password="s3cret")
    (line,) = webirc(net, sha256(b"alice@example.org").digest())
    (other,) = webirc(net, sha256(b"bob@example.org").digest())
    command, password, gateway, host, ip = line.split(" ")
    assert (command, password, gateway, host) == ("WEBIRC", "s3cret", "muc-bridge", ip)
    assert ip.startswith("fd") and line != other
    assert "s3cret" not in _redacted(line)
