"""Logging while fuzzing: a million inputs must not print a million warnings."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import structlog


def _drop(logger, method: str, event_dict: dict):
    raise structlog.DropEvent


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """structlog drops every event (and stdlib logging below CRITICAL), until the end."""
    saved = structlog.get_config()
    structlog.configure(processors=[_drop], wrapper_class=structlog.BoundLogger,
                        logger_factory=structlog.ReturnLoggerFactory(), cache_logger_on_first_use=False)
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        structlog.configure(**saved)


class Recorder:
    """A bound logger that keeps what was logged with an exception (a handler that
    failed): `failures` holds (event, exception)."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, BaseException | None]] = []

    def bind(self, **_) -> Recorder:
        return self

    def exception(self, event: str, **_) -> None:
        self.failures.append((event, sys.exc_info()[1]))

    def __getattr__(self, method: str):
        def log(event: str, exc_info: bool = False, **_) -> None:
            if exc_info:
                self.failures.append((event, sys.exc_info()[1]))
        return log
