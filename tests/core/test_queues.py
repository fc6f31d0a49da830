"""Priority with aging: the starvation bound of queues.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from asynctask.core.queues import PriorityFifo
from asynctask.model import PRIORITY_MAX, PRIORITY_MIN, TaskState
from tests.core.helpers import make_task

AGING = 2.0
BOUND = (PRIORITY_MAX - PRIORITY_MIN) * AGING

# A script: each step either adds a task (gap since the last step, priority) or pops one.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.floats(0, 5), st.integers(0, 9)),
        st.tuples(st.just("pop"), st.floats(0, 5), st.just(0)),
    ),
    max_size=200,
)


@given(steps)
def test_no_task_is_overtaken_by_one_ready_much_later(script):
    fifo = PriorityFifo(AGING)
    now = 0.0
    waiting = []
    for action, gap, priority in script:
        now += gap
        if action == "add":
            task = make_task(priority)
            task.queued_at = now
            fifo.push(task)
            waiting.append(task)
        else:
            task = fifo.pop()
            if task is None:
                assert not waiting
                continue
            waiting.remove(task)
            task.state = TaskState.RUNNING
            for other in waiting:  # everything still waiting was not preferred
                assert task.queued_at <= other.queued_at + BOUND


@given(st.lists(st.integers(0, 9), min_size=1, max_size=100))
def test_same_instant_means_priority_then_fifo(priorities):
    fifo = PriorityFifo(AGING)
    tasks = [make_task(p) for p in priorities]
    for task in tasks:
        fifo.push(task)
    popped = []
    while (task := fifo.pop()) is not None:
        task.state = TaskState.RUNNING
        popped.append(task)
    assert popped == sorted(tasks, key=lambda t: (-t.priority, t.seq))


def test_lazily_deleted_entries_are_skipped():
    fifo = PriorityFifo(AGING)
    gone, kept = make_task(9), make_task(1)
    fifo.push(gone)
    fifo.push(kept)
    gone.state = TaskState.CANCELLED
    fifo.discard(gone)
    assert len(fifo) == 1
    assert fifo.pop() is kept
    assert fifo.pop() is None
