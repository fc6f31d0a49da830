"""Worker affinity: a tenant with an idle worker of its own may go first, within a bound."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.core.dispatcher import AHEAD_PER_WAITING
from asynctask.core.limits import SchedulerSettings
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Scheduler
from asynctask.core.slots import WarmSlots
from asynctask.model import LiveTask
from tests.core.helpers import make_task


def scheduler(affinity: float) -> Scheduler:
    settings = replace(SchedulerSettings(), affinity=affinity, capacity=1000)
    return Scheduler(RetryPolicy(base=0.5, cap=60.0), random.Random(0), settings)


RUN = 1.0  # every attempt runs a second: ``affinity`` seconds are that many attempts


def one_slot(core: Scheduler, warm: WarmSlots | None, now: float) -> LiveTask | None:
    """One free slot at ``now``; what it runs finishes ``RUN`` seconds later."""
    actions = core.dispatch(now, 1, warm)
    started = [a.task for a in actions if isinstance(a, Dispatch)]
    assert len(started) <= 1
    if not started:
        return None
    core.succeeded(started[0], None, now + RUN)  # the slot is free again for the next call
    return started[0]


def test_the_tenant_with_an_idle_worker_goes_before_a_cold_one_within_the_bound():
    core = scheduler(affinity=4)
    for _ in range(20):
        core.add(make_task(tenant="cold"))
        core.add(make_task(tenant="warm"))
    order = []
    for step in range(12):
        task = one_slot(core, WarmSlots(own={"warm": 1}), 2.0 * step)
        assert task is not None
        order.append(task.tenant)
    # Without affinity they would alternate; with it "warm" (first served on a tie, before any
    # run time is known) runs ahead by the bound - 4 s of 1 s attempts - then they take turns.
    assert order[:6] == ["warm"] * 5 + ["cold"]
    assert order.count("warm") - order.count("cold") <= 4 + 2


def test_without_affinity_a_warm_tenant_only_wins_ties():
    core = scheduler(affinity=0)
    for _ in range(10):
        core.add(make_task(tenant="cold"))
        core.add(make_task(tenant="warm"))
    order = [one_slot(core, WarmSlots(own={"warm": 1}), 2.0 * i) for i in range(8)]
    tenants = [task.tenant for task in order if task is not None]
    assert abs(tenants.count("warm") - tenants.count("cold")) <= 2


def test_a_fresh_worker_serves_whoever_is_next():
    core = scheduler(affinity=100)
    for _ in range(4):
        core.add(make_task(tenant="cold"))
        core.add(make_task(tenant="warm"))
    order = [one_slot(core, WarmSlots(own={"warm": 1}, fresh=1), 2.0 * i) for i in range(4)]
    assert [task.tenant for task in order if task is not None] == ["cold", "warm"] * 2


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 8),
    st.lists(st.sets(st.sampled_from("abcd")), min_size=1, max_size=150),
)
def test_no_tenant_runs_more_than_affinity_ahead_of_an_always_eligible_one(affinity, warmth):
    """Four always-backlogged tenants of weight 1 with 1 s attempts, any pattern of who has an
    idle worker at each step: every pair's counts stay within the stride bound (2) plus
    ``affinity`` seconds' worth of attempts."""
    core = scheduler(affinity=affinity)
    for _ in range(200):
        for tenant in "abcd":
            core.add(make_task(tenant=tenant))
    counts = dict.fromkeys("abcd", 0)
    for step, warm_tenants in enumerate(warmth):
        task = one_slot(core, WarmSlots(own=dict.fromkeys(warm_tenants, 1)), 2.0 * step)
        assert task is not None
        counts[task.tenant] += 1
        assert max(counts.values()) - min(counts.values()) <= affinity + 2, counts


def test_the_budget_is_time_so_long_attempts_get_little_affinity():
    """10 s attempts against a 4 s budget: less than one attempt ahead, so only ties."""
    core = scheduler(affinity=4)
    for _ in range(10):
        core.add(make_task(tenant="cold"))
        core.add(make_task(tenant="warm"))
    order = []
    for step in range(8):
        actions = core.dispatch(20.0 * step, 1, WarmSlots(own={"warm": 1}))
        (task,) = [a.task for a in actions if isinstance(a, Dispatch)]
        core.succeeded(task, None, 20.0 * step + 10.0)
        order.append(task.tenant)
    assert abs(order.count("warm") - order.count("cold")) <= 2


def flood_until(core: Scheduler, small: LiveTask, now: float) -> tuple[int, float]:
    """One slot every ms on the flood's warm worker until ``small`` starts: the flood's
    attempts started meanwhile, and the time."""
    flood = 0
    while small.started_at is None:
        for action in core.dispatch(now, 1, WarmSlots(own={"flood": 1})):
            if isinstance(action, Dispatch):
                flood += action.task.tenant == "flood"
                core.succeeded(action.task, None, now + 1e-4)
        now += 1e-3
    return flood, now


def test_a_tenant_with_few_tasks_waiting_is_passed_over_for_few_attempts():
    """W7's shape: a flood of 0.1 ms attempts whose workers are all warm, and a small tenant.
    The budget (1 s of the flood's attempts) allows the most, 256 attempts, ahead of a tenant
    with many tasks waiting, but only ``AHEAD_PER_WAITING`` per task it has waiting: passing
    over one task for 256 attempts of a flood that will not drain saves no replacement."""
    core = scheduler(affinity=1.0)
    for _ in range(5000):
        core.add(make_task(tenant="flood"))
    now = 0.0
    for _ in range(50):  # the flood's typical attempt becomes known
        (dispatch,) = [a for a in core.dispatch(now, 1) if isinstance(a, Dispatch)]
        core.succeeded(dispatch.task, None, now + 1e-4)
        now += 1e-3
    lone = make_task(tenant="small")
    core.add(lone)
    flood, now = flood_until(core, lone, now)
    assert flood <= AHEAD_PER_WAITING + 2
    burst = [make_task(tenant="small") for _ in range(100)]
    for task in burst:
        core.add(task)
    flood, now = flood_until(core, burst[0], now)
    assert 256 - 2 <= flood <= 256 + 2
