"""Daemon log set-up: one line per event on stderr, with UTC timestamps."""

from __future__ import annotations

import logging
import sys
import time


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime(datefmt or "%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _UtcFormatter(
            "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
        )
    )
    root = logging.getLogger("asynctask")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
