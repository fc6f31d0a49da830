"""``SlotBook``: which accepting workers have a free slot, per shard, and which one a job takes.

``idle`` is read on every step of the daemon and ``run`` is called for every attempt, so the
counts are kept as they change (one stack per shard, warmest last) instead of being recounted
from the workers. Choosing among them by tenant is ``core.slots.place``; this is the bookkeeping
around it.
"""

from __future__ import annotations

from asynctask.core.slots import Placement, WarmSlots, place
from asynctask.executor.workers import Roster, State, WorkerRecord


class SlotBook:
    """The free slots of accepting workers. A worker starts and stops accepting only here; a
    job or a loan that takes a slot (``WorkerPool.run``, ``Placer.lend``,
    ``Intake.start_waiting_jobs``) updates ``by_shard`` and ``count`` in place, on the hot path."""

    def __init__(self, roster: Roster) -> None:
        config = roster.config
        self._roster = roster
        self._slots = config.concurrency
        # One stack per shard of the accepting workers with a free slot: the most recently
        # used worker, the warmest, is last.
        self.stacks: list[list[WorkerRecord]] = [[] for _ in range(config.shards)]
        self.by_shard = [0] * config.shards  # per shard: free slots of accepting workers
        self.count = 0  # their sum: ``idle`` is read on every daemon step
        # A worker bound to no tenant may take any tenant's job, unless workers get their
        # identity when they start (``PoolConfig.bind_at_start``).
        self.fresh_ok = not config.bind_at_start

    def idle_by_shard(self) -> list[int]:
        """``idle`` per shard, indexed by shard (``config.shards`` long)."""
        return list(self.by_shard)

    def warm_slots(self) -> WarmSlots:
        """Free slots by the tenant whose worker they are on (``core.slots.WarmSlots``)."""
        warm = WarmSlots()
        own = warm.own
        slots = self._slots
        shards = warm.shards
        for shard, stack in enumerate(self.stacks):
            for worker in stack:
                free = slots - len(worker.jobs) - worker.lent
                if worker.tenant is None:
                    if not self.fresh_ok:
                        continue
                    warm.fresh += free
                    warm.fresh_shards[shard] = warm.fresh_shards.get(shard, 0) + free
                else:
                    own[worker.tenant] = own.get(worker.tenant, 0) + free
                    shards[worker.tenant] = shard
        return warm

    def best_shard(self, tenant: str) -> tuple[int, Placement | None]:
        """With no shard asked for: a shard where ``tenant`` has an idle worker of its own, else
        of the shards with a fresh worker, else of all, the one with the most free slots (the
        lowest on ties): no worker is replaced that need not be, and load stays spread."""
        fresh: tuple[int, Placement] | None = None
        for index, stack in enumerate(self.stacks):
            placement = place(tenant, stack, fresh_ok=self.fresh_ok) if stack else None
            if placement is None or placement.replace:
                continue
            if stack[placement.index].tenant == tenant:
                return index, placement
            if fresh is None or self.by_shard[index] > self.by_shard[fresh[0]]:
                fresh = index, placement
        if fresh is not None:
            return fresh
        return max(range(len(self.stacks)), key=self.by_shard.__getitem__), None

    def slot_freed(self, worker: WorkerRecord) -> None:
        """One slot of an accepting worker is free again (a job ended, a loan came back)."""
        self.by_shard[worker.shard] += 1
        self.count += 1
        if len(worker.jobs) + worker.lent == self._slots - 1:  # it was full, so off its stack
            self.stacks[worker.shard].append(worker)

    def make_ready(self, worker: WorkerRecord) -> None:
        assert self._roster.loop is not None
        worker.idle_since = self._roster.loop.time()
        worker.state = State.IDLE
        worker.accepting = True
        self.stacks[worker.shard].append(worker)
        self.by_shard[worker.shard] += self._slots
        self.count += self._slots

    def stop_accepting(self, worker: WorkerRecord) -> None:
        """No new jobs for ``worker``: its free slots leave the pool's count."""
        if not worker.accepting:
            return
        worker.accepting = False
        free = self._slots - len(worker.jobs) - worker.lent
        self.by_shard[worker.shard] -= free
        self.count -= free
        stack = self.stacks[worker.shard]
        if worker in stack:
            stack.remove(worker)
