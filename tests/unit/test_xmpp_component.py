"""What the component writes to the server: stanzas in order, few writes per burst."""

import asyncio
from types import SimpleNamespace

from bridge.config_types import ComponentConfig
from bridge.core.coalesce import FLUSH_SIZE
from bridge.xmpp.component import Component, _Stream, tls_context
from bridge.xmpp.outgoing import Outgoing


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return 0


async def _offline() -> None:
    return None


def online_component() -> Component:
    component = Component(ComponentConfig("bridge.localhost", "secret"), lambda *_: None,
                          _offline, lambda: None)
    component.stream = SimpleNamespace(transport=FakeTransport())
    component.online = True
    return component


async def test_a_turn_s_first_stanza_goes_at_once_the_rest_share_one_write():
    component = online_component()
    assert component.send("<message id='1'/>")
    assert component.stream.transport.written == [b"<message id='1'/>"]
    assert component.send("<message id='2'/>") and component.send("<message id='3'/>")
    await asyncio.sleep(0)
    assert component.stream.transport.written == [b"<message id='1'/>", b"<message id='2'/><message id='3'/>"]


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


async def test_a_query_waiting_when_the_stream_drops_gets_none_and_its_task_goes_on():
    component = online_component()
    query = asyncio.create_task(component.query("room@muc/bridge", "bridge.localhost", "<ping/>"))
    await asyncio.sleep(0)
    component._gone()
    assert await asyncio.wait_for(query, 1) is None  # not a CancelledError that ends the caller


async def test_an_answer_counts_only_from_where_the_query_went():
    from xml.etree import ElementTree as ET
    component = online_component()
    query = asyncio.create_task(component.query("room@muc/bridge", "bridge.localhost", "<ping/>", timeout=0.2))
    await asyncio.sleep(0)
    iq_id = next(iter(component._pending))
    assert not component.resolve(ET.fromstring(f"<iq type='result' id='{iq_id}' from='mallory@evil'/>"))
    assert component.resolve(ET.fromstring(f"<iq type='result' id='{iq_id}' from='room@muc/bridge'/>"))
    assert (await query).get("from") == "room@muc/bridge"


class SilentStream:
    def __init__(self, silent_for: float) -> None:
        import time
        self.last_received = time.monotonic() - silent_for
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


async def test_a_quiet_link_is_pinged_and_a_silent_one_dropped():
    component = online_component()
    component.config = ComponentConfig("bridge.localhost", "secret", ping_timeout=0.4)
    quiet = SilentStream(0.25)
    watch = asyncio.create_task(component._watch(quiet))
    await asyncio.sleep(0.15)  # one tick (timeout / 4)
    assert b"urn:xmpp:ping" in b"".join(component.stream.transport.written) and not quiet.aborted
    await asyncio.wait_for(watch, 1)  # no answer: silent for 0.4 s, dropped
    assert quiet.aborted


async def test_a_server_that_stops_reading_is_dropped_not_buffered_for_ever():
    from bridge.xmpp.component import MAX_WRITE_BUFFER
    component = online_component()
    component.stream.transport.get_write_buffer_size = lambda: MAX_WRITE_BUFFER + 1
    aborted = []
    component.abort = lambda: aborted.append(True)
    component.send("<message/>")
    component.flush()
    assert aborted and component.stream.transport.written == []


async def test_housekeeping_survives_a_failing_round():
    from bridge.store.sqlite import SqliteStore
    from bridge.xmpp.adapter import XmppAdapter
    adapter = XmppAdapter(ComponentConfig("bridge.localhost", "secret", ping_interval=0.01),
                          lambda e: None, SqliteStore(":memory:"))
    adapter.add_endpoint("room@muc.localhost", {})
    adapter.component.online = True
    calls = []

    async def self_ping(timeout=30.0):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bad round")

    adapter.rooms["room@muc.localhost"].self_ping = self_ping
    task = asyncio.create_task(adapter._housekeeping())
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(calls) >= 3:
            break
    assert len(calls) >= 3 and not task.done()
    task.cancel()


