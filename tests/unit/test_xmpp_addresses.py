"""Which addresses the component serves, and which stanzas to them get an answer."""

from types import SimpleNamespace
from xml.etree import ElementTree as ET

from bridge.core.events import Identity
from bridge.store.sqlite import SqliteStore
from bridge.xmpp.addresses import COMPONENT, Addresses


def addresses(networks=("Libera",)):
    networks = {name: SimpleNamespace(protocol="IRC") for name in networks}
    store = SqliteStore(":memory:")
    store.puppet(Identity("Libera", "nick:bob", "Bob"))
    sent: list[str] = []
    return Addresses("bridge.example", store, lambda s: sent.append(s) or True, networks,
                     lambda xml, to: sent.append(f"private to {to.nick}")), sent


def stanza(text: str) -> ET.Element:
    return ET.fromstring(text.replace("<message", "<message xmlns='jabber:component:accept'")
                         .replace("<presence", "<presence xmlns='jabber:component:accept'"))


def test_puppets_are_found_even_when_the_server_lower_cases_the_network():
    found, _ = addresses()
    assert found.entity("bob%Libera@bridge.example/bridge").nick == "Bob"
    assert found.entity("bob%libera@bridge.example").nick == "Bob"
    assert found.entity("bridge.example") is COMPONENT
    assert found.entity("alice%libera@bridge.example") is None
    assert found.entity("bob%libera@elsewhere.example") is None


def test_errors_and_the_ends_of_directed_presence_get_no_answer():
    found, sent = addresses()
    assert not found.answer("message", stanza(
        "<message type='error' from='a@x' to='nobody@bridge.example'><body>x</body></message>"), False)
    assert found.answer("presence", stanza(
        "<presence type='unavailable' from='a@x' to='nobody@bridge.example'/>"), False)
    assert sent == []


def test_a_rooms_own_message_to_the_bot_is_left_to_the_room():
    found, sent = addresses()
    invite = stanza("<message from='room@muc' to='bridge.example'><body>join us</body></message>")
    assert not found.answer("message", invite, True)
    assert sent == []


def test_what_a_room_sends_to_an_address_we_do_not_know_gets_no_error():
    found, sent = addresses()  # it may be a puppet the server names stringprepped: no kick
    presence = stanza("<presence from='room@muc/Straße' to='strasse%libera@bridge.example/bridge'/>")
    assert not found.answer("presence", presence, True)
    assert sent == []


def test_a_private_message_to_a_puppet_is_taken_and_one_to_the_bot_answered():
    found, sent = addresses()
    assert found.answer("message", stanza(
        "<message type='chat' from='room@muc/alice' to='bob%libera@bridge.example/bridge'>"
        "<body>psst</body></message>"), True)
    assert found.answer("message", stanza(
        "<message type='chat' from='room@muc/alice' to='bridge.example' id='p2'><body>hi</body></message>"),
        True)
    assert sent[0] == "private to Bob"
    assert "feature-not-implemented" in sent[1] and "not a person" in sent[1] and "id='p2'" in sent[1]
    assert not found.answer("message", stanza(  # a chat state alone: nothing to take or answer
        "<message type='chat' from='room@muc/alice' to='bob%libera@bridge.example/bridge'/>"), True)
    assert len(sent) == 2
