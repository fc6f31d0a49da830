"""Workers that run several attempts at once (``concurrency > 1``): async functions on the
worker's loop, sync ones on threads, and stopping one attempt without its neighbours."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .conftest import Harness, alive, eventually, stop_and_check, value


@pytest.fixture
async def shared() -> AsyncIterator[Harness]:
    started = Harness(workers=1, concurrency=4)
    await started.pool.start()
    yield started
    await stop_and_check(started)


def ctx(task_id: str) -> dict[str, object]:
    return {"id": task_id, "tenant": "t", "attempt": 1, "labels": {}}


def overlap(windows: list[list[float]]) -> bool:
    """Whether every window was open at one common instant."""
    return max(w[0] for w in windows) < min(w[1] for w in windows)


@pytest.mark.parametrize("name", ["async_window", "window"])
async def test_attempts_overlap_in_one_worker_each_with_its_own_context(
    shared: Harness, name: str
) -> None:
    pool = shared.pool
    assert (pool.size, pool.idle) == (1, 4)
    aids = [shared.submit(name, 0.4, context=ctx(f"t{i}")) for i in range(4)]
    assert (pool.idle, pool.busy) == (0, 4)
    with pytest.raises(RuntimeError, match="no idle worker"):
        shared.submit(name, 0.1)
    windows = [value(await shared.outcome(aid)) for aid in aids]
    assert overlap(windows)
    assert len({w[2] for w in windows}) == 1  # one process ran them all
    assert [w[3] for w in windows] == ["t0", "t1", "t2", "t3"]
    await shared.full()
    assert pool.idle == 4


async def test_a_timed_out_async_attempt_is_cancelled_and_spares_its_neighbour(
    shared: Harness,
) -> None:
    neighbour = shared.submit("async_window", 0.6)
    worker = shared.pool.pid_of(neighbour)
    slow = shared.submit("async_window", 30, timeout=0.2)
    outcome = await shared.outcome(slow)
    assert outcome.error is not None
    assert (outcome.error["kind"], outcome.pid) == ("timeout", worker)
    assert value(await shared.outcome(neighbour))[2] == worker
    assert worker is not None
    assert alive(worker)
    await shared.full()


async def test_a_timed_out_sync_attempt_kills_its_worker_and_interrupts_its_neighbour(
    shared: Harness,
) -> None:
    neighbour = shared.submit("window", 30)
    worker = shared.pool.pid_of(neighbour)
    assert worker is not None
    stuck = shared.submit("window", 30, timeout=0.2)
    timed_out = await shared.outcome(stuck)
    assert timed_out.error is not None
    assert timed_out.error["kind"] == "timeout"
    bystander = await shared.outcome(neighbour)
    assert bystander.error is not None
    assert bystander.error["kind"] == "interrupted"
    assert f"killed to stop attempt {stuck}" in bystander.error["message"]
    await eventually(lambda: not alive(worker), what="the worker to be killed")
    await shared.full()  # replaced


async def test_cancel_stops_one_async_attempt_at_once(shared: Harness) -> None:
    neighbour = shared.submit("async_window", 0.5)
    worker = shared.pool.pid_of(neighbour)
    cancelled = shared.submit("async_window", 30)
    assert shared.pool.cancel(cancelled)
    outcome = await shared.outcome(cancelled)
    assert outcome.error is not None
    assert outcome.error["type"] == "Cancelled"
    assert shared.pool.busy == 1
    assert value(await shared.outcome(neighbour))[2] == worker  # it ran on, in the same worker
    await shared.full()


async def test_errors_and_a_dying_worker_are_reported_per_attempt(shared: Harness) -> None:
    failing = shared.submit("boom", "bad")
    assert (await shared.outcome(failing)).error["kind"] == "exception"  # type: ignore[index]
    survivor = shared.submit("window", 30)
    dying = shared.submit("hard_exit", 3)
    for aid in (survivor, dying):
        outcome = await shared.outcome(aid)
        assert outcome.error is not None
        assert outcome.error["kind"] == "worker_died"
    await shared.full()


async def test_a_recycled_worker_finishes_its_attempts_before_it_goes() -> None:
    harness = Harness(workers=1, concurrency=2, max_tasks_per_worker=1)
    await harness.pool.start()
    try:
        first = harness.submit("async_window", 0.3)
        second = harness.submit("async_window", 0.5)
        pid = value(await harness.outcome(first))[2]
        assert harness.pool.size == 1  # a replacement counts; the old one only drains
        assert value(await harness.outcome(second))[2] == pid  # not cut short
        await eventually(lambda: not alive(pid), what="the recycled worker to exit")
        await harness.full()
    finally:
        await stop_and_check(harness)


async def test_output_of_concurrent_attempts_is_kept_apart(shared: Harness) -> None:
    aids = {tag: shared.submit("async_chatty", tag, 0.3) for tag in ("a", "b")}
    aids["c"] = shared.submit("chatty", "c", 0.3)  # a sync one, on a thread
    for tag, aid in aids.items():
        await shared.outcome(aid)
        text = "".join(data for _, data in shared.logs[aid])
        if tag == "c":
            # its own thread's print has a fresh context: that line goes to the workers' log
            lines = text.split("\n")  # logging's line is "<time> WARNING task: c warned"
            assert (lines[0], lines[1].split(" ", 2)[2], lines[2]) == (
                "c line 1",
                "WARNING task: c warned",
                "c no newline",
            )
            assert len(lines) == 3
        else:
            assert text == f"{tag} before\n{tag} after\n"
