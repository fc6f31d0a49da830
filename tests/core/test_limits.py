"""Tenants, queues, functions: fairness, limits, pauses, reserve/caps, back pressure, AIMD."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.core.limits import (
    AimdSettings,
    FunctionLimits,
    QueueLimits,
    SchedulerSettings,
    TenantLimits,
)
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Scheduler
from asynctask.errors import SubmitThrottled
from asynctask.model import ErrorKind, TaskState, error_dict
from tests.core.helpers import make_task


def core(**settings_kwargs) -> Scheduler:
    return Scheduler(RetryPolicy(), random.Random(0), SchedulerSettings(**settings_kwargs))


def task(tenant="t", queue=None, function="m:f", priority=5, **kwargs):
    made = make_task(priority, tenant=tenant, **kwargs)
    made.queue = queue or tenant
    made.function = function
    return made


def dispatched(actions):
    return [a.task for a in actions if isinstance(a, Dispatch)]


def test_small_tenant_is_not_stuck_behind_a_flood():
    s = core()
    for _ in range(1000):
        s.add(task("flood"))
    small = [task("small") for _ in range(10)]
    for t in small:
        s.add(t)
    first = []
    for _ in range(20):
        batch = dispatched(s.dispatch(1.0, 1))
        first += batch
        s.succeeded(batch[0], None, 1.0)
    assert all(t.state is TaskState.SUCCEEDED for t in small)
    assert sum(1 for t in first if t.tenant == "small") == 10


def test_weights_share_capacity():
    s = core(tenants={"gold": TenantLimits(weight=3.0), "tin": TenantLimits(weight=1.0)})
    for _ in range(400):
        s.add(task("gold"))
        s.add(task("tin"))
    counts = {"gold": 0, "tin": 0}
    for _ in range(200):
        (t,) = dispatched(s.dispatch(1.0, 1))
        counts[t.tenant] += 1
        s.succeeded(t, None, 1.0)
    assert counts == {"gold": 150, "tin": 50}


@pytest.mark.parametrize(
    "settings_kwargs",
    [
        {"tenants": {"t": TenantLimits(concurrency=2)}},
        {"queues": {("t", "t"): QueueLimits(concurrency=2)}},
        {"functions": {"m:f": FunctionLimits(concurrency=2)}},
    ],
)
def test_concurrency_limits_hold_and_release(settings_kwargs):
    s = core(**settings_kwargs)
    for _ in range(10):
        s.add(task())
    running = dispatched(s.dispatch(1.0, 8))
    assert len(running) == 2
    assert dispatched(s.dispatch(1.0, 8)) == []
    s.succeeded(running[0], None, 2.0)
    assert len(dispatched(s.dispatch(2.0, 8))) == 1


def test_an_exclusive_queue_keeps_a_slow_function_from_blocking_the_fast_one():
    s = core(functions={"m:slow": FunctionLimits(concurrency=1)})
    for _ in range(5):
        s.add(task(queue="slow-q", function="m:slow"))
    for _ in range(5):
        s.add(task(function="m:fast"))
    names = [t.function for t in dispatched(s.dispatch(1.0, 8))]
    assert names.count("m:slow") == 1
    assert names.count("m:fast") == 5


def test_rate_limit_at_dispatch_and_the_wakeup_time():
    s = core(functions={"m:f": FunctionLimits(rate=10.0, burst=1.0)})
    for _ in range(100):
        s.add(task())
    started = 0
    now = 0.0
    while now < 5.0:
        batch = dispatched(s.dispatch(now, 8))
        for t in batch:
            s.succeeded(t, None, now)
        started += len(batch)
        wake = s.next_wakeup()
        assert wake is not None
        assert wake > now
        now = wake
    assert 49 <= started <= 10 * 5.0 + 1


def test_tenant_rate_limit():
    s = core(tenants={"t": TenantLimits(rate=2.0, burst=2.0)})
    for _ in range(10):
        s.add(task())
    assert len(dispatched(s.dispatch(0.0, 8))) == 2
    assert dispatched(s.dispatch(0.1, 8)) == []
    assert s.next_wakeup() == pytest.approx(0.5, abs=0.01)
    assert len(dispatched(s.dispatch(0.5, 8))) == 1


@pytest.mark.parametrize(
    "target",
    [("tenant", "t", ""), ("queue", "t", "t"), ("function", "", "m:f")],
)
def test_pause_holds_queued_work_and_resume_releases_it(target):
    s = core()
    s.pause(target)  # before any task exists: allowed
    s.add(task())
    s.add(task(tenant="other"))
    assert [t.tenant for t in dispatched(s.dispatch(1.0, 8))] == (
        ["other"] if target[0] != "function" else []
    )
    s.resume(target)
    released = sorted(t.tenant for t in dispatched(s.dispatch(1.0, 8)))
    assert released == (["t"] if target[0] != "function" else ["other", "t"])


def test_reserve_keeps_slots_for_high_priority():
    s = core(reserve={9: 1})
    for _ in range(3):
        s.add(task(priority=1))
    assert len(dispatched(s.dispatch(1.0, 2))) == 1  # the last free slot is reserved
    s.add(task(priority=9))
    (urgent,) = dispatched(s.dispatch(1.0, 1))
    assert urgent.priority == 9


def test_caps_limit_low_priority_running():
    s = core(caps={2: 1})
    for _ in range(3):
        s.add(task(priority=0))
    s.add(task(priority=5))
    started = dispatched(s.dispatch(1.0, 8))
    assert sorted(t.priority for t in started) == [0, 5]


def test_back_pressure_refuses_only_the_full_tenant():
    s = core(tenants={"flood": TenantLimits(max_backlog=5)})
    for _ in range(5):
        s.admit("flood", 1, 0.0)
        s.add(task("flood"))
    with pytest.raises(SubmitThrottled) as refused:
        s.admit("flood", 1, 0.0)
    assert refused.value.retry_after is not None
    assert refused.value.retry_after >= 1
    assert s.tenant("flood").refused == 1
    s.admit("calm", 1, 0.0)


def test_aimd_cuts_concurrency_on_throttles_and_recovers():
    s = core(
        capacity=8,
        aimd=AimdSettings(window=10.0, min_throttles=2, throttle_ratio=0.5, idle_decay=30.0),
    )
    for _ in range(200):
        s.add(task())
    now = 0.0
    running = dispatched(s.dispatch(now, 8))
    assert len(running) == 8
    throttle = error_dict(ErrorKind.THROTTLED, "Throttled", "slow down")
    for t in running:
        s.attempt_failed(t, throttle, now)
    limit = s.function("m:f").concurrency_limit()
    assert limit is not None
    assert limit < 8
    now = 100.0
    for _ in range(300):
        batch = dispatched(s.dispatch(now, 8))
        assert s.running <= max(s.function("m:f").concurrency_limit() or 1, 1)
        for t in batch:
            s.succeeded(t, None, now)
        now += 0.01
    assert s.function("m:f").concurrency_limit() == 8


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "dispatch", "finish", "pause", "resume", "tick"]),
            st.integers(0, 3),
            st.integers(0, 9),
        ),
        max_size=120,
    )
)
def test_random_operations_keep_every_limit_and_lose_nothing(ops):
    limits = dict(
        tenants={"t0": TenantLimits(concurrency=2), "t1": TenantLimits(rate=5.0, burst=2.0)},
        queues={("t2", "q"): QueueLimits(concurrency=1)},
        functions={"m:f1": FunctionLimits(concurrency=1)},
    )
    s = core(**limits)
    rng = random.Random(1)
    now = 0.0
    everything = []
    targets = [("tenant", "t0", ""), ("queue", "t2", "q"), ("function", "", "m:f2")]
    for op, a, b in ops:
        if op == "add":
            t = task(f"t{a}", queue="q" if a == 2 else None, function=f"m:f{b % 3}", priority=b)
            s.add(t, now)
            everything.append(t)
        elif op == "dispatch":
            for t in dispatched(s.dispatch(now, b)):
                assert not s.is_paused(("tenant", t.tenant, ""))
                assert not s.is_paused(("queue", t.tenant, t.queue))
                assert not s.is_paused(("function", "", t.function))
            running = [t for t in everything if t.state is TaskState.RUNNING]
            assert sum(1 for t in running if t.tenant == "t0") <= 2
            assert sum(1 for t in running if t.tenant == "t2" and t.queue == "q") <= 1
            assert sum(1 for t in running if t.function == "m:f1") <= 1
        elif op == "finish" and s.running:
            t = rng.choice([t for t in everything if t.state is TaskState.RUNNING])
            s.succeeded(t, None, now)
        elif op == "pause":
            s.pause(targets[a % 3])
        elif op == "resume":
            s.resume(targets[a % 3])
        else:
            now += b / 3
    for target in targets:
        s.resume(target)
    for _ in range(10_000):
        if all(t.state is TaskState.SUCCEEDED for t in everything):
            break
        s.dispatch(now, 4)
        for t in [t for t in everything if t.state is TaskState.RUNNING]:
            s.succeeded(t, None, now)
        wake = s.next_wakeup()
        now = max(now + 0.01, wake or 0.0)
    assert all(t.state is TaskState.SUCCEEDED for t in everything)
    assert s.queued == 0
    assert s.running == 0


def test_limits_declared_in_code_apply_and_the_config_wins_key_by_key():
    sched = core(functions={"m:cfg": FunctionLimits(rate=5.0)}, capacity=8)
    sched.declare_function_limits("m:code", FunctionLimits(concurrency=2), 0.0)
    for _ in range(5):
        sched.add(task(function="m:code"))
    assert len(dispatched(sched.dispatch(0.0, 8))) == 2  # the declared concurrency holds
    sched.declare_function_limits("m:cfg", FunctionLimits(concurrency=3, rate=100.0), 0.0)
    limits = sched.function("m:cfg").limits
    assert (limits.concurrency, limits.rate) == (3, 5.0)  # the config's rate, the code's cap


def test_raising_a_declared_limit_releases_waiting_work_and_redeclaring_is_free():
    sched = core(capacity=8)
    sched.declare_function_limits("m:f", FunctionLimits(concurrency=1, rate=10.0, burst=2), 0.0)
    for _ in range(6):
        sched.add(task())
    assert len(dispatched(sched.dispatch(0.0, 8))) == 1
    bucket = sched.function("m:f").bucket
    sched.declare_function_limits("m:f", FunctionLimits(concurrency=1, rate=10.0, burst=2), 0.0)
    assert sched.function("m:f").bucket is bucket  # same limits: state kept
    sched.declare_function_limits("m:f", FunctionLimits(concurrency=4, rate=10.0, burst=2), 0.0)
    assert sched.function("m:f").bucket is bucket
    assert len(dispatched(sched.dispatch(0.0, 8))) == 1  # only the burst of 2 had tokens
    assert len(dispatched(sched.dispatch(0.2, 8))) == 2  # 2 more tokens after 0.2 s
