"""structlog setup: one event per line, JSON lines when not on a terminal."""

from __future__ import annotations

import logging
import sys

import structlog


#: Each logger bound once, on first use (speed); the tests turn it off, since a cached
#: logger never again reaches `structlog.testing.capture_logs`.
CACHE_LOGGERS = True


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    """Route structlog (and stdlib logging, e.g. slixmpp's) to stderr."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = logging.getLevelName(level.upper())
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *_: _StderrLogger(),
        cache_logger_on_first_use=CACHE_LOGGERS,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries are noisy at info; their warnings still show.
    root.setLevel(max(numeric, logging.WARNING) if numeric < logging.WARNING else numeric)


class _StderrLogger:
    """Writes to whatever `sys.stderr` is now (tests swap it), one line per event."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


class _StderrHandler(logging.Handler):
    """The stdlib side of the same: libraries' log records, through structlog's renderer."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)
