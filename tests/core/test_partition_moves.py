"""What the core does when a partition moves to another daemon (docs/scale-out.md).

``Scheduler.forget`` lets tasks go without ending them: nothing of theirs is dispatched,
expired or timed afterwards, their states stay as the store has them, and the tasks kept
run as before. ``Scheduler.share_function_limits`` enforces ``1 / N`` of each function's
limits on each of ``N`` daemons, so their sum is the configured budget."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.core.limits import FunctionLimits, SchedulerSettings, shared
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Finished, Scheduler
from asynctask.model import LiveTask, TaskState
from tests.core.helpers import make_task

S = TaskState


def core(capacity: int = 64, **functions: FunctionLimits) -> Scheduler:
    settings = SchedulerSettings(capacity=capacity, functions=functions)
    return Scheduler(RetryPolicy(base=0.5, cap=1.0), random.Random(0), settings)


def _task(kind: str, tenant: str) -> LiveTask:
    if kind == "scheduled":
        return make_task(tenant=tenant, state=S.SCHEDULED, due_at=5.0)
    if kind == "ttl":
        return make_task(tenant=tenant, expires_at=3.0)
    return make_task(tenant=tenant)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]), st.sampled_from(["queued", "scheduled", "ttl"])
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(min_value=0, max_value=10),
    st.sampled_from(["a", "b", "c"]),
)
def test_forgotten_tasks_never_come_back_and_the_rest_all_run(
    spec: list[tuple[str, str]], started: int, moved: str
) -> None:
    scheduler = core()
    tasks = [_task(kind, tenant) for tenant, kind in spec]
    for task in tasks:
        scheduler.add(task, 0.0)
    running = [a.task for a in scheduler.dispatch(0.0, started) if isinstance(a, Dispatch)]
    gone = [task for task in tasks if task.tenant == moved]
    states = {task.seq: task.state for task in gone}
    scheduler.forget(gone, 1.0)
    assert {task.seq: task.state for task in gone} == states  # nothing ended or moved
    seen: list[Finished | Dispatch] = []
    for now in (1.0, 3.5, 6.0, 10.0):  # past every TTL and due time
        seen += [a for a in scheduler.dispatch(now, 64) if isinstance(a, Finished | Dispatch)]
    assert not [a for a in seen if a.task.tenant == moved]
    kept_waiting = {t.seq for t in tasks if t.tenant != moved and t not in running}
    assert {a.task.seq for a in seen} == kept_waiting  # each dispatched or expired once
    assert scheduler.queued == 0
    assert scheduler.next_wakeup() is None
    # Running attempts of the moved tenant gave their slots back.
    kept_running = sum(1 for t in running if t.tenant != moved)
    dispatched = sum(1 for a in seen if isinstance(a, Dispatch))
    assert scheduler.running == kept_running + dispatched


def test_a_running_attempt_forgotten_frees_its_function_slot() -> None:
    scheduler = core(**{"m:f": FunctionLimits(concurrency=1, aimd=False)})
    first, second = make_task(tenant="a"), make_task(tenant="b")
    scheduler.add(first, 0.0)
    scheduler.add(second, 0.0)
    (started,) = [a.task for a in scheduler.dispatch(0.0, 2) if isinstance(a, Dispatch)]
    assert not [a for a in scheduler.dispatch(0.0, 2) if isinstance(a, Dispatch)]
    scheduler.forget([started], 0.5)
    assert started.state is S.RUNNING
    (then,) = [a.task for a in scheduler.dispatch(1.0, 2) if isinstance(a, Dispatch)]
    assert then is not started


@given(
    st.integers(min_value=1, max_value=10_000),
    st.floats(min_value=0.01, max_value=10_000),
    st.integers(min_value=1, max_value=100),
)
def test_shares_of_a_rate_add_up_and_concurrency_never_drops_to_zero(
    concurrency: int, rate: float, nodes: int
) -> None:
    limits = FunctionLimits(concurrency=concurrency, rate=rate, burst=rate)
    part = shared(limits, 1 / nodes)
    assert part.rate is not None
    assert abs(part.rate * nodes - rate) <= 1e-9 * rate
    assert part.concurrency is not None
    assert part.concurrency >= 1
    assert part.concurrency * nodes <= max(concurrency, nodes)
    assert shared(limits, 1.0) == limits


def test_two_daemons_at_half_share_start_the_configured_rate_between_them() -> None:
    limits = FunctionLimits(rate=10.0, burst=1.0, aimd=False)
    daemons = [core(**{"m:f": limits}) for _ in range(2)]
    for scheduler in daemons:
        scheduler.share_function_limits(0.5, 0.0)
        for _ in range(200):
            scheduler.add(make_task(), 0.0)
    started = 0
    now = 0.0
    while now < 10.0:
        for scheduler in daemons:
            for action in scheduler.dispatch(now, 64):
                if isinstance(action, Dispatch):
                    started += 1
                    scheduler.succeeded(action.task, None, now)
        now += 0.01
    assert 95 <= started <= 105  # 10/s for 10 s, whatever the split
    alone = core(**{"m:f": limits})  # and the share goes back up when a daemon leaves
    alone.share_function_limits(0.5, 0.0)
    alone.share_function_limits(1.0, 0.0)
    assert alone.function("m:f").local == limits


def test_an_undispatched_attempt_is_not_counted_and_runs_again() -> None:
    """``undispatch``: the pool had no worker for a dispatch after all; the core takes it back
    as if it had never been made (``Engine.perform``)."""
    scheduler = core(**{"m:f": FunctionLimits(concurrency=1, aimd=False)})
    task = make_task(tenant="a")
    scheduler.add(task, 0.0)
    (first,) = [a.task for a in scheduler.dispatch(0.0, 4) if isinstance(a, Dispatch)]
    assert (first.state, first.attempts, scheduler.running, scheduler.queued) == (
        S.RUNNING,
        1,
        1,
        0,
    )
    scheduler.undispatch(first, 0.1)
    assert (task.state, task.attempts, task.started_at) == (S.QUEUED, 0, None)
    assert (scheduler.running, scheduler.queued) == (0, 1)
    assert scheduler.tenant("a").backlog == 1
    (again,) = [a.task for a in scheduler.dispatch(0.2, 4) if isinstance(a, Dispatch)]
    assert again is task  # its function's one slot was given back
    assert task.attempts == 1
