"""The fault suite: the bridge against real servers, with faults injected on every link.
Select it with `-m faults` (or leave it out with `-m "not faults"`)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: the fault suite (tests/faults): links broken, servers killed, "
                   "under numbered message streams")
