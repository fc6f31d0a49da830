"""The scheduler's promises, checked over arbitrary inputs with Hypothesis (no event loop)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Finished, Persist, Scheduler
from asynctask.model import ErrorKind, TaskState, error_dict
from tests.core.helpers import make_task


def scheduler(seed: int = 0) -> Scheduler:
    return Scheduler(RetryPolicy(base=0.5, cap=60.0), random.Random(seed))


@given(st.lists(st.integers(0, 9), min_size=1, max_size=200), st.integers(1, 50))
def test_dispatch_is_priority_then_fifo_and_never_exceeds_free_slots(priorities, slots):
    core = scheduler()
    tasks = [make_task(p) for p in priorities]
    for task in tasks:
        core.add(task)
    dispatched = []
    while True:
        actions = core.dispatch(now=1.0, free_slots=slots)
        assert len(actions) <= slots
        if not actions:
            break
        batch = [a.task for a in actions if isinstance(a, Dispatch)]
        assert all(t.state is TaskState.RUNNING and t.attempts == 1 for t in batch)
        dispatched += batch
        for task in batch:  # free the slot: a function's concurrency is capped by capacity
            core.succeeded(task, None, 1.0)
    expected = sorted(tasks, key=lambda t: (-t.priority, t.seq))
    assert dispatched == expected
    assert core.queued == 0


@given(st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=100), st.floats(0, 1000))
def test_timers_fire_exactly_the_due_tasks_and_none_early(dues, now):
    core = scheduler()
    tasks = [make_task(state=TaskState.SCHEDULED, due_at=d) for d in dues]
    for task in tasks:
        core.add(task)
    actions = core.dispatch(now=now, free_slots=0)
    promoted = {a.task.seq for a in actions if isinstance(a, Persist)}
    assert promoted == {t.seq for t in tasks if t.due_at is None}  # promoted tasks lose due_at
    assert all(t.state is TaskState.QUEUED for t in tasks if t.seq in promoted)
    assert all(d <= now for d, t in zip(dues, tasks, strict=True) if t.seq in promoted)
    assert all(d > now for d, t in zip(dues, tasks, strict=True) if t.seq not in promoted)
    remaining = [d for d in dues if d > now]
    assert core.next_wakeup() == (min(remaining) if remaining else None)


@settings(max_examples=200)
@given(st.integers(0, 10), st.lists(st.sampled_from(list(ErrorKind)), min_size=1, max_size=30))
def test_a_task_makes_at_most_retries_plus_one_attempts(retries, kinds):
    core = scheduler()
    task = make_task(retries=retries)
    core.add(task)
    now = 0.0
    attempts = 0
    for kind in kinds:
        now += 1000.0  # past any backoff
        dispatched = [a for a in core.dispatch(now, 1) if isinstance(a, Dispatch)]
        if not dispatched:
            break
        attempts += 1
        outcome = core.attempt_failed(task, error_dict(kind, "E", "boom"), now)
        if isinstance(outcome, Finished):
            assert task.state is TaskState.FAILED
            break
        assert task.state is TaskState.SCHEDULED
        assert now <= task.due_at <= now + 60.0
    assert attempts <= retries + 1
    assert task.attempts == attempts


def test_fail_kind_is_not_retried_and_exception_is():
    core = scheduler()
    doomed, flaky = make_task(), make_task()
    core.add(doomed)
    core.add(flaky)
    core.dispatch(0.0, 2)
    assert isinstance(
        core.attempt_failed(doomed, error_dict(ErrorKind.FAIL, "Fail", "no"), 1.0), Finished
    )
    assert doomed.state is TaskState.FAILED
    assert doomed.finished_at == 1.0
    again = core.attempt_failed(flaky, error_dict(ErrorKind.EXCEPTION, "ValueError", "x"), 1.0)
    assert isinstance(again, Persist)
    assert flaky.state is TaskState.SCHEDULED


def test_throttled_retry_after_is_honoured():
    core = scheduler()
    task = make_task()
    core.add(task)
    core.dispatch(0.0, 1)
    error = {**error_dict(ErrorKind.THROTTLED, "Throttled", "slow down"), "retry_after": 120.0}
    core.attempt_failed(task, error, 10.0)
    assert task.due_at == pytest.approx(130.0)


def test_expired_task_never_runs():
    core = scheduler()
    stale, fresh = make_task(expires_at=5.0), make_task(expires_at=50.0)
    core.add(stale)
    core.add(fresh)
    actions = core.dispatch(now=10.0, free_slots=1)
    assert [type(a) for a in actions] == [Finished, Dispatch]
    assert stale.state is TaskState.EXPIRED
    assert fresh.state is TaskState.RUNNING


def test_interrupted_attempt_counts_and_requeues_until_retries_run_out():
    core = scheduler()
    task = make_task(retries=1)
    core.add(task)
    core.dispatch(0.0, 1)
    assert isinstance(core.interrupted(task, "daemon died", 1.0), Persist)
    assert task.state is TaskState.QUEUED
    assert task.attempts == 1
    core.dispatch(2.0, 1)
    assert isinstance(core.interrupted(task, "daemon died", 3.0), Finished)
    assert task.state is TaskState.FAILED
    assert task.error["kind"] == "interrupted"


def test_removed_tasks_are_skipped_lazily():
    core = scheduler()
    gone, kept = make_task(9), make_task(1)
    later = make_task(state=TaskState.SCHEDULED, due_at=100.0)
    for task in (gone, kept, later):
        core.add(task)
    core.remove(gone, TaskState.CANCELLED, 1.0)
    core.remove(later, TaskState.CANCELLED, 1.0)
    assert repr(core) == "<Scheduler queued=1 scheduled=0 running=0 tenants=1 eligible=1>"
    actions = core.dispatch(200.0, 5)
    assert [a.task for a in actions] == [kept]
    assert core.next_wakeup() is None


def test_cancel_ends_queued_scheduled_and_running_tasks_and_frees_the_slot():
    core = scheduler()
    queued, later, running = (
        make_task(),
        make_task(state=TaskState.SCHEDULED, due_at=50.0),
        make_task(),
    )
    for task in (running, queued, later):
        core.add(task)
    (dispatched,) = [a.task for a in core.dispatch(1.0, 1) if isinstance(a, Dispatch)]
    assert dispatched is running
    for task in (queued, later, running):
        finished = core.cancel(task, 2.0)
        assert isinstance(finished, Finished)
        assert task.state is TaskState.CANCELLED
        assert task.finished_at == 2.0
    assert (core.queued, core.scheduled, core.running) == (0, 0, 0)
    assert core.next_wakeup() is None
    fresh = make_task()
    core.add(fresh)
    assert [a.task for a in core.dispatch(3.0, 1) if isinstance(a, Dispatch)] == [fresh]


def test_a_task_expires_where_it_waits_at_its_deadline():
    core = scheduler()
    core.pause(("tenant", "default", ""))  # it can never reach a worker
    doomed = make_task(expires_at=5.0)
    later = make_task(state=TaskState.SCHEDULED, due_at=50.0, expires_at=8.0)
    keeper = make_task()
    for task in (doomed, later, keeper):
        core.add(task, 0.0)
    assert core.next_wakeup() == 5.0
    assert core.dispatch(4.9, 4) == []
    (first,) = core.dispatch(5.0, 4)
    assert isinstance(first, Finished)
    assert first.task is doomed
    assert doomed.state is TaskState.EXPIRED
    assert core.next_wakeup() == 8.0
    (second,) = core.dispatch(9.0, 4)
    assert second.task is later
    assert later.state is TaskState.EXPIRED
    assert (core.queued, core.scheduled) == (1, 0)  # the backlog holds only the live one
    assert core.tenant("default").backlog == 1
