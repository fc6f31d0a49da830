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


async def test_a_worker_cannot_declare_for_an_attempt_that_is_not_its_own(
    harness: Harness,
) -> None:
    """The pool passes a declare on only for an attempt the sending worker runs: task code
    writing frames cannot speak for another worker's attempt (another tenant's, say)."""
    victim = harness.submit("declared_sleep", 1)
    await eventually(lambda: victim in harness.declared, what="the victim's own declare")
    before = dict(harness.declared)
    forged = await harness.run("forge_declare", victim)
    assert forged.ok
    assert harness.declared[victim] == before[victim]  # unchanged
    assert (await harness.outcome(victim)).ok
    await harness.full()
