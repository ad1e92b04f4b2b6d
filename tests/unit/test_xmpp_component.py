"""What the component writes to the server: stanzas in order, few writes per burst."""

import asyncio
from types import SimpleNamespace

from bridge.config_types import ComponentConfig
from bridge.core.coalesce import FLUSH_SIZE
from bridge.xmpp.component import Component


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


async def _offline() -> None:
    return None


def online_component() -> Component:
    component = Component(ComponentConfig("bridge.localhost", "secret"), lambda *_: None,
                          _offline, lambda: None)
    component.stream = SimpleNamespace(transport=FakeTransport())
    component.online = True
    return component


async def test_stanzas_of_one_turn_share_one_write():
    component = online_component()
    assert component.send("<message id='1'/>") and component.send("<message id='2'/>")
    assert component.stream.transport.written == []
    await asyncio.sleep(0)
    assert component.stream.transport.written == [b"<message id='1'/><message id='2'/>"]


async def test_a_long_burst_starts_going_out_before_the_turn_ends_in_order():
    component = online_component()
    stanzas = [f"<message id='{n}'><body>{'x' * 100}</body></message>" for n in range(1000)]
    for stanza in stanzas:
        component.send(stanza)
    written = component.stream.transport.written
    assert len(written) >= sum(map(len, stanzas)) // FLUSH_SIZE  # the server can start already
    await asyncio.sleep(0)
    assert b"".join(written) == "".join(stanzas).encode()


async def test_nothing_is_queued_while_offline():
    component = online_component()
    component.online = False
    assert not component.send("<message/>")
    component.online = True
    await asyncio.sleep(0)
    assert component.stream.transport.written == []
