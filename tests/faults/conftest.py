"""The fault suite: the bridge against real servers, with faults injected on every link.
Select it with `-m faults` (or leave it out with `-m "not faults"`)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: the fault suite (tests/faults): links broken, servers killed, "
                   "under numbered message streams")


def pytest_terminal_summary(terminalreporter) -> None:
    """The result line of every scenario that ran (also when its output was captured)."""
    from tests.faults.harness import RESULTS
    if RESULTS:
        terminalreporter.section("fault scenarios")
        for line in RESULTS:
            terminalreporter.write_line(line)
