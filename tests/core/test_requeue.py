"""``Scheduler.requeue_failed``: the decision of a dead-letter retry, on the core alone.

A retry is a submit of tasks that already exist: it passes the same bounds, whole or not at
all, holds its room until the caller has stored and added the tasks, and sends each task back
with its attempt count and errors (the retry budget stays spent)."""

from __future__ import annotations

import random

import pytest

from asynctask.core.limits import SchedulerSettings, TenantLimits
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Scheduler
from asynctask.errors import SubmitThrottled, UsageError
from asynctask.model import ErrorKind, LiveTask, TaskState, error_dict
from tests.core.helpers import make_task

ERROR = error_dict(ErrorKind.EXCEPTION, "ValueError", "bad")


def core(**tenant_limits: int) -> Scheduler:
    settings = SchedulerSettings(capacity=4, tenant_defaults=TenantLimits(**tenant_limits))
    return Scheduler(RetryPolicy(base=0.5, cap=1.0), random.Random(0), settings)


def dead(scheduler: Scheduler, tenant: str = "default", now: float = 0.0) -> LiveTask:
    """A task that ran once and failed for good, as a retry reads it back from the store."""
    task = make_task(tenant=tenant, retries=0)
    scheduler.add(task, now)
    (action,) = [a for a in scheduler.dispatch(now, 1) if isinstance(a, Dispatch)]
    scheduler.attempt_failed(action.task, ERROR, now)
    assert task.state is TaskState.FAILED
    return task


def test_failed_tasks_go_back_queued_with_their_history_and_run_again() -> None:
    scheduler = core()
    tasks = [dead(scheduler), dead(scheduler, "other")]
    requeue = scheduler.requeue_failed(tasks, 5.0)
    assert requeue.tasks == tasks
    for task in tasks:
        assert task.state is TaskState.QUEUED
        assert task.finished_at is None
        assert task.attempts == 1
        assert task.error == ERROR
    size = len(tasks[0].payload)
    assert requeue.reserved == {"default": (1, size), "other": (1, size)}
    assert scheduler.tenant("default").reserved == 1
    for task in requeue.tasks:
        scheduler.add(task, 5.0)
    for tenant, (count, nbytes) in requeue.reserved.items():
        scheduler.unreserve(tenant, count, nbytes)
    assert scheduler.tenant("default").reserved == 0
    started = [a.task for a in scheduler.dispatch(6.0, 4) if isinstance(a, Dispatch)]
    assert sorted(t.seq for t in started) == sorted(t.seq for t in tasks)
    assert all(t.attempts == 2 for t in started)


def test_the_reservation_counts_against_a_concurrent_submit() -> None:
    scheduler = core(max_backlog=2)
    tasks = [dead(scheduler), dead(scheduler)]
    scheduler.requeue_failed(tasks, 1.0)
    with pytest.raises(SubmitThrottled):
        scheduler.admit("default", 1, 1.0)


def test_a_retry_over_one_tenants_backlog_is_refused_whole() -> None:
    scheduler = core(max_backlog=2)
    tasks = [dead(scheduler, "small"), *(dead(scheduler, "big") for _ in range(3))]
    with pytest.raises(SubmitThrottled):
        scheduler.requeue_failed(tasks, 1.0)
    assert all(task.state is TaskState.FAILED for task in tasks)
    assert scheduler.tenant("small").reserved == 0
    assert scheduler.tenant("big").reserved == 0


def test_a_retry_that_would_add_too_many_queues_is_a_usage_error() -> None:
    scheduler = core(max_queues=1)
    task = dead(scheduler)
    task.queue = "elsewhere"
    with pytest.raises(UsageError):
        scheduler.requeue_failed([task], 1.0)
    assert task.state is TaskState.FAILED


def test_only_failed_tasks_can_be_requeued_and_then_none_moves() -> None:
    scheduler = core()
    failed = dead(scheduler)
    waiting = make_task()
    with pytest.raises(ValueError, match="only failed tasks"):
        scheduler.requeue_failed([failed, waiting], 1.0)
    assert failed.state is TaskState.FAILED
    assert scheduler.tenant("default").reserved == 0


def test_nothing_to_retry_reserves_nothing() -> None:
    requeue = core().requeue_failed([], 1.0)
    assert requeue.tasks == []
    assert requeue.reserved == {}
