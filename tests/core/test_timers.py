"""``Timers``' invariant (``asynctask/core/timers.py``): ``pop_due(now)`` returns exactly the live
entries with ``due <= now``, in due order, each once; nothing is returned early. Checked against
a plain dict over random pushes, cancels, holds (``drop``), releases and pops."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.core.timers import Timers
from asynctask.model import LiveTask, TaskState
from tests.core.helpers import make_task

ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 50)),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
        st.tuples(st.just("hold"), st.integers(0, 30)),
        st.tuples(st.just("release"), st.integers(0, 30)),
        st.tuples(st.just("pop"), st.integers(0, 10)),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(ops=ops)
def test_pop_due_returns_exactly_the_live_due_entries_in_order(ops: list[tuple[str, int]]) -> None:
    timers = Timers()
    tasks: list[LiveTask] = []
    live: dict[int, LiveTask] = {}  # the model: scheduled tasks in the timers, by seq
    held: dict[int, LiveTask] = {}
    now = 0.0
    for op, n in ops:
        if op == "push":
            task = make_task(state=TaskState.SCHEDULED, due_at=now + n)
            tasks.append(task)
            timers.push(task)
            live[task.seq] = task
        elif op == "cancel" and live:
            task = list(live.values())[n % len(live)]
            task.state = TaskState.CANCELLED
            timers.discard(task)
            del live[task.seq]
        elif op == "hold" and live:
            task = list(live.values())[n % len(live)]
            timers.drop({task.seq})  # stays ``scheduled``, out of the timers
            held[task.seq] = live.pop(task.seq)
        elif op == "release" and held:
            task = held.pop(list(held)[n % len(held)])
            timers.push(task)
            live[task.seq] = task
        elif op == "pop":
            now += n
            expected = sorted(
                (t for t in live.values() if t.due_at is not None and t.due_at <= now),
                key=lambda t: (t.due_at, t.seq),
            )
            got = list(timers.pop_due(now))
            assert [t.seq for t in got] == [t.seq for t in expected]
            for task in got:
                task.state = TaskState.QUEUED
                del live[task.seq]
        assert len(timers) == len(live)
        due = [t.due_at for t in live.values() if t.due_at is not None]
        assert timers.next_due() == (min(due) if due else None)
