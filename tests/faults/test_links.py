"""A link of the bridge breaks under it: blackholed (a dead route) or reset, on each of its
three kinds of connection. See tests/faults/harness.py for what is counted."""

from __future__ import annotations

import pytest

from tests.faults.harness import IN_FLIGHT, IRC, SHORT_TIMEOUT, SILC, XMPP, FaultRun

pytestmark = [pytest.mark.faults, pytest.mark.timeout(150)]


async def test_component_link_blackholed_with_default_timeouts(tmp_path):
    """With the defaults (ping_timeout 25) relaying is back within 30 s of the route's return,
    5 s after the link died: a dead link noticed in about 30 s (a reconnect included)."""
    async with FaultRun("component blackhole (defaults)", tmp_path, ping_timeout=None) as run:
        await run.blackhole(XMPP, seconds=5)
        result = await run.finish()
    result.check()


async def test_irc_link_blackholed(tmp_path):
    async with FaultRun("irc blackhole", tmp_path) as run:
        await run.blackhole(IRC, seconds=SHORT_TIMEOUT + 4)
        result = await run.finish()
    result.check(in_flight=IN_FLIGHT)


async def test_silc_link_blackholed(tmp_path):
    async with FaultRun("silc blackhole", tmp_path, networks=(XMPP, IRC, SILC)) as run:
        await run.blackhole(SILC, seconds=SHORT_TIMEOUT + 4)
        result = await run.finish()
    result.check(in_flight=IN_FLIGHT)


async def test_component_link_reset(tmp_path):
    async with FaultRun("component reset", tmp_path) as run:
        await run.reset(XMPP)
        result = await run.finish()
    result.check()


async def test_irc_link_reset(tmp_path):
    async with FaultRun("irc reset", tmp_path) as run:
        await run.reset(IRC)
        result = await run.finish()
    result.check(in_flight=IN_FLIGHT)


async def test_silc_link_reset(tmp_path):
    async with FaultRun("silc reset", tmp_path, networks=(XMPP, IRC, SILC)) as run:
        await run.reset(SILC)
        result = await run.finish()
    result.check(in_flight=IN_FLIGHT)
