"""What the IRC side does so that nothing is lost in silence: dead links noticed
within `ping_timeout`, relayed lines confirmed by the server and sent again after a
reconnect, stale backlogs replaced by one line, and gaps in what we heard said."""

import asyncio
import socket

import pytest

from tests.servers.scripted_ircd import ScriptedIrcd, running
from tests.unit.test_irc_scripted import joined, make_adapter


@pytest.fixture
async def ircd():
    server = await ScriptedIrcd().start()
    yield server
    await server.stop()


# Dead links


async def test_a_silent_link_is_dead_after_ping_timeout_of_silence(ircd):
    timeout = 6.0
    adapter, _ = make_adapter(ircd.port, ping_timeout=timeout)
    loop = asyncio.get_running_loop()
    async with running(adapter):
        first = await joined(ircd)
        first.silent = True  # a black hole: reads everything, answers nothing
        silent_at = loop.time()
        await first.expect("PING", timeout=timeout, after=len(first.received))
        pinged_at = loop.time()
        await asyncio.wait_for(first.closed.wait(), timeout + 3)
        dead_at = loop.time()
        await joined(ircd, 1)  # and a new connection
    assert timeout / 2 - 0.5 <= pinged_at - silent_at <= timeout / 2 + 1
    assert timeout - 1 <= dead_at - silent_at <= timeout + 1.5


async def test_a_quiet_link_that_answers_pings_stays_up(ircd):
    adapter, _ = make_adapter(ircd.port, ping_timeout=1.0)
    async with running(adapter):
        client = await joined(ircd)
        await asyncio.sleep(3.0)  # three timeouts without a word from anyone but the PONGs
        assert len(client.lines("PING")) >= 3
        assert len(ircd.clients) == 1 and not client.closed.is_set()


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="Linux socket option")
async def test_the_kernel_gives_up_on_unacknowledged_data_within_ping_timeout(ircd):
    adapter, _ = make_adapter(ircd.port, ping_timeout=20)
    async with running(adapter):
        await joined(ircd)
        sock = adapter.client.conn.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 20_000
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