class StreamTransport(FakeTransport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def get_extra_info(self, name, default=None):
        return default

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
          b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='bridge.localhost'>")


def message(n: int, extra: str = "") -> bytes:
    return (f"<message type='chat' to='bridge.localhost' from='a@localhost/x' id='m{n}'>"
            f"<body>secret words {n}</body>{extra}</message>").encode()


def open_stream():
    from bridge.xmpp.component import _Stream
    from bridge.xmpp.outgoing import Outgoing
    got = []
    stream = _Stream(ComponentConfig("bridge.localhost", "secret"), lambda kind, xml: got.append(xml.get("id")),
                     Outgoing())
    transport = StreamTransport()
    stream.connection_made(transport)
    stream.data_received(HEADER)
    stream.sessionstarted = True
    return stream, transport, got


async def test_a_malformed_stanza_costs_that_stanza_only_and_its_words_stay_out_of_the_log(capsys):
    stream, transport, got = open_stream()
    mismatched = b"<message to='bridge.localhost' id='bad1'><body>secret words</bdy></message>"
    unclosed = b"<message to='bridge.localhost' id='bad2'><body>secret words never closed"
    garbage = b"<<<>>> secret words"
    for chunk in (message(1) + mismatched + message(2), unclosed, message(3) + garbage, message(4)):
        stream.data_received(chunk)
    assert got == ["m1", "m2", "m3", "m4"] and not transport.closed
    log = capsys.readouterr().out
    assert log.count("xmpp_stanza_malformed") == 3 and "secret" not in log


async def test_an_unknown_encoding_is_a_stream_error_not_a_crash(capsys):
    from bridge.xmpp.component import _Stream
    from bridge.xmpp.outgoing import Outgoing
    stream = _Stream(ComponentConfig("bridge.localhost", "secret"), lambda kind, xml: None, Outgoing())
    transport = StreamTransport()
    stream.connection_made(transport)
    stream.data_received(b"<?xml version='1.0' encoding='x-no-such-thing'?><stream:stream xmlns='jabber:component:accept' "
                         b"xmlns:stream='http://etherx.jabber.org/streams' id='s1'>")
    assert transport.closed and b"not-well-formed" in b"".join(transport.written)
    assert "xmpp_stream_malformed" in capsys.readouterr().out


async def test_with_tls_a_failed_handshake_never_falls_back_to_a_plain_stream():
    """A port that does not speak TLS: the stream's first bytes are a TLS ClientHello
    (record type 22), each attempt; never a plain stream header with the secret after it."""
    firsts: list[bytes] = []

    async def server(reader, writer):
        firsts.append(await reader.read(1))
        writer.close()

    listener = await asyncio.start_server(server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    config = ComponentConfig("bridge.localhost", "secret", port=port, tls=True)
    stream = _Stream(config, lambda *_: None, Outgoing(), tls_context(config))
    failed = asyncio.Event()
    stream.add_event_handler("connection_failed", lambda _: failed.set())
    try:
        stream.connect()
        async with asyncio.timeout(5):
            await failed.wait()
        await asyncio.sleep(0.3)  # time for any other attempt of the same round
    finally:
        stream.cancel_connection_attempt()
        stream.abort()
        listener.close()
    assert firsts and set(firsts) == {b"\x16"}


async def test_a_component_closed_at_shutdown_does_not_connect_again():
    """Other networks may take seconds to close: in the meantime a new stream would join
    every room again, only to leave at once."""
    streams: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        streams.append(writer)
        await reader.readuntil(b">")  # the stream header (after the XML declaration)
        writer.write(b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
                     b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='bridge.localhost'>")
        await reader.readuntil(b"</handshake>")
        writer.write(b"<handshake/>")
        await reader.readuntil(b"</stream:stream>")  # the component leaves: so does the server
        writer.write(b"</stream:stream>")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    online = asyncio.Event()

    async def on_online() -> None:
        online.set()

    component = Component(ComponentConfig("bridge.localhost", "secret", server="127.0.0.1", port=port,
                                          tls=False), lambda *_: None, on_online, lambda: None)
    run = asyncio.create_task(component.run())
    try:
        await asyncio.wait_for(online.wait(), 5)
        await component.close()
        await asyncio.sleep(2.5)  # past the first reconnect's delay (0.5-1 s)
        assert len(streams) == 1
        assert run.done()
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        for writer in streams:
            writer.close()
        server.close()
