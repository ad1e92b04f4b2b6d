"""Fault scenarios for a hot standby: two bridge processes with one config on one PostgreSQL
store (`store.standby: true`), each reaching the database through a `FaultProxy` of its own,
while numbered messages flow both ways (counted as in tests/faults/harness.py).

    async with StandbyRun("leader SIGKILL", tmp_path, postgres_server) as run:
        await run.kill_leader()            # or: await run.cut_leader_database()
        result = await run.finish()

Instance "a" is started first and leads; "b" is started once "a" leads, and stands by. The
fault starts and ends at the kill (or the cut): the standby has to take over by itself, so
"relaying again" is counted from that moment.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from tests.faults.harness import FaultRun, LogEvents, SubprocessBridge
from tests.faults.proxy import FaultProxy
from tests.integration.clients import wait_until

_databases = itertools.count(1)


class InstanceEvents(LogEvents):
    """One instance's log events, each also added to the run's (whose checks span both)."""

    def __init__(self, run_events: LogEvents) -> None:
        super().__init__()
        self.run_events = run_events

    def add(self, event: dict) -> None:
        super().add(event)
        self.run_events.add(event)


@dataclass
class Instance:
    name: str
    process: SubprocessBridge
    events: InstanceEvents
    database: FaultProxy  # its link to PostgreSQL

    def saw(self, event: str, after: float = 0.0) -> float | None:
        """When it first logged `event` after `after` (test time), if it did."""
        return next((at for at, e in self.events.events if at >= after and e.get("event") == event), None)

    async def wait_for(self, event: str, timeout: float, after: float = 0.0) -> float:
        await wait_until(lambda: self.saw(event, after) is not None, timeout,
                         f"instance {self.name} to log {event}")
        return self.saw(event, after)


class StandbyRun(FaultRun):
    def __init__(self, scenario: str, tmp_path: Path, postgres) -> None:
        super().__init__(scenario, tmp_path, bridge="subprocess")
        self.postgres = postgres
        self.instances: list[Instance] = []

    async def _start_bridge(self, config: str) -> None:
        database = f"standby{next(_databases)}"
        self.postgres.create_database(database)
        sqlite = f'store: {{url: "sqlite://{self.tmp}/bridge.db"}}'
        assert sqlite in config
        for name, first in (("a", "lead_taken"), ("b", "standing_by")):
            proxy = FaultProxy("127.0.0.1", self.postgres.port, name=f"database {name}")
            await proxy.start()
            self._stack.push_async_callback(proxy.close)
            url = f"postgresql://bridge@127.0.0.1:{proxy.port}/{database}"
            workdir = self.tmp / name
            workdir.mkdir()
            events = InstanceEvents(self.events)
            process = SubprocessBridge(config.replace(sqlite, f'store: {{url: "{url}", standby: true}}'),
                                       events, workdir)
            instance = Instance(name, process, events, proxy)
            self.instances.append(instance)
            await process.start()
            self._stack.push_async_callback(process.stop)
            await instance.wait_for(first, 30.0)

    async def kill_leader(self) -> None:
        """SIGKILL the leading process (as a lost machine whose connections the kernel closes)."""
        self._start_fault("bridge")
        await self.instances[0].process.kill()
        self._end_fault()

    async def cut_leader_database(self) -> None:
        """The leader's every connection to PostgreSQL ends with an RST, and new ones are refused
        (the server forgets its sessions: the lock is free at once)."""
        self._start_fault("bridge")
        self.instances[0].database.refuse()
        self.instances[0].database.reset()
        self._end_fault()

    @property
    def fault_start(self) -> float:
        return self.fault[1] if self.fault else time.time()
