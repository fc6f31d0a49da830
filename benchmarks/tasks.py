"""Benchmark task functions (imported by workers as benchmarks.tasks)."""

from __future__ import annotations

import time


def noop() -> None:
    return None


def stamp() -> float:
    """When the attempt started, by the worker's clock (W3 latency)."""
    return time.time()
