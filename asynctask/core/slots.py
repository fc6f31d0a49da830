"""Which worker takes a tenant's attempt: one tenant per worker, for the worker's whole life.

Theory of operation
-------------------
A worker process that ran tenant A's code may hold anything A's code left in it: a patched
module, a thread, a monkey-patched ``asynctask`` internals. So a worker is *bound* to the
tenant of the first attempt it is given and never runs another tenant's attempt afterwards
(README.md, "Security model"). Capacity still moves between tenants: an idle worker of one
tenant is retired and a fresh one started in its place when another tenant needs the slot.

``place`` makes that choice and nothing else; the pool (``executor/pool.py``) asks it, then
acts: it sends the job, or retires the chosen worker and starts the replacement that will run
it. The rules, in order of preference:

1. a worker already bound to the tenant with a free slot - the warmest one (last in the
   sequence), whose caches and imports are the tenant's already;
2. a fresh worker (bound to nobody yet) with a free slot, which the attempt then binds;
3. an idle worker bound to another tenant - the coldest (first in the sequence) - to be
   *replaced*: retired, and a fresh worker for this tenant started in its slot;
4. nothing: every free slot belongs to a worker that is busy with another tenant (only with
   several attempts per worker). The caller then starts a worker of its own for the attempt.

The promise, property-tested in ``tests/core/test_slots.py``: whatever the sequence of
placements, a worker never receives an attempt of a tenant other than the one it is bound to;
a replaced worker is never used again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class SlotHolder(Protocol):
    """What ``place`` reads of a worker (the pool's record satisfies it)."""

    @property
    def tenant(self) -> str | None:
        """The tenant it is bound to; ``None`` while it has run nothing."""

    @property
    def busy(self) -> int:
        """Slots taken now (attempts running on it, or slots lent); 0 means idle."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an attempt goes: the candidate at ``index``; ``replace`` means that worker is
    another tenant's idle one, to retire and start afresh for the attempt's tenant."""

    index: int
    replace: bool = False


def place(
    tenant: str, candidates: Sequence[SlotHolder], *, fresh_ok: bool = True
) -> Placement | None:
    """Choose a worker for one attempt of ``tenant`` among workers with a free slot.

    ``candidates`` are ordered coldest first, warmest (most recently used) last, as the
    pool's free stacks are. ``None`` when no candidate may take it (rule 4 above). Without
    ``fresh_ok`` (a worker's identity is fixed when it starts: per-tenant uids), rule 2 is
    skipped and a fresh worker is replaced like another tenant's.
    """
    fresh = -1
    for index in range(len(candidates) - 1, -1, -1):  # warmest first
        owner = candidates[index].tenant
        if owner == tenant:
            return Placement(index)
        if owner is None and fresh < 0 and fresh_ok:
            fresh = index
    if fresh >= 0:
        return Placement(fresh)
    for index, candidate in enumerate(candidates):  # coldest first
        if candidate.busy == 0:
            return Placement(index, replace=True)
    return None


@dataclass(slots=True)
class WarmSlots:
    """Free slots by whom they serve without starting a worker, for ``Scheduler.dispatch``.

    Starting a worker for a tenant costs a fork and the tenant's imports; running on one it
    already has costs nothing. So the scheduler may let a tenant with an idle worker of its own
    go before the tenant whose turn it is, by at most ``[scheduler] affinity`` attempts of its
    fair share (``Dispatcher._warm_instead``). Dispatch consumes these counts as it goes.
    """

    own: dict[str, int] = field(default_factory=dict)  # tenant -> free slots on its workers
    fresh: int = 0  # free slots on workers bound to no tenant yet
    shards: dict[str, int] = field(default_factory=dict)  # tenant -> a shard holding them
    fresh_shards: dict[int, int] = field(default_factory=dict)  # shard -> its fresh slots

    def shard_of(self, tenant: str) -> int | None:
        """The shard to prefer for ``tenant``: one where it has a free slot on a worker of its
        own, else one with a fresh worker; ``None`` when every free slot means a replacement."""
        if self.own.get(tenant, 0) > 0:
            return self.shards.get(tenant)
        for shard, free in self.fresh_shards.items():
            if free > 0:
                return shard
        return None

    def serves(self, tenant: str) -> bool:
        """Whether an attempt of ``tenant`` can start now without replacing a worker."""
        return self.fresh > 0 or self.own.get(tenant, 0) > 0

    def take(self, tenant: str, shard: int = -1) -> None:
        """One attempt of ``tenant`` was dispatched (to ``shard``, -1: unsharded): the slot
        ``place`` will choose there is gone."""
        if self.own.get(tenant, 0) > 0:
            self.own[tenant] -= 1
        elif self.fresh > 0:
            self.fresh -= 1
            if self.fresh_shards.get(shard, 0) > 0:
                self.fresh_shards[shard] -= 1
