"""The events the core reports (``core/events.py``): each change it makes is reported once,
with figures that match its state, and nothing is reported that did not change.

* AIMD: the moves chain (each ``previous`` is the limit before it), every move of the limit is
  reported and only moves are, and each reason fits its direction;
* confinement: a fault confinement is reported once however many faults extend it, and its
  release only once it is over (``Scheduler.confinement_due``), after which a new one is
  reported again;
* probation: leaving it is reported once, at the attempt that completes it, and only where
  probation is in force (a sharded pool in ``faults`` mode).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.core.aimd import CUT, INCREASE, RESET, AimdConfig, AimdLimit
from asynctask.core.events import AimdMoved, Confined, Released
from asynctask.core.limits import SchedulerSettings
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Scheduler
from asynctask.core.sharding import ALWAYS, FAULTS, PROBATION, ShardSettings
from asynctask.model import ErrorKind, LiveTask, error_dict
from tests.core.helpers import make_task

THROTTLED = error_dict(ErrorKind.THROTTLED, "Throttled", "slow down")
DIED = error_dict(ErrorKind.WORKER_DIED, "WorkerDied", "worker exited")
ERROR = error_dict(ErrorKind.EXCEPTION, "ValueError", "bad")

configs = st.builds(
    AimdConfig,
    max_limit=st.integers(1, 64),
    initial=st.none(),
    increase=st.floats(0.01, 10),
    decrease=st.floats(0.01, 0.99),
    window=st.floats(0.1, 60),
    min_throttles=st.integers(1, 10),
    throttle_ratio=st.floats(0, 1),
    idle_decay=st.floats(0.1, 60),
)
script = st.lists(
    st.tuples(
        st.sampled_from(["success", "throttle", "other", "tick"]),
        st.floats(0, 20),
        st.booleans(),
    ),
    max_size=200,
)


@settings(max_examples=150)
@given(configs, script)
def test_aimd_reports_every_move_of_its_limit_and_only_those(config, steps):
    aimd = AimdLimit(config, 0.0)
    now = 0.0
    for kind, step, backlog in steps:
        now += step
        before = aimd.limit
        if kind == "success":
            reason = aimd.on_success(now, backlog)
        elif kind == "throttle":
            reason = aimd.on_throttle(now)
        elif kind == "other":
            reason = aimd.on_other_end(now)
        else:
            reason = aimd.tick(now, backlog)
        assert (reason is None) == (aimd.limit == before)
        if reason == CUT:
            assert kind == "throttle"
            assert aimd.limit < before
        elif reason == INCREASE:
            assert kind == "success"
            assert backlog
            assert aimd.limit > before
        elif reason == RESET:
            assert not backlog
            assert aimd.limit == config.start


def harness(**sharding) -> Scheduler:
    shard_settings = ShardSettings(**sharding) if sharding else ShardSettings()
    settings_ = SchedulerSettings(capacity=8, sharding=shard_settings)
    return Scheduler(RetryPolicy(base=0.5, cap=1.0), random.Random(0), settings_)


def run_one(core: Scheduler, now: float, tenant: str = "default") -> LiveTask:
    core.add(make_task(tenant=tenant, retries=0), now)
    shards = core.settings.sharding.shards
    free: int | list[int] = [1] * shards if shards > 1 else 1
    (action,) = [a for a in core.dispatch(now, free) if isinstance(a, Dispatch)]
    return action.task


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ok", "ok", "throttle", "error"]), st.integers(0, 2))))
def test_the_scheduler_reports_aimd_moves_that_chain_to_the_limit_it_enforces(outcomes):
    core = harness()
    now = 0.0
    running: list[LiveTask] = []
    reported = core.function("m:f").concurrency_limit()
    for outcome, submitted in outcomes:
        now += 0.5
        for _ in range(submitted):
            core.add(make_task(retries=0), now)
        actions = core.dispatch(now, 8 - len(running))
        running += [action.task for action in actions if isinstance(action, Dispatch)]
        if not running:
            continue
        task = running.pop(0)
        if outcome == "ok":
            core.succeeded(task, None, now)
        else:
            core.attempt_failed(task, THROTTLED if outcome == "throttle" else ERROR, now)
        for event in core.take_events():
            assert isinstance(event, AimdMoved)
            assert event.function == "m:f"
            assert event.previous == reported
            assert event.limit != event.previous
            assert event.max_limit == 8
            reported = event.limit
        assert core.function("m:f").concurrency_limit() == reported


def test_a_cut_carries_its_window_figures() -> None:
    core = harness()
    for step in range(5):
        core.succeeded(run_one(core, step * 0.1), None, step * 0.1)
    assert not core.take_events()  # at its ceiling: nothing moved
    for step in range(3):
        now = 1 + step * 0.1
        core.attempt_failed(run_one(core, now), THROTTLED, now)
    assert core.take_events() == [AimdMoved("m:f", 8, 4, CUT, 8, 8, 3)]
    assert not core.take_events()


def test_a_fault_confinement_is_reported_once_and_its_release_when_it_is_over() -> None:
    core = harness(shards=4, per_tenant=1, fault_threshold=2, probation=0, fault_backoff=0.001)
    own = core.shards_of("bad")
    core.attempt_failed(run_one(core, 0.0, "bad"), DIED, 0.0)
    assert not core.take_events()  # one fault: below the threshold
    core.attempt_failed(run_one(core, 1.0, "bad"), DIED, 1.0)
    assert core.take_events() == [Confined("bad", FAULTS, own, 2, 61.0, 60.0)]
    core.attempt_failed(run_one(core, 30.0, "bad"), DIED, 30.0)  # pushes the end on to 90 s
    assert not core.take_events()
    assert core.confinement_due("bad", 61.0) == 90.0
    assert not core.take_events()
    assert core.confinement_due("bad", 90.0) is None
    assert core.take_events() == [Released("bad", FAULTS, None)]
    assert core.confinement_due("bad", 91.0) is None  # reported once
    assert not core.take_events()
    core.attempt_failed(run_one(core, 100.0, "bad"), DIED, 100.0)
    core.attempt_failed(run_one(core, 101.0, "bad"), DIED, 101.0)
    (again,) = core.take_events()
    assert isinstance(again, Confined)
    assert again.until == 161.0


def test_an_unsharded_pool_reports_a_confinement_without_shards() -> None:
    core = harness(fault_threshold=1, probation=0)
    core.attempt_failed(run_one(core, 0.0), DIED, 0.0)
    (confined,) = core.take_events()
    assert isinstance(confined, Confined)
    assert confined.shards is None


def test_always_mode_reports_no_fault_confinement() -> None:
    core = harness(shards=4, per_tenant=1, confinement=ALWAYS, fault_threshold=1)
    core.attempt_failed(run_one(core, 0.0, "bad"), DIED, 0.0)
    assert not core.take_events()


@pytest.mark.parametrize(
    ("sharding", "expected"),
    [
        ({"shards": 4, "per_tenant": 1, "probation": 3}, [Released("new", PROBATION, None)]),
        ({"shards": 4, "per_tenant": 1, "probation": 0}, []),
        ({"shards": 4, "per_tenant": 1, "probation": 3, "confinement": ALWAYS}, []),
        ({"probation": 3}, []),  # one shard: nothing to confine to
    ],
)
def test_leaving_probation_is_reported_once_where_it_is_in_force(sharding, expected) -> None:
    core = harness(**sharding)
    seen = []
    for step in range(6):
        outcome = step % 2  # task errors end clean too; a worker fault would not count
        task = run_one(core, float(step), "new")
        if outcome:
            core.attempt_failed(task, ERROR, float(step))
        else:
            core.succeeded(task, None, float(step))
        seen += core.take_events()
    assert seen == expected


def test_leaving_probation_while_confined_for_faults_says_so() -> None:
    core = harness(
        shards=4, per_tenant=1, probation=3, fault_threshold=1, fault_ratio=0.0, fault_backoff=0.001
    )
    core.attempt_failed(run_one(core, 0.0, "new"), DIED, 0.0)
    assert [type(e) for e in core.take_events()] == [Confined]
    seen = []
    for step in range(1, 4):
        now = float(step)  # past the fault's back-off, within its confinement
        core.succeeded(run_one(core, now, "new"), None, now)
        seen += core.take_events()
    assert seen == [Released("new", PROBATION, FAULTS)]
