"""Task functions for the argument-type, result and logging end-to-end tests
(``tests/e2e/test_values.py``); workers import them as ``tests.e2e.tasks_values``."""

from __future__ import annotations

import dataclasses
import logging
import sys
from datetime import datetime
from decimal import Decimal
from typing import Any

import asynctask

log = logging.getLogger(__name__)
task_log = asynctask.task_logger(__name__ + ".tagged")


@dataclasses.dataclass(frozen=True)
class Reading:
    sensor: str
    taken: datetime
    value: Decimal
    tags: frozenset[str] = frozenset()


def typed(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """Hands its arguments back, with what the worker saw of their types."""
    seen = [type(arg).__name__ for arg in args]
    return (args, kwargs, seen)


def later(reading: Reading) -> Reading:
    """A dataclass in, a changed one out."""
    return dataclasses.replace(reading, value=reading.value * 2, tags=reading.tags | {"doubled"})


def unencodable_inside() -> dict[str, Any]:
    """A result with one value that cannot be encoded, deep inside."""
    return {"items": [1, 2, {"handle": sys.stdout}]}


def logs(count: int) -> str:
    """Logs at each level, through a plain logger and a task logger, and prints."""
    print("printed line")
    log.debug("debug line")
    log.info("info line %d", 1)
    log.warning("warning line")
    for number in range(count):
        log.info("flood %05d %s", number, "x" * 60)
    try:
        raise ValueError("with a traceback")
    except ValueError:
        log.exception("error line")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("tagged %(task_id)s %(tenant)s %(attempt)s: %(message)s")
    )
    tagged = logging.getLogger(__name__ + ".tagged")
    tagged.addHandler(handler)
    tagged.propagate = False
    try:
        task_log.info("from the adapter")
    finally:
        tagged.removeHandler(handler)
    return "logged"
