"""Worker hooks (``asynctask/hooks.py``) in real workers: when each runs, in which thread, and
what a hook that raises does to the attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import asynctask
from asynctask import hooks
from asynctask.executor.pool import Outcome

from .conftest import DEFAULT_CONTEXT, Harness, stop_and_check, value

HOOKED = "tests.executor.hooked_tasks"


def context(**labels: str) -> dict[str, Any]:
    return {**DEFAULT_CONTEXT, "labels": labels}


def strip_ids(seen: list[Any]) -> list[Any]:
    """The events without the thread identities the hooks and tasks record."""
    stripped: list[Any] = []
    for event in seen:
        if isinstance(event, list) and event[0] == "before":
            event = event[:3]
        elif isinstance(event, list) and event[0] == "task":
            event = event[:1]
        stripped.append(event)
    return stripped


@pytest.fixture
async def one_worker() -> AsyncIterator[Harness]:
    started = Harness(workers=1)
    await started.pool.start()
    yield started
    await stop_and_check(started)


async def run_and_events(
    harness: Harness, name: str, *args: Any, **labels: str
) -> tuple[Outcome, list[Any]]:
    """Run ``name`` and then ask the worker for its events, without the asking's own (the
    probe task's hook events)."""
    outcome = await harness.run(f"{HOOKED}:{name}", *args, context=context(**labels))
    probe = {**DEFAULT_CONTEXT, "id": "probe"}
    seen = value(await harness.run(f"{HOOKED}:events", context=probe))
    return outcome, [e for e in seen if not (isinstance(e, list) and e[1:2] == ["probe"])]


async def test_hooks_run_in_order_around_each_attempt_and_start_once(one_worker: Harness) -> None:
    outcome, seen = await run_and_events(one_worker, "add", 2, 3)
    assert value(outcome) == 5
    assert strip_ids(seen) == [
        "start",  # registered by the import the first attempt caused; run right after it
        ["before", "task-1", 1],
        ["task"],
        ["after", "task-1", None],
        ["after_second", "task-1"],
    ]
    outcome, seen = await run_and_events(one_worker, "add", 1, 1)
    assert value(outcome) == 2
    assert strip_ids(seen) == [  # no second "start"
        ["before", "task-1", 1],
        ["task"],
        ["after", "task-1", None],
        ["after_second", "task-1"],
    ]


async def test_hooks_run_around_an_async_task(one_worker: Harness) -> None:
    outcome, seen = await run_and_events(one_worker, "async_add", 2, 2)
    assert value(outcome) == 4
    assert strip_ids(seen) == [
        "start",
        ["before", "task-1", 1],
        ["task"],
        ["after", "task-1", None],
        ["after_second", "task-1"],
    ]


async def test_after_attempt_sees_the_tasks_error_and_a_bad_result(one_worker: Harness) -> None:
    outcome, seen = await run_and_events(one_worker, "boom")
    assert outcome.error is not None
    assert outcome.error["kind"] == "exception"
    assert ["after", "task-1", "ValueError"] in seen
    outcome, seen = await run_and_events(one_worker, "unencodable")
    assert outcome.error is not None
    assert outcome.error["kind"] == "bad_result"
    assert ["after", "task-1", "ValueEncodingError"] in seen


async def test_before_attempt_raising_fails_the_attempt_with_kind_hook(one_worker: Harness) -> None:
    outcome, seen = await run_and_events(one_worker, "add", 1, 2, before="raise")
    error = outcome.error
    assert error is not None
    assert error["kind"] == "hook"
    assert error["type"] == "RuntimeError"
    assert error["message"] == (f"before_attempt hook {HOOKED}:before raised: no database")
    assert "raise RuntimeError" in error["traceback"]
    assert ["task"] not in strip_ids(seen)  # the task function never ran
    # The after hooks still ran, with the hook's error, so what was opened is closed.
    assert ["after", "task-1", "RuntimeError"] in seen
    assert ["after_second", "task-1"] in seen


@pytest.mark.parametrize(("action", "kind"), [("fail", "fail"), ("throttle", "throttled")])
async def test_fail_and_throttled_from_a_hook_keep_their_meaning(
    one_worker: Harness, action: str, kind: str
) -> None:
    outcome, _ = await run_and_events(one_worker, "add", 1, 2, before=action)
    assert outcome.error is not None
    assert outcome.error["kind"] == kind


async def test_after_attempt_raising_is_logged_and_the_outcome_stands(one_worker: Harness) -> None:
    aid = one_worker.submit(f"{HOOKED}:add", 2, 2, context=context(after="raise"))
    outcome = await one_worker.outcome(aid)
    assert value(outcome) == 4
    stderr = "".join(data for stream, data in one_worker.logs[aid] if stream == "stderr")
    assert f"after_attempt hook {HOOKED}:after raised KeyError: 'cleanup broke'" in stderr
    assert "(the attempt's outcome stands)" in stderr
    assert 'raise KeyError("cleanup broke")' in stderr  # its traceback too
    _, seen = await run_and_events(one_worker, "add", 0, 0)
    assert ["after_second", "task-1"] in seen  # the next after hook ran despite it


async def test_a_failing_worker_start_hook_fails_the_attempt_and_is_tried_again(
    one_worker: Harness,
) -> None:
    first = await one_worker.run("tests.executor.hooked_start_fails:calls")
    error = first.error
    assert error is not None
    assert error["kind"] == "hook"
    assert error["type"] == "ConnectionError"
    assert error["message"] == (
        "on_worker_start hook tests.executor.hooked_start_fails:flaky_setup raised: "
        "database not up yet"
    )
    # The same worker: the hook runs again before the next attempt, then never again.
    second = await one_worker.run("tests.executor.hooked_start_fails:calls")
    assert second.pid == first.pid
    assert value(second) == ["setup", "setup"]
    assert value(await one_worker.run("tests.executor.hooked_start_fails:calls")) == [
        "setup",
        "setup",
    ]


async def test_hooks_run_in_the_thread_of_a_sync_task_on_a_concurrent_worker() -> None:
    harness = Harness(workers=1, concurrency=2)
    await harness.pool.start()
    try:
        outcome, seen = await run_and_events(harness, "add", 1, 1)
        assert value(outcome) == 2
        before = next(e for e in seen if isinstance(e, list) and e[0] == "before")
        task = next(e for e in seen if isinstance(e, list) and e[0] == "task")
        assert before[3] == task[1]  # one thread for the hook and the task it wraps
        outcome, seen = await run_and_events(harness, "async_add", 1, 1)
        assert value(outcome) == 2
        assert ["after", "task-1", None] in seen
    finally:
        await stop_and_check(harness)


def test_registration_checks_and_returns_the_function() -> None:
    def plain(ctx: asynctask.TaskContext) -> None:
        pass

    try:
        assert asynctask.before_attempt(plain) is plain
        assert asynctask.before_attempt(plain) is plain
        assert hooks.REGISTRY.before.count(plain) == 1  # registered once
    finally:
        hooks.REGISTRY.before.remove(plain)

    async def coroutine_hook() -> None:
        pass

    with pytest.raises(TypeError, match="not an async one"):
        asynctask.on_worker_start(coroutine_hook)
    with pytest.raises(TypeError, match="takes a function"):
        asynctask.after_attempt(42)  # type: ignore[arg-type]
