"""The fault proxy itself, against a small echo server on loopback."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.faults.proxy import TO_CLIENT, TO_SERVER, FaultProxy

pytestmark = [pytest.mark.faults, pytest.mark.timeout(30)]

QUIET = 0.3  # long enough for loopback bytes to have arrived, if they were coming


class EchoServer:
    """Echoes every byte back; remembers how each connection ended."""

    def __init__(self) -> None:
        self.port = 0
        self.endings: list[str] = []  # "eof" or "reset", per connection
        self.writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> EchoServer:
        self._server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self.writers:
            writer.close()

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
            self.endings.append("eof")
        except ConnectionResetError:
            self.endings.append("reset")
        writer.close()


@contextlib.asynccontextmanager
async def echo_behind_proxy():
    async with EchoServer() as echo, FaultProxy("127.0.0.1", echo.port) as proxy:
        yield echo, proxy


async def connect(proxy: FaultProxy):
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(n), 2.0)


async def nothing_arrives(reader: asyncio.StreamReader) -> bool:
    """True when the connection stays open and silent for a while."""
    try:
        data = await asyncio.wait_for(reader.read(100), QUIET)
    except TimeoutError:
        return True
    return False if data or reader.at_eof() else True


async def test_pass_forwards_both_ways_and_counts():
    async with echo_behind_proxy() as (_, proxy):
        reader, writer = await connect(proxy)
        writer.write(b"hello\n")
        assert await read_exactly(reader, 6) == b"hello\n"
        assert proxy.counters.connections == 1
        assert proxy.counters.forwarded == {TO_SERVER: 6, TO_CLIENT: 6}
        writer.close()


async def test_blackhole_drops_bytes_keeps_sockets_and_new_connections_pass_after():
    async with echo_behind_proxy() as (_, proxy):
        reader, writer = await connect(proxy)
        proxy.blackhole()
        writer.write(b"lost\n")
        assert await nothing_arrives(reader)
        assert proxy.counters.dropped[TO_SERVER] == 5
        # a connection made during the blackhole is black too
        reader2, writer2 = await connect(proxy)
        writer2.write(b"lost too\n")
        assert await nothing_arrives(reader2)

        proxy.pass_()
        writer.write(b"still lost\n")  # a black connection never carries data again
        assert await nothing_arrives(reader)
        reader3, writer3 = await connect(proxy)
        writer3.write(b"back\n")
        assert await read_exactly(reader3, 5) == b"back\n"
        for w in (writer, writer2, writer3):
            w.close()


async def test_blackhole_hides_a_close_until_the_route_is_back_then_resets():
    async with echo_behind_proxy() as (echo, proxy):
        reader, writer = await connect(proxy)
        writer.write(b"x")
        await read_exactly(reader, 1)
        proxy.blackhole()
        echo.writers[0].close()  # the server goes away behind the dead route
        assert await nothing_arrives(reader)
        proxy.pass_()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), 2.0)
        writer.close()


async def test_client_leaving_a_black_connection_resets_the_server_once_the_route_is_back():
    async with echo_behind_proxy() as (echo, proxy):
        reader, writer = await connect(proxy)
        writer.write(b"x")
        await read_exactly(reader, 1)
        proxy.blackhole()
        writer.close()
        await asyncio.sleep(QUIET)
        assert echo.endings == []  # the server does not know yet
        proxy.pass_()
        await asyncio.sleep(QUIET)
        assert echo.endings == ["reset"]


async def test_reset_sends_rst_to_both_ends_and_accepts_again():
    async with echo_behind_proxy() as (echo, proxy):
        reader, writer = await connect(proxy)
        writer.write(b"x")
        await read_exactly(reader, 1)
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), 2.0)
        await asyncio.sleep(QUIET)
        assert echo.endings == ["reset"]
        reader2, writer2 = await connect(proxy)
        writer2.write(b"again")
        assert await read_exactly(reader2, 5) == b"again"
        assert proxy.open_connections == 1
        writer.close()
        writer2.close()


async def test_refuse_closes_new_connections_at_once_and_leaves_open_ones():
    async with echo_behind_proxy() as (_, proxy):
        reader, writer = await connect(proxy)
        proxy.refuse()
        reader2, writer2 = await connect(proxy)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader2.read(100), 2.0)
        assert proxy.counters.refused == 1
        writer.write(b"open")
        assert await read_exactly(reader, 4) == b"open"
        proxy.pass_()
        reader3, writer3 = await connect(proxy)
        writer3.write(b"ok")
        assert await read_exactly(reader3, 2) == b"ok"
        for w in (writer, writer2, writer3):
            w.close()


async def test_a_server_that_is_down_is_a_refused_connection():
    async with EchoServer() as echo:
        port = echo.port
    async with FaultProxy("127.0.0.1", port) as proxy:
        reader, writer = await connect(proxy)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), 2.0)
        assert proxy.counters.refused == 1
        writer.close()


async def test_a_server_closing_is_a_close_for_the_client():
    async with echo_behind_proxy() as (echo, proxy):
        reader, writer = await connect(proxy)
        writer.write(b"x")
        await read_exactly(reader, 1)
        echo.writers[0].close()
        assert await asyncio.wait_for(reader.read(100), 2.0) == b""
        writer.close()


async def test_inject_toward_either_end():
    async with echo_behind_proxy() as (_, proxy):
        reader, writer = await connect(proxy)
        writer.write(b"a")
        await read_exactly(reader, 1)
        assert await proxy.inject(b"to client\n", TO_CLIENT) == 1
        assert await read_exactly(reader, 10) == b"to client\n"
        await proxy.inject(b"echoed\n", TO_SERVER)  # the echo server sends it back
        assert await read_exactly(reader, 7) == b"echoed\n"
        assert proxy.counters.injected == {TO_CLIENT: 10, TO_SERVER: 7}
        writer.close()


async def test_inject_at_a_boundary_waits_for_the_end_of_a_line():
    async with echo_behind_proxy() as (_, proxy):
        reader, writer = await connect(proxy)
        writer.write(b"half a li")
        assert await read_exactly(reader, 9) == b"half a li"
        injected = asyncio.create_task(proxy.inject(b"BAD\r\n", TO_CLIENT, boundary=(b"\n",)))
        await asyncio.sleep(QUIET)
        assert not injected.done()  # not inside the line
        writer.write(b"ne\r\n")
        await injected
        assert await read_exactly(reader, 9) == b"ne\r\nBAD\r\n"
        writer.close()


async def test_forwarded_returns_after_the_next_bytes_that_way():
    async with echo_behind_proxy() as (_, proxy):
        reader, writer = await connect(proxy)
        writer.write(b"a")
        await read_exactly(reader, 1)
        seen = asyncio.create_task(proxy.forwarded(TO_SERVER))
        await asyncio.sleep(QUIET)
        assert not seen.done()  # nothing was sent since
        writer.write(b"b")
        await asyncio.wait_for(seen, 2.0)
        assert proxy.counters.forwarded[TO_SERVER] == 2
        seen = asyncio.create_task(proxy.forwarded(TO_SERVER, lambda chunk: b"!" in chunk))
        writer.write(b"c")
        await read_exactly(reader, 2)
        assert not seen.done()  # not what it waits for
        writer.write(b"!")
        await asyncio.wait_for(seen, 2.0)
        writer.close()
