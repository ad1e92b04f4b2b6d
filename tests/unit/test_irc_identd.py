"""The bridge's identd (RFC 1413): a connection's own ident, nothing for anyone else, one
listener for every kind of user connection."""

import asyncio
import contextlib

from bridge.demo.servers import free_port
from bridge.irc import identd as identd_module
from bridge.irc.identd import Identd, answer, ports


def portal(here, there):
    return "x93c56f440" if (here, there) == (51234, 6667) else None


def plumbed(here, there):
    return "x0a1b2c3d4" if (here, there) == (40000, 6697) else None


def test_answers():
    assert ports(b"51234 , 6667\r\n") == ports(b"51234,6667\n") == (51234, 6667)
    assert answer((51234, 6667), "x93c56f440") == b"51234 , 6667 : USERID : UNIX : x93c56f440\r\n"
    assert answer((51235, 6667), None) == b"51235 , 6667 : ERROR : NO-USER\r\n"
    for bad in (b"hello\r\n", b"0 , 6667\r\n", b"51234 , 70000\r\n", b"51234\r\n"):
        assert ports(bad) is None, bad
    assert answer(None, None) == b"0 , 0 : ERROR : INVALID-PORT\r\n"


async def ask(port: int, query: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(query)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def running(identd: Identd):
    task = asyncio.create_task(identd.run())
    try:
        for _ in range(100):  # listening within a second
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", identd.port)
                writer.close()
                break
            await asyncio.sleep(0.01)
        yield identd
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_one_listener_answers_for_portal_and_plumbed_connections_alike(monkeypatch):
    monkeypatch.setattr(identd_module, "KNOWN_WITHIN", 0.2)
    identd = Identd("127.0.0.1", free_port())
    identd.add(portal)
    identd.add(plumbed)
    async with running(identd):
        assert await ask(identd.port, b"51234 , 6667\r\n") == b"51234 , 6667 : USERID : UNIX : x93c56f440\r\n"
        assert await ask(identd.port, b"40000 , 6697\r\n") == b"40000 , 6697 : USERID : UNIX : x0a1b2c3d4\r\n"
        # a pair is one connection's: the same local port to another server port is nobody's
        assert await ask(identd.port, b"40000 , 6667\r\n") == b"40000 , 6667 : ERROR : NO-USER\r\n"
        identd.discard(plumbed)  # its network closed (a reload): its connections are nobody's
        assert await ask(identd.port, b"40000 , 6697\r\n") == b"40000 , 6697 : ERROR : NO-USER\r\n"
        assert await ask(identd.port, b"51234 , 6667\r\n") == b"51234 , 6667 : USERID : UNIX : x93c56f440\r\n"


async def test_one_query_per_connection_and_no_endless_line():
    identd = Identd("127.0.0.1", free_port())
    identd.add(portal)
    async with running(identd):
        reader, writer = await asyncio.open_connection("127.0.0.1", identd.port)
        writer.write(b"51234 , 6667\r\n51234 , 6667\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b"51234 , 6667 : USERID : UNIX : x93c56f440\r\n"
        assert await ask(identd.port, b"1" * 200) == b""  # no line end within the limit: closed unanswered


async def test_a_port_in_use_is_logged_and_tried_again_while_the_bridge_goes_on(monkeypatch):
    import structlog.testing
    port = free_port()
    taken = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    identd = Identd("127.0.0.1", port)
    identd.add(portal)
    monkeypatch.setattr("bridge.core.listen.Backoff", lambda **_: _Quick())
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(identd.run())
        await asyncio.sleep(0.1)
        assert [e["event"] for e in logs if e["log_level"] == "error"][:1] == ["identd_listen_failed"]
        taken.close()
        await taken.wait_closed()
        try:
            for _ in range(100):
                if any(e["event"] == "identd_listening" for e in logs):
                    break
                await asyncio.sleep(0.05)
            assert await ask(port, b"51234 , 6667\r\n") == b"51234 , 6667 : USERID : UNIX : x93c56f440\r\n"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_connection_asked_about_before_its_connect_returned_gets_its_ident():
    """A server asks as soon as it accepts the connection, which may be before the bridge's
    side of the connect returned (seen on uvloop: NO-USER, and InspIRCd's ~ident)."""
    known = {}
    identd = Identd("127.0.0.1", free_port())
    identd.add(lambda here, there: known.get((here, there)))
    async with running(identd):
        asking = asyncio.create_task(ask(identd.port, b"40000 , 6667\r\n"))
        await asyncio.sleep(0.3)
        known[(40000, 6667)] = "x1f2e3d4c"
        assert await asking == b"40000 , 6667 : USERID : UNIX : x1f2e3d4c\r\n"


class _Quick:
    async def wait(self) -> None:
        await asyncio.sleep(0.05)
