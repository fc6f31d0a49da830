"""Confinement protects other tenants without starving a lone one (issue 14).

(a) a lone tenant, whatever mix of outcomes its attempts have, never leaves a worker idle while
    it has queued work; (b) a confined tenant is released once a whole ``fault_window`` passes
    without a worker-breaking attempt; (c) a poison tenant stays on its own shards while another
    tenant has work. Plus the starvation scenario of the issue, replayed on the scheduler alone.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.core.limits import SchedulerSettings
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Scheduler
from asynctask.core.sharding import ShardSettings
from asynctask.model import ErrorKind, LiveTask, error_dict
from tests.core.helpers import make_task

SHARDS = 8
OUTCOMES = {
    "ok": None,
    "error": error_dict(ErrorKind.EXCEPTION, "ValueError", "bad"),
    "fail": error_dict(ErrorKind.FAIL, "Fail", "no"),
    "throttled": error_dict(ErrorKind.THROTTLED, "Throttled", "slow down"),
    "timeout": error_dict(ErrorKind.TIMEOUT, "Timeout", "timed out"),
    "died": error_dict(ErrorKind.WORKER_DIED, "WorkerDied", "worker exited"),
}


def core(**sharding) -> Scheduler:
    """Eight shards of one worker, two per tenant, the other settings at their defaults."""
    sharding.setdefault("shards", SHARDS)
    settings_ = SchedulerSettings(capacity=64, sharding=ShardSettings(**sharding))
    return Scheduler(RetryPolicy(base=0.5, cap=1.0), random.Random(0), settings_)


def task(tenant: str, retries: int = 0) -> LiveTask:
    made = make_task(5, tenant=tenant, retries=retries)
    made.function = f"m:{tenant}"
    return made


def end(sched: Scheduler, running: LiveTask, outcome: str, now: float) -> None:
    error = OUTCOMES[outcome]
    if error is None:
        sched.succeeded(running, None, now)
    else:
        sched.attempt_failed(running, error, now)


def fill(sched: Scheduler, busy: dict[int, LiveTask], now: float) -> list[Dispatch]:
    free = [0 if shard in busy else 1 for shard in range(SHARDS)]
    started = [a for a in sched.dispatch(now, free) if isinstance(a, Dispatch)]
    for action in started:
        assert action.shard not in busy
        busy[action.shard] = action.task
    return started


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(OUTCOMES)), st.integers(0, SHARDS - 1)),
        min_size=1,
        max_size=150,
    )
)
def test_a_lone_tenant_never_leaves_a_worker_idle_while_it_has_queued_work(ends):
    """Any mix of successes, errors, timeouts and worker deaths: after every dispatch, either
    every worker is busy or the tenant has nothing queued (nobody else is there to protect)."""
    sched = core()
    for _ in range(200):
        sched.add(task("lone"))
    busy: dict[int, LiveTask] = {}
    now = 0.0
    fill(sched, busy, now)
    for outcome, pick in ends:
        now += 0.01
        assert len(busy) == SHARDS or sched.queued == 0, (len(busy), sched.queued)
        if not busy:
            break
        shard = sorted(busy)[pick % len(busy)]
        end(sched, busy.pop(shard), outcome, now)
        fill(sched, busy, now)
    assert len(busy) == SHARDS or sched.queued == 0


@settings(max_examples=100, deadline=None)
@given(
    st.integers(3, 10),  # faults that confined it
    st.lists(st.sampled_from(["ok", "error", "fail", "throttled"]), min_size=25, max_size=60),
    st.floats(0.0, 30.0),
)
def test_a_confined_tenant_is_released_a_window_after_its_last_fault(faults, later, extra):
    """Released a whole window after its last worker-breaking attempt, whatever ordinary
    outcomes (successes or task errors) its attempts had meanwhile, with another tenant busy."""
    window = 60.0
    sched = core(fault_window=window, fault_backoff=0.01, fault_backoff_max=0.01)
    for _ in range(200):
        sched.add(task("bad"))
        sched.add(task("other"))
    tenant = sched.tenant("bad")
    busy: dict[int, LiveTask] = {}
    now = 0.0
    last_fault = None
    while faults or later:
        now += 0.5
        assert now < 1000.0
        fill(sched, busy, now)
        for shard in [s for s, t in busy.items() if t.tenant == "other"]:
            end(sched, busy.pop(shard), "ok", now)
        mine = [shard for shard, t in busy.items() if t.tenant == "bad"]
        if not mine:
            continue
        if faults:
            faults -= 1
            last_fault = now
            end(sched, busy.pop(mine[0]), "died", now)
        else:
            end(sched, busy.pop(mine[0]), later.pop(), now)
    assert last_fault is not None
    assert sched.confinement(tenant, last_fault) is not None
    released_at = max(now, last_fault + window) + extra
    assert sched.confinement(tenant, released_at) is None
    assert not sched.confined(tenant, released_at)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(["die", "ok", "add", "tick"]), min_size=1, max_size=120),
    st.booleans(),
)
def test_a_poison_tenant_stays_on_its_shards_while_another_tenant_has_work(ops, hangs):
    """Every attempt of ``poison`` breaks its worker; ``good`` always has work. Each of the
    poison tenant's attempts runs on one of its own shards, one at a time."""
    sched = core(fault_backoff=0.05, fault_backoff_max=0.2)
    own = set(sched.shards_of("poison"))
    for _ in range(100):
        sched.add(task("poison"))
    for _ in range(20):
        sched.add(task("good"))
    busy: dict[int, LiveTask] = {}
    now = 0.0
    for op in ops:
        now += 0.1
        if op == "add" or sched.tenant("good").backlog < 5:
            for _ in range(5):
                sched.add(task("good"), now)
        for action in fill(sched, busy, now):
            if action.task.tenant == "poison":
                assert action.shard in own
        assert sum(1 for t in busy.values() if t.tenant == "poison") <= 1
        for shard, running in list(busy.items()):
            if running.tenant == "poison" and op == "die":
                end(sched, busy.pop(shard), "timeout" if hangs else "died", now)
            elif running.tenant == "good" and op in ("ok", "tick"):
                end(sched, busy.pop(shard), "ok", now)


