"""Which tenant goes next: weighted fair sharing by stride scheduling.

Algorithm: stride scheduling (Waldspurger & Weihl, 1995), the deterministic form of weighted
fair queuing. Every tenant has a *pass*; the eligible tenant with the smallest pass gets the
next worker slot and its pass grows by ``1 / weight``. A tenant that becomes eligible again
(new work after being idle, or a limit released) starts at ``max(its pass, virtual time)``,
where virtual time is the pass of the last tenant served - so idling banks no credit, and a
tenant cannot be punished for an old burst either. Ties go to the tenant that became eligible
first (a counter, not a random draw, so runs replay exactly).

Capacity is shared by weight, not by who submitted more: a tenant with 100,000 queued tasks and
one with 10 alternate slot by slot (equal weights) until the small one is empty.

Bound (tests/core/test_fairness.py): over any interval in which tenants A and B both stay
eligible, their dispatch counts satisfy ``|n_A / w_A - n_B / w_B| <= 1 / w_A + 1 / w_B``.
With equal weights of 1 the counts differ by at most 2, whatever the arrival pattern.

Operations are O(log n) in the number of eligible tenants (a binary heap with lazy deletion: an
entry is live only while its ``version`` matches the member's).
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, Protocol, TypeVar


class FairMember(Protocol):
    weight: float
    vpass: float
    heap_version: int
    in_heap: bool


M = TypeVar("M", bound=FairMember)


class StrideScheduler(Generic[M]):
    __slots__ = ("_heap", "_order", "vtime")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, M]] = []
        self._order = itertools.count()
        self.vtime = 0.0

    def __len__(self) -> int:
        return len(self._heap)

    def __repr__(self) -> str:
        return f"<StrideScheduler heap={len(self._heap)} vtime={self.vtime:.3f}>"

    def add(self, member: M) -> None:
        """Make ``member`` eligible (no-op if it already is)."""
        if member.in_heap:
            return
        member.vpass = max(member.vpass, self.vtime)
        self._push(member)

    def _push(self, member: M) -> None:
        member.heap_version += 1
        member.in_heap = True
        heapq.heappush(self._heap, (member.vpass, next(self._order), member.heap_version, member))

    def pop(self) -> M | None:
        """Take the member with the smallest pass out (the caller charges it or parks it)."""
        heap = self._heap
        while heap:
            _, _, version, member = heapq.heappop(heap)
            if member.in_heap and version == member.heap_version:
                member.in_heap = False
                return member
        return None

    def charge(self, member: M) -> None:
        """``member`` (just popped) was given one slot: advance its pass and virtual time."""
        self.vtime = max(self.vtime, member.vpass)
        member.vpass += 1.0 / member.weight

    def push_back(self, member: M) -> None:
        """Return a popped member that is still eligible, keeping its (charged) pass."""
        self._push(member)

    def remove(self, member: M) -> None:
        """Make a member ineligible without popping it (its heap entry goes stale)."""
        member.in_heap = False
