"""The portal's identd (RFC 1413): a connection's own ident, nothing for anyone else."""

import asyncio

from bridge.demo.servers import free_port
from bridge.irc.identd import answer, serve


def lookup(here, there):
    return "x93c56f440" if (here, there) == (51234, 6667) else None


def test_answers():
    assert answer(b"51234 , 6667\r\n", lookup) == b"51234 , 6667 : USERID : UNIX : x93c56f440\r\n"
    assert answer(b"51234,6667\n", lookup) == b"51234 , 6667 : USERID : UNIX : x93c56f440\r\n"
    assert answer(b"51235 , 6667\r\n", lookup) == b"51235 , 6667 : ERROR : NO-USER\r\n"
    for bad in (b"hello\r\n", b"0 , 6667\r\n", b"51234 , 70000\r\n", b"51234\r\n"):
        assert answer(bad, lookup) == b"0 , 0 : ERROR : INVALID-PORT\r\n", bad


async def test_one_query_per_connection_and_no_endless_line():
    port = free_port()
    server = await serve("127.0.0.1", port, lookup)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"51234 , 6667\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b"51234 , 6667 : USERID : UNIX : x93c56f440\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"1" * 200)  # no line end within the limit: closed without an answer
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        server.close()