def test_the_issue_14_starvation_scenario_finishes_in_bounded_time():
    """1,000 tasks of a lone tenant: 10 % raise, 2 % time out (after 1 s), 1 % kill their
    worker, the rest take 50 ms; 8 workers in 8 shards. They all end within 1.5 times the time
    8 busy workers need (before the fix the tenant was confined and held to a trickle)."""
    rng = random.Random(14)
    sched = core()
    tasks = [task("lone", retries=0) for _ in range(1000)]
    plan = {}
    for made in tasks:
        roll = rng.random()
        plan[made.seq] = (
            ("died", 0.05)
            if roll < 0.01
            else ("timeout", 1.0)
            if roll < 0.03
            else ("error", 0.05)
            if roll < 0.13
            else ("ok", 0.05)
        )
    # Submitted at a steady 100 per second (the pool can run about 130 per second).
    arrivals = [(n * 0.01, made) for n, made in enumerate(tasks)]
    busy: dict[int, LiveTask] = {}
    ends: dict[int, float] = {}
    now = 0.0
    finished = 0
    while finished < len(tasks):
        while arrivals and arrivals[0][0] <= now:
            sched.add(arrivals.pop(0)[1], now)
        for action in fill(sched, busy, now):
            ends[action.shard] = now + plan[action.task.seq][1]
        for shard in [s for s, at in ends.items() if at <= now]:
            del ends[shard]
            running = busy.pop(shard)
            end(sched, running, plan[running.seq][0], now)
            finished += 1
        now = round(now + 0.01, 2)
        assert now < 30.0, f"{finished} of {len(tasks)} finished after {now:.0f} s"
    busy_time = sum(duration for _, duration in plan.values()) / SHARDS
    assert now <= max(busy_time, 10.0) * 1.5
