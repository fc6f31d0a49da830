"""A worker reports a function's ``@asynctask.task`` options once, before its first attempt
(the ``declare`` frame), and the pool can give a running attempt the timeout they declare
(``WorkerPool.retime``): how the daemon applies them to a task submitted by name."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.executor.conftest import Harness, eventually, stop_and_check


@pytest.fixture
async def one_worker() -> AsyncIterator[Harness]:
    started = Harness(workers=1)
    await started.pool.start()
    yield started
    await stop_and_check(started)


async def test_a_worker_declares_a_functions_options_once(one_worker: Harness) -> None:
    harness = one_worker
    first = await harness.run("declared_sleep", 0)
    assert first.ok
    aid = max(harness.declared)
    assert harness.declared[aid] == {"retries": 0, "timeout": 1.0, "queue": "q"}
    again = await harness.run("declared_sleep", 0)
    assert again.ok
    assert max(harness.declared) == aid  # the same worker does not say it again
    plain = await harness.run("add", 1, 2)  # a plain function declares nothing
    assert plain.ok
    assert any(options == {} for options in harness.declared.values())


async def test_retime_gives_a_running_attempt_its_declared_timeout(harness: Harness) -> None:
    aid = harness.submit("declared_sleep", 30, timeout=600)
    await eventually(lambda: aid in harness.declared, what="the declare frame")
    harness.pool.retime(aid, 0.3, started=True)
    outcome = await harness.outcome(aid)
    assert outcome.error is not None
    assert outcome.error["kind"] == "timeout"
    assert outcome.error["message"] == "attempt exceeded its timeout of 0.3s"
    await harness.full()


async def test_retime_arms_a_timeout_for_a_started_attempt_that_had_none(harness: Harness) -> None:
    aid = harness.submit("declared_sleep", 30)
    await eventually(lambda: aid in harness.declared, what="the declare frame")
    harness.pool.retime(aid, 0.3, started=True)
    outcome = await harness.outcome(aid)
    assert outcome.error is not None
    assert outcome.error["kind"] == "timeout"
    await harness.full()
