"""A server, or the bridge itself, is SIGKILLed and started again (same ports, same data).
See tests/faults/harness.py for what is counted."""

from __future__ import annotations

import pytest

from tests.faults.harness import IN_FLIGHT, IRC, SILC, XMPP, FaultRun

pytestmark = [pytest.mark.faults, pytest.mark.timeout(150)]


async def test_prosody_killed_and_restarted(tmp_path):
    async with FaultRun("prosody SIGKILL", tmp_path) as run:
        await run.kill_server(XMPP)
        result = await run.finish()
    result.check()


async def test_inspircd_killed_and_restarted(tmp_path):
    async with FaultRun("inspircd SIGKILL", tmp_path) as run:
        await run.kill_server(IRC)
        result = await run.finish()
    result.check(in_flight=IN_FLIGHT)


async def test_silc_server_killed_and_restarted(tmp_path):
    async with FaultRun("silc server SIGKILL", tmp_path, networks=(XMPP, IRC, SILC)) as run:
        await run.kill_server(SILC)
        result = await run.finish()
    result.check(in_flight=IN_FLIGHT)


async def test_bridge_killed_and_restarted(tmp_path):
    async with FaultRun("bridge SIGKILL", tmp_path, bridge="subprocess") as run:
        await run.kill_bridge()
        result = await run.finish()
    result.check()
