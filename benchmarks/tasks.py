"""Benchmark task functions (imported by workers as benchmarks.tasks)."""

from __future__ import annotations

import os
import time

import asynctask


def noop() -> None:
    return None


def stamp() -> float:
    """When the attempt started, by the worker's clock (W3 latency)."""
    return time.time()


def work(seconds: float) -> None:
    """A task that holds its worker for a while (I/O-like: sleeps)."""
    time.sleep(seconds)


def crash() -> None:
    """Poison: kills its worker."""
    os._exit(3)


def hang() -> None:
    """Poison: holds its worker until the timeout kills it."""
    time.sleep(3600)


async def work_async(seconds: float) -> None:
    """The async form of ``work``: waits on the worker's event loop (W4 with concurrency)."""
    import asyncio

    await asyncio.sleep(seconds)


@asynctask.task
def noop_task() -> None:
    """``noop`` as a decorated function, for ``f.submit()`` (``bench_default_client.py``)."""
    return None
