"""Stride scheduling: capacity shared by weight, within the bound the module states."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from asynctask.core.fairness import StrideScheduler


@dataclass(eq=False)
class Member:
    name: str
    weight: float
    vpass: float = 0.0
    heap_version: int = 0
    in_heap: bool = False


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 400))
def test_two_always_eligible_members_stay_within_the_bound(w_a, w_b, rounds):
    fair: StrideScheduler[Member] = StrideScheduler()
    a, b = Member("a", w_a), Member("b", w_b)
    fair.add(a)
    fair.add(b)
    served = {"a": 0, "b": 0}
    for _ in range(rounds):
        member = fair.pop()
        assert member is not None
        fair.charge(member)
        served[member.name] += 1
        fair.push_back(member)
        assert abs(served["a"] / w_a - served["b"] / w_b) <= 1 / w_a + 1 / w_b + 1e-9


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=300))
def test_members_that_come_and_go_keep_the_bound_pairwise(events):
    """Members leave and rejoin at random (idling banks no credit): any two members, over the
    stretch during which both stayed eligible, were served within 2 of each other."""
    fair: StrideScheduler[Member] = StrideScheduler()
    members = [Member(str(i), 1.0) for i in range(4)]
    counts = {m.name: 0 for m in members}
    pair_start: dict[tuple[str, str], tuple[int, int]] = {}
    for index, active in events:
        member = members[index]
        if active and not member.in_heap:
            fair.add(member)
            for other in members:
                if other is not member and other.in_heap:
                    start = (counts[member.name], counts[other.name])
                    pair_start[(member.name, other.name)] = start
        elif not active and member.in_heap:
            fair.remove(member)
            pair_start = {k: v for k, v in pair_start.items() if member.name not in k}
        chosen = fair.pop()
        if chosen is None:
            continue
        fair.charge(chosen)
        counts[chosen.name] += 1
        fair.push_back(chosen)
        for (x, y), (start_x, start_y) in pair_start.items():
            assert abs((counts[x] - start_x) - (counts[y] - start_y)) <= 2


def test_repr_shows_state():
    fair: StrideScheduler[Member] = StrideScheduler()
    fair.add(Member("a", 1))
    assert repr(fair) == "<StrideScheduler heap=1 vtime=0.000>"
