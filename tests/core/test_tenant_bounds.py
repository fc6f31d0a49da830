"""Per-tenant bounds in the pure core: payload bytes waiting, queue names, cron entries, and
labels counted in ``max_payload``.

The invariant the Hypothesis test checks: after any sequence of add / dispatch / succeed /
fail (retry or dead-letter) / cancel / expire, each tenant's ``backlog_bytes`` equals the sum of
the payload sizes of its waiting (queued or scheduled) tasks.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.config import parse_config
from asynctask.core.cron import CronSchedule
from asynctask.core.limits import SchedulerSettings, TenantLimits
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Scheduler
from asynctask.daemon.crontab import CronEntry, CronTable
from asynctask.errors import ConfigError, SubmitThrottled, UsageError
from asynctask.model import WAITING_STATES, ErrorKind, LiveTask, TaskState, error_dict
from asynctask.server.requests import parse_spec
from tests.core.helpers import make_task


def core(**tenants: TenantLimits) -> Scheduler:
    settings = SchedulerSettings(tenants=tenants)
    return Scheduler(RetryPolicy(base=0.5, cap=5.0), random.Random(0), settings)


def task_of(tenant: str, size: int, **kwargs) -> LiveTask:
    task = make_task(tenant=tenant, **kwargs)
    task.payload = b"x" * size
    return task


def test_default_bounds() -> None:
    limits = TenantLimits()
    assert (limits.max_backlog_bytes, limits.max_queues, limits.max_cron) == (
        256 * 1024 * 1024,
        1000,
        100,
    )


def test_the_bounds_are_read_per_tenant_with_star_defaults() -> None:
    tenants = {"*": {"max_backlog_bytes": "1M", "max_cron": 5}, "acme": {"max_queues": 10}}
    s = parse_config({"tenants": tenants}).scheduler
    assert (s.tenant("other").max_backlog_bytes, s.tenant("other").max_cron) == (1024 * 1024, 5)
    acme = s.tenant("acme")
    assert (acme.max_backlog_bytes, acme.max_queues, acme.max_cron) == (1024 * 1024, 10, 5)
    for bad in ({"max_backlog_bytes": "lots"}, {"max_queues": 0}, {"max_cron": -1}):
        with pytest.raises(ConfigError):
            parse_config({"tenants": {"acme": bad}})


def test_payload_bytes_over_the_bound_are_throttled_for_that_tenant_only() -> None:
    s = core(big=TenantLimits(max_backlog_bytes=1000))
    s.admit("big", 1, 0.0, 600)
    s.add(task_of("big", 600))
    s.admit("big", 1, 0.0, 400)  # exactly at the bound is allowed
    with pytest.raises(SubmitThrottled) as refused:
        s.admit("big", 1, 0.0, 401)
    assert "payload bytes" in refused.value.message
    assert "max_backlog_bytes" in refused.value.message
    assert 1.0 <= refused.value.retry_after <= 60.0
    assert s.tenant("big").refused == 1
    s.admit("other", 1, 0.0, 100_000)  # the default bound, another tenant: unaffected
    assert s.tenant("other").refused == 0


def test_reserved_submits_count_until_unreserved() -> None:
    """A submit being stored holds its place: a concurrent one sees it (``Scheduler.reserve``)."""
    s = core(big=TenantLimits(max_backlog_bytes=1000, max_backlog=10, max_queues=1))
    s.admit("big", 5, 0.0, 600, {"q"})
    s.reserve("big", 5, 600, {"q"}, 0.0)
    with pytest.raises(SubmitThrottled, match="600 payload bytes"):
        s.admit("big", 1, 0.0, 401)
    with pytest.raises(SubmitThrottled, match="has 5 tasks waiting"):
        s.admit("big", 6, 0.0, 1)
    with pytest.raises(UsageError, match="max_queues"):
        s.admit("big", 1, 0.0, 1, {"r"})  # the reserved submit's queue exists already
    s.unreserve("big", 5, 600)
    s.admit("big", 10, 0.0, 1000, {"q"})
    assert (s.tenant("big").reserved, s.tenant("big").reserved_bytes) == (0, 0)


def test_bytes_are_released_when_the_task_leaves_waiting() -> None:
    s = core(big=TenantLimits(max_backlog_bytes=1000))
    running = task_of("big", 700)
    s.add(running)
    [action] = s.dispatch(now=1.0, free_slots=1)
    assert isinstance(action, Dispatch)
    assert s.tenant("big").backlog_bytes == 0
    s.admit("big", 1, 1.0, 1000)  # a running task's payload no longer counts
    cancelled = task_of("big", 900)
    s.add(cancelled)
    s.cancel(cancelled, 2.0)
    assert s.tenant("big").backlog_bytes == 0
    expiring = task_of("big", 900, expires_at=3.0, state=TaskState.SCHEDULED, due_at=100.0)
    s.add(expiring)
    s.dispatch(now=4.0, free_slots=0)
    assert expiring.state is TaskState.EXPIRED
    assert s.tenant("big").backlog_bytes == 0
    # a retry puts the payload back into the backlog
    s.attempt_failed(running, error_dict(ErrorKind.EXCEPTION, "E", "boom"), 5.0)
    assert running.state is TaskState.SCHEDULED
    assert s.tenant("big").backlog_bytes == 700


def test_a_new_queue_past_max_queues_is_a_usage_error() -> None:
    s = core(many=TenantLimits(max_queues=2))
    for name in ("a", "b"):
        s.admit("many", 1, 0.0, 3, {name})
        task = make_task(tenant="many")
        task.queue = name
        s.add(task)
    s.admit("many", 2, 0.0, 6, {"a", "b"})  # existing queues are fine
    with pytest.raises(UsageError) as refused:
        s.admit("many", 1, 0.0, 3, {"a", "c"})
    assert "max_queues" in refused.value.message
    assert "2" in refused.value.message
    s.admit("other", 1, 0.0, 3, {"c"})  # another tenant is unaffected


def test_cron_table_counts_each_tenants_entries() -> None:
    table = CronTable()
    for tenant, name in (("a", "x"), ("a", "y"), ("b", "x")):
        entry = CronEntry(tenant, name, CronSchedule("* * * * *"), "one", {}, created_at=0.0)
        table.add(entry, 0.0)
    assert (table.count("a"), table.count("b"), table.count("c")) == (2, 1, 0)
    assert table.has("a", "y")
    assert not table.has("b", "y")
    table.remove("a", "y")
    assert table.count("a") == 1


def test_labels_count_toward_max_payload() -> None:
    raw = {"function": "m:f", "payload": b"x" * 90, "labels": {"k": "v" * 9}}
    assert parse_spec(raw, max_payload=100).labels == {"k": "v" * 9}  # 90 + 1 + 9 = 100
    raw["labels"] = {"k": "v" * 10}
    with pytest.raises(UsageError) as refused:
        parse_spec(raw, max_payload=100)
    assert refused.value.message == (
        "task arguments (90 bytes) and labels (11 bytes) are 101 bytes, more than the limit of "
        "100 ([daemon] max_payload counts both)"
    )


# -- the invariant -----------------------------------------------------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "add_scheduled", "dispatch", "succeed", "fail", "cancel", "tick"]),
        st.sampled_from(["a", "b"]),
        st.integers(0, 2000),
    ),
    max_size=80,
)


@settings(max_examples=300)
@given(OPS)
def test_backlog_bytes_is_always_the_sum_over_waiting_tasks(ops) -> None:
    s = core()
    tasks: list[LiveTask] = []
    now = 0.0
    for op, tenant, n in ops:
        now += 1.0
        running = [t for t in tasks if t.state is TaskState.RUNNING]
        waiting = [t for t in tasks if t.state in WAITING_STATES]
        if op == "add":
            ttl = now + n % 7 if n % 3 == 0 else None
            task = task_of(tenant, n, retries=n % 3, expires_at=ttl)
            s.add(task, now)
            tasks.append(task)
        elif op == "add_scheduled":
            task = task_of(tenant, n, state=TaskState.SCHEDULED, due_at=now + n % 5)
            s.add(task, now)
            tasks.append(task)
        elif op == "dispatch":
            s.dispatch(now, free_slots=1 + n % 4)
        elif op == "succeed" and running:
            s.succeeded(running[n % len(running)], None, now)
        elif op == "fail" and running:
            kind = ErrorKind.EXCEPTION if n % 2 else ErrorKind.FAIL  # retried, or dead-lettered
            s.attempt_failed(running[n % len(running)], error_dict(kind, "E", "x"), now)
        elif op == "cancel" and (waiting or running):
            pool = waiting + running
            s.cancel(pool[n % len(pool)], now)
        elif op == "tick":
            now += n % 10  # backoffs come due, TTLs pass
            s.dispatch(now, free_slots=0)
        for name in ("a", "b"):
            expected = sum(
                len(t.payload) for t in tasks if t.tenant == name and t.state in WAITING_STATES
            )
            assert s.tenant(name).backlog_bytes == expected
            assert s.tenant(name).backlog == sum(
                1 for t in tasks if t.tenant == name and t.state in WAITING_STATES
            )
