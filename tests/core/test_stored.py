"""Tasks the daemon keeps in the store (a long queue's tail, ``daemon/coldqueue.py``): the core
counts them as queued everywhere - back pressure, the readouts, the function's backlog - and
never dispatches one until it is ``unstore``d and ``add``ed."""

from __future__ import annotations

import random

import pytest

from asynctask.core.limits import SchedulerSettings, TenantLimits
from asynctask.core.report import report_entries
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Scheduler
from asynctask.errors import SubmitThrottled
from tests.core.helpers import make_task


def core(**tenants: TenantLimits) -> Scheduler:
    settings = SchedulerSettings(tenants=tenants)
    return Scheduler(RetryPolicy(base=0.5, cap=5.0), random.Random(0), settings)


def _queue_row(scheduler: Scheduler, now: float) -> dict:
    rows = [row() for _, _, _, row in report_entries(scheduler, now, None)["queues"]()]
    assert len(rows) == 1
    return rows[0]


def test_stored_tasks_count_as_queued_but_are_not_dispatched() -> None:
    scheduler = core()
    held_back = make_task(priority=5)
    scheduler.add_stored(held_back.tenant, held_back.queue, held_back.function, 3, now=0.0)
    assert (scheduler.queued, scheduler.tenant("default").backlog) == (1, 1)
    assert scheduler.tenant("default").backlog_bytes == 3
    assert scheduler.function("m:f").queued == 1
    row = _queue_row(scheduler, 1.0)
    assert (row["backlog"], row["queued"]) == (1, 1)
    assert scheduler.queued_at_level("default", "default", 5) == 0
    assert scheduler.dispatch(1.0, 4) == []  # nothing it can see

    scheduler.unstore(held_back.tenant, held_back.queue, held_back.function, 3)
    scheduler.add(held_back, 0.5)  # read back: queued since it was stored
    assert scheduler.queued_at_level("default", "default", 5) == 1
    assert held_back.queued_at == 0.5
    actions = scheduler.dispatch(1.0, 4)
    assert [type(a) for a in actions] == [Dispatch]
    assert actions[0].task is held_back
    assert (scheduler.queued, scheduler.tenant("default").backlog) == (0, 0)
    assert scheduler.function("m:f").queued == 0


def test_stored_tasks_count_toward_the_tenant_backlog_bound() -> None:
    scheduler = core(default=TenantLimits(max_backlog=3))
    for _ in range(3):
        scheduler.add_stored("default", "default", "m:f", 1, now=0.0)
    with pytest.raises(SubmitThrottled):
        scheduler.admit("default", 1, 0.0)


def test_the_level_count_follows_pushes_pops_and_discards() -> None:
    scheduler = core()
    tasks = [make_task(priority=p) for p in (2, 2, 7)]
    for task in tasks:
        scheduler.add(task, 0.0)
    assert [scheduler.queued_at_level("default", "default", p) for p in (2, 7)] == [2, 1]
    scheduler.cancel(tasks[0], 0.1)
    assert scheduler.queued_at_level("default", "default", 2) == 1
    scheduler.dispatch(0.2, 1)  # priority 7 first
    assert [scheduler.queued_at_level("default", "default", p) for p in (2, 7)] == [1, 0]
    assert scheduler.queued_at_level("nobody", "default", 2) == 0
