"""One tenant per worker: ``place`` never hands a worker another tenant's attempt."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.core.slots import Placement, place


@dataclass(eq=False)
class FakeWorker:
    tenant: str | None = None
    busy: int = 0
    history: set[str] = field(default_factory=set)
    retired: bool = False


def test_the_tenants_own_warmest_worker_wins():
    a_cold, fresh, a_warm = FakeWorker("a"), FakeWorker(), FakeWorker("a")
    assert place("a", [a_cold, fresh, a_warm]) == Placement(2)


def test_a_fresh_worker_comes_before_replacing_another_tenants():
    assert place("a", [FakeWorker("b"), FakeWorker(), FakeWorker("c")]) == Placement(1)


def test_the_coldest_idle_worker_of_another_tenant_is_replaced():
    candidates = [FakeWorker("b", busy=1), FakeWorker("c"), FakeWorker("d")]
    assert place("a", candidates) == Placement(1, replace=True)


def test_nothing_when_every_free_slot_is_on_another_tenants_busy_worker():
    assert place("a", [FakeWorker("b", busy=1), FakeWorker("c", busy=2)]) is None
    assert place("a", []) is None


TENANTS = st.sampled_from(["a", "b", "c", "d"])
# One step: a tenant asks for a slot, or the attempt on the n-th busy worker ends.
STEPS = st.lists(st.one_of(TENANTS, st.integers(0, 7)), max_size=200)


@settings(max_examples=300)
@given(st.integers(1, 6), st.integers(1, 3), STEPS)
def test_a_worker_serves_one_tenant_for_its_whole_life(workers, slots, steps):
    """A model pool of ``workers`` processes with ``slots`` each follows every placement: no
    worker ever holds two tenants' attempts in its history, a replaced worker is never chosen
    again, and ``None`` comes only when no candidate could have been used."""
    pool = [FakeWorker() for _ in range(workers)]
    for step in steps:
        if isinstance(step, int):
            busy = [w for w in pool if w.busy]
            if busy:
                busy[step % len(busy)].busy -= 1
            continue
        candidates = [w for w in pool if w.busy < slots and not w.retired]
        placement = place(step, candidates)
        if placement is None:
            assert all(w.busy and w.tenant not in (None, step) for w in candidates)
            continue
        chosen = candidates[placement.index]
        if placement.replace:
            assert chosen.busy == 0
            assert chosen.tenant not in (None, step)
            chosen.retired = True
            pool.remove(chosen)
            chosen = FakeWorker()
            pool.append(chosen)
        assert chosen.tenant in (None, step)
        chosen.tenant = step
        chosen.history.add(step)
        chosen.busy += 1
        assert len(chosen.history) == 1
    assert all(len(w.history) <= 1 for w in pool)
