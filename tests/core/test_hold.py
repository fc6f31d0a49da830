"""Pause by selector (``Scheduler.hold``/``release``) and the per-attempt error history."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import ERROR_HISTORY, Dispatch, Finished, Scheduler
from asynctask.model import ErrorKind, LiveTask, TaskState, error_dict
from tests.core.helpers import make_task


def scheduler() -> Scheduler:
    return Scheduler(RetryPolicy(base=0.5, cap=60.0), random.Random(0))


def dispatched(actions: list) -> list[LiveTask]:
    return [a.task for a in actions if isinstance(a, Dispatch)]


def test_a_held_queued_task_is_passed_over_until_released():
    core = scheduler()
    first, second, third = make_task(), make_task(), make_task()
    for task in (first, second, third):
        core.add(task)
    assert core.hold([first]) == [first]
    assert core.hold([first]) == []  # holding twice changes nothing
    assert first.state is TaskState.QUEUED
    assert first.held
    assert dispatched(core.dispatch(1.0, 10)) == [second, third]
    assert core.dispatch(2.0, 10) == []
    assert core.release([first], 3.0) == [first]
    assert dispatched(core.dispatch(3.0, 10)) == [first]
    assert core.queued == 0


def test_a_held_scheduled_task_does_not_fall_due_and_runs_once_released():
    core = scheduler()
    task = make_task(state=TaskState.SCHEDULED, due_at=5.0)
    core.add(task)
    core.hold([task])
    assert core.dispatch(10.0, 1) == []
    assert task.state is TaskState.SCHEDULED
    assert core.next_wakeup() is None  # nothing to wake up for: no polling while held
    core.release([task], 11.0)
    assert dispatched(core.dispatch(11.0, 1)) == [task]


def test_a_held_task_still_expires_and_can_be_cancelled():
    core = scheduler()
    expiring = make_task(expires_at=5.0)
    cancelled = make_task()
    core.add(expiring)
    core.add(cancelled)
    core.hold([expiring, cancelled])
    finished = core.cancel(cancelled, 1.0)
    assert finished.task.state is TaskState.CANCELLED
    ended = [a.task for a in core.dispatch(6.0, 1) if isinstance(a, Finished)]
    assert ended == [expiring]
    assert expiring.state is TaskState.EXPIRED
    assert core.tenant("default").backlog == 0
    assert core.queued == 0


def test_holding_the_head_wakes_a_queue_parked_on_its_function():
    core = scheduler()
    blocked = make_task()
    blocked.function = "m:paused"
    free = make_task()
    core.add(blocked)
    core.add(free)
    core.pause(("function", "", "m:paused"))
    assert core.dispatch(1.0, 1) == []  # the queue is parked behind its paused head
    core.hold([blocked])
    assert dispatched(core.dispatch(2.0, 1)) == [free]


def test_a_recovered_held_task_is_counted_but_not_queued():
    core = scheduler()
    task = make_task()
    task.held = True
    core.add(task)
    assert core.tenant("default").backlog == 1
    assert core.dispatch(1.0, 1) == []
    core.release([task], 2.0)
    assert dispatched(core.dispatch(2.0, 1)) == [task]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add_queued", "add_scheduled", "hold", "release", "run", "finish"]),
            st.integers(0, 1_000),
        ),
        max_size=120,
    )
)
def test_held_tasks_never_run_and_every_task_runs_exactly_once(steps):
    """Whatever the interleaving of holds, releases, timers and dispatches: a held task is
    never dispatched, and once everything is released every task runs exactly once."""
    core = scheduler()
    tasks: list[LiveTask] = []
    runs: dict[int, int] = {}
    running: list[LiveTask] = []
    now = 0.0
    for action, pick in steps:
        now += 1.0
        if action == "add_queued":
            tasks.append(make_task(priority=pick % 10))
            core.add(tasks[-1], now)
        elif action == "add_scheduled":
            tasks.append(make_task(state=TaskState.SCHEDULED, due_at=now + pick % 7))
            core.add(tasks[-1], now)
        elif action in ("hold", "release") and tasks:
            chosen = tasks[pick % len(tasks) :: 3]
            if action == "hold":
                core.hold(chosen)
            else:
                core.release(chosen, now)
        elif action == "run":
            for task in dispatched(core.dispatch(now, pick % 4)):
                assert not task.held
                runs[task.seq] = runs.get(task.seq, 0) + 1
                running.append(task)
        elif action == "finish" and running:
            core.succeeded(running.pop(0), None, now)
        waiting = sum(1 for t in tasks if t.state in (TaskState.QUEUED, TaskState.SCHEDULED))
        assert core.tenant("default").backlog == waiting
    core.release(tasks, now)
    for task in running:
        core.succeeded(task, None, now)
    for _ in range(len(tasks) + 1):  # limits may hold some back until others finish
        now += 10.0
        for task in dispatched(core.dispatch(now, 4)):
            runs[task.seq] = runs.get(task.seq, 0) + 1
            core.succeeded(task, None, now)
    assert runs == {task.seq: 1 for task in tasks}


def test_each_failed_attempt_is_kept_after_a_later_success():
    core = scheduler()
    task = make_task(retries=5)
    core.add(task)
    now = 0.0
    for attempt in (1, 2):
        now += 100.0
        assert dispatched(core.dispatch(now, 1)) == [task]
        error = error_dict(ErrorKind.EXCEPTION, "E", f"boom {attempt}", "traceback")
        core.attempt_failed(task, error, now)
    now += 100.0
    core.dispatch(now, 1)
    core.succeeded(task, None, now)
    assert task.error is None
    assert task.errors is not None
    assert [(e["attempt"], e["message"]) for e in task.errors] == [(1, "boom 1"), (2, "boom 2")]
    assert all("traceback" not in e and e["finished_at"] >= e["started_at"] for e in task.errors)


def test_the_error_history_keeps_the_newest_entries():
    core = scheduler()
    task = make_task(retries=ERROR_HISTORY + 10)
    core.add(task)
    now = 0.0
    for _ in range(ERROR_HISTORY + 5):
        now += 1_000.0
        core.dispatch(now, 1)
        core.attempt_failed(task, error_dict(ErrorKind.EXCEPTION, "E", "x"), now)
    assert task.errors is not None
    assert len(task.errors) == ERROR_HISTORY
    assert task.errors[0]["attempt"] == 6
    assert task.errors[-1]["attempt"] == ERROR_HISTORY + 5
