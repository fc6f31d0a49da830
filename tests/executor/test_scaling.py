"""Autoscaling: grow up to max_workers on demand, shrink back after idle_timeout, within a
memory budget."""

from __future__ import annotations

from .conftest import Harness, eventually, stop_and_check, value


async def test_the_pool_grows_on_demand_and_shrinks_when_idle() -> None:
    harness = Harness(workers=1, max_workers=3, idle_timeout=0.3)
    await harness.pool.start()
    pool = harness.pool
    try:
        first = harness.submit("sleep", 0.5)
        assert pool.idle == 0
        assert pool.grow(5) == 2  # up to max_workers, not to what was asked
        assert pool.grow(5) == 0  # the two starting count already
        await eventually(lambda: pool.size == 3 and pool.idle == 2, what="two more workers")
        more = [harness.submit("sleep", 0.2) for _ in range(2)]
        assert {value(await harness.outcome(aid)) for aid in [first, *more]} == {"slept"}
        await eventually(lambda: pool.size == 1 and pool.target == 1, what="a shrink to 1")
        await harness.full()
    finally:
        await stop_and_check(harness)


async def test_the_memory_budget_stops_growth() -> None:
    harness = Harness(workers=1, max_workers=4, memory_budget=1 << 20)  # less than one worker
    await harness.pool.start()
    try:
        harness.submit("sleep", 0.2)
        assert harness.pool.grow(3) == 0
        assert harness.pool.target == 1
    finally:
        await stop_and_check(harness)


async def test_a_worker_past_max_worker_rss_is_replaced_after_its_attempt() -> None:
    harness = Harness(workers=1, max_worker_rss=1 << 20)  # every worker is bigger than 1 MiB
    await harness.pool.start()
    try:
        first = value(await harness.run("pid"))
        await harness.full()
        second = value(await harness.run("pid"))
        assert first != second
    finally:
        await stop_and_check(harness)
