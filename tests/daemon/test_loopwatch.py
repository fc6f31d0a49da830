"""``LoopWatch``: the daemon's own measure of how long its event loop was held."""

from __future__ import annotations

import asyncio
import time

from asynctask.daemon.readout import LoopWatch


async def _busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:  # holds the loop, on the CPU
        pass


async def test_a_callback_that_holds_the_loop_is_measured_as_held() -> None:
    watch = LoopWatch()
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(0.05)
    await _busy(0.08)
    await asyncio.sleep(0.05)
    task.cancel()
    figures = watch.maxima()
    assert figures["held_max_ms"] >= 60
    assert figures["late_max_ms"] >= figures["held_max_ms"]
    assert any(held >= 60 for _, held, _ in figures["slow"])


async def test_waiting_is_not_holding() -> None:
    """Blocking in a way that uses no CPU of the loop thread (here a sleep; for the daemon, the
    machine's other processes running) makes the timer late but does not count as held."""
    watch = LoopWatch()
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(0.05)
    time.sleep(0.08)  # noqa: ASYNC251 - the point: the loop is late, its thread not running
    await asyncio.sleep(0.05)
    task.cancel()
    figures = watch.maxima()
    assert figures["late_max_ms"] >= 60
    assert figures["held_max_ms"] < 30
