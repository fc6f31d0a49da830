"""A long queue's tail kept in the store: in memory only what scheduling needs.

A queued task as an object (``LiveTask``, its ID, its index entries) costs about 430 bytes;
a million of them were 412 MiB (``benchmarks/bench_daemon.py`` W6). Yet only the few at the
head of each queue can be dispatched next. So each (tenant, queue, priority) level holds task
objects up to ``WINDOW``; beyond, a queued task is its ``seq`` and the time it became ready
(16 bytes, in two arrays), its row stays in the store as committed, and the scheduler counts it
(``Scheduler.add_stored``: back pressure, ``queues``, ``stats`` and ``ping`` see it) without
seeing it. When dispatch has taken a level's objects down to ``REFILL_AT``, the next tasks of
its tail are read back from the store (``get_by_seqs``), in ``seq`` order.

Order. Within a level tasks are FIFO. A task joins the tail whenever its level already has
one, so the tail is always the newest of its level, and reading it back in order keeps FIFO.
A task read back keeps the time it became ready, so aging weighs it as if it had been in
memory all along. Across levels, a level whose objects ran out before its refill arrived is
unseen for that moment (milliseconds: ``REFILL_AT`` objects are left when the read starts).

Which tasks: queued ones, not held, without a TTL (the expiry heap holds objects), and only on
a daemon that is its store's one daemon (on a shared store partitions move between daemons,
and ``Scheduler.forget`` needs the objects).

What sees the tail. ``status`` and de-duplication by ID answer from the store, where the row
is as it was committed: nothing changes a task while it is in the tail, because whatever would
(``cancel``, ``pause`` of tasks) takes it out first: by ID with ``take``, by selector with
``take_all``, which reads back every task of the tenants concerned. ``wait`` leaves it in
place: its waiter is released when the task ends, once read back in its turn.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from array import array
from typing import TYPE_CHECKING, Final

from asynctask.daemon.views import task_from_row
from asynctask.model import LiveTask, TaskState
from asynctask.store import StoreError, TaskRow

if TYPE_CHECKING:
    from asynctask.daemon.root import Daemon

log = logging.getLogger("asynctask.daemon")

#: Task objects a (tenant, queue, priority) level keeps before its tail starts.
WINDOW: Final = 2_000
#: A level with no more objects than this has the next of its tail read back.
REFILL_AT: Final = WINDOW * 3 // 4

Level = tuple[str, str, int]


class _Tail:
    """The stored tasks of one level, oldest first: ``seqs[start:]`` and when each became
    ready; ``taken``: seqs among them read back one by one (skipped when reached);
    ``reading``: the seqs of the refill in flight, read back once ``refill`` resolves."""

    __slots__ = ("ats", "reading", "refill", "seqs", "start", "taken")

    def __init__(self) -> None:
        self.seqs = array("q")
        self.ats = array("d")
        self.start = 0
        self.taken: set[int] = set()
        self.reading: frozenset[int] = frozenset()
        self.refill: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self.seqs) - self.start - len(self.taken)

    def find(self, seq: int) -> int | None:
        """The index of ``seq`` if it is in the tail, not taken, not being read."""
        index = bisect.bisect_left(self.seqs, seq, self.start)
        if index < len(self.seqs) and self.seqs[index] == seq and seq not in self.taken:
            return index
        return None

    def compact(self) -> None:
        if self.start > 4096 and self.start * 2 > len(self.seqs):
            del self.seqs[: self.start]
            del self.ats[: self.start]
            self.start = 0


class ColdQueue:
    """The stored tails of one daemon's queues (see the module docstring)."""

    def __init__(self, daemon: Daemon, enabled: bool) -> None:
        self._daemon = daemon
        self.enabled = enabled
        self._tails: dict[Level, _Tail] = {}
        #: Rows kept by ``keep_stored_row`` not counted by the scheduler yet: tasks, bytes.
        self._uncounted: dict[tuple[str, str, str], list[int]] = {}
        #: Tasks in the tails (and refills in flight), for the counts ``ping`` shows.
        self.stored = 0

    def __repr__(self) -> str:
        return f"<ColdQueue stored={self.stored} levels={len(self._tails)}>"

    def keep_stored(self, task: LiveTask, now: float) -> bool:
        """Whether ``task`` (committed, queued, being adopted) joins its level's tail instead
        of memory; if so, it is counted by the scheduler as stored."""
        if not self.would_keep(task):
            return False
        self._append((task.tenant, task.queue, task.priority), task.seq, now)
        self._daemon.scheduler.add_stored(
            task.tenant, task.queue, task.function, len(task.payload), now
        )
        return True

    def would_keep(self, task: LiveTask) -> bool:
        """Whether ``keep_stored`` would take ``task`` now, changing nothing."""
        if not self.enabled or task.state is not TaskState.QUEUED or task.held:
            return False
        if task.expires_at is not None:
            return False
        return self._joins_tail((task.tenant, task.queue, task.priority))

    def keep_stored_row(self, row: TaskRow, now: float) -> bool:
        """``keep_stored`` for a row start-up recovery read, before a task is made of it. The
        caller has checked that it is queued, not held, without a TTL and usable, and calls
        ``count_rows`` before anything else may look at the counts (at the end of its batch)."""
        level = (row.tenant, row.queue, row.priority)
        if not self.enabled or not self._joins_tail(level):
            return False
        self._append(level, row.seq, now)
        where = (row.tenant, row.queue, row.function)
        counted = self._uncounted.get(where)
        if counted is None:
            self._uncounted[where] = [1, len(row.payload)]
        else:
            counted[0] += 1
            counted[1] += len(row.payload)
        return True

    def count_rows(self, now: float) -> None:
        """Have the scheduler count the rows ``keep_stored_row`` kept (one call per queue and
        function, not per row)."""
        uncounted, self._uncounted = self._uncounted, {}
        for (tenant, queue, function), (count, nbytes) in uncounted.items():
            self._daemon.scheduler.add_stored(tenant, queue, function, nbytes, now, count)

    def _joins_tail(self, level: Level) -> bool:
        """A level's new task goes to its tail once it has one, or once ``WINDOW`` of its
        tasks are objects: the tail is always the level's newest, which keeps FIFO."""
        return level in self._tails or self._daemon.scheduler.queued_at_level(*level) >= WINDOW

    def _append(self, level: Level, seq: int, now: float) -> None:
        tail = self._tails.get(level)
        if tail is None:
            tail = self._tails[level] = _Tail()
        tail.seqs.append(seq)
        tail.ats.append(now)
        self.stored += 1

    def check(self) -> None:
        """Start a refill for each level whose objects ran low (called after each step)."""
        if not self._tails:
            return
        scheduler = self._daemon.scheduler
        for level, tail in list(self._tails.items()):
            if tail.refill is not None:
                continue
            if not len(tail):
                del self._tails[level]
                continue
            if scheduler.queued_at_level(*level) <= REFILL_AT:
                tail.refill = self._daemon.loop.create_future()
                self._daemon.background_task(self._refill(level, tail))

    async def _refill(self, level: Level, tail: _Tail) -> None:
        want = WINDOW - self._daemon.scheduler.queued_at_level(*level)
        seqs: list[int] = []
        ats: dict[int, float] = {}
        index = tail.start
        while len(seqs) < want and index < len(tail.seqs):
            seq = tail.seqs[index]
            if seq in tail.taken:
                tail.taken.discard(seq)
            else:
                seqs.append(seq)
                ats[seq] = tail.ats[index]
            index += 1
        tail.start = index
        tail.reading = frozenset(seqs)
        try:
            rows = await self._daemon.store.get_by_seqs(seqs)
        except StoreError as exc:  # back in the tail, in order: read again at the next step
            log.error("could not read %d queued tasks back from the store: %s", len(seqs), exc)
            tail.seqs[tail.start : tail.start] = array("q", seqs)
            tail.ats[tail.start : tail.start] = array("d", [ats[s] for s in seqs])
            await asyncio.sleep(1.0)
            return
        finally:
            tail.reading = frozenset()
            done, tail.refill = tail.refill, None
            assert done is not None
            done.set_result(None)
        found = {row.seq for row in rows}
        self.stored -= len(seqs)
        for seq in seqs:
            if seq not in found:
                log.error("queued task seq=%d is no longer stored; it is not counted", seq)
        for row in rows:
            self._put_back(row, ats[row.seq])
        tail.compact()
        self._daemon.engine.wake()

    def _put_back(self, row: TaskRow, at: float) -> None:
        """A stored task's row read back: uncounted as stored, added as an object (queued
        since ``at``) if it still waits as it did."""
        scheduler = self._daemon.scheduler
        scheduler.unstore(row.tenant, row.queue, row.function, len(row.payload))
        if row.state is not TaskState.QUEUED or row.held:  # not expected: nothing changes it
            log.error("stored task %s/%s is %s now; left as it is", row.tenant, row.id, row.state)
            return
        try:
            task = task_from_row(row)
        except Exception as exc:  # not expected: it was a usable task when it was stored
            log.error("stored task %s/%s cannot be read back (%s); it stays queued in the "
                      "store for the next start", row.tenant, row.id, exc)  # fmt: skip
            return
        self._daemon.engine.live[(task.tenant, task.id)] = task
        scheduler.add(task, at)

    async def holds_key(self, tenant: str, task_id: str) -> bool:
        """Whether task ``task_id`` is in a tail, or being read back from one (``wait``: its
        waiter is then released when it ends, as a task in memory's is; it is not read back
        out of turn)."""
        if not self.stored:
            return False
        row = await self._daemon.store.get(tenant, task_id)
        if row is None:
            return False
        tail = self._tails.get((row.tenant, row.queue, row.priority))
        return tail is not None and (row.seq in tail.reading or tail.find(row.seq) is not None)

    async def take(self, row: TaskRow) -> None:
        """``take_key`` with the task's row already read."""
        tail = self._tails.get((row.tenant, row.queue, row.priority))
        if tail is None:
            return
        if row.seq in tail.reading and tail.refill is not None:
            await asyncio.shield(tail.refill)  # its refill brings it in
            return
        index = tail.find(row.seq)
        if index is None:
            return
        tail.taken.add(row.seq)
        self.stored -= 1
        self._put_back(row, tail.ats[index])

    async def take_all(self, tenants: tuple[str, ...] | None) -> None:
        """Read back every stored task of ``tenants`` (``None``: all): for a request that
        acts on them by selector. Costs the memory they would have cost without tails."""
        while True:
            levels = [
                (level, tail)
                for level, tail in self._tails.items()
                if (tenants is None or level[0] in tenants) and (len(tail) or tail.refill)
            ]
            if not levels:
                return
            for level, tail in levels:
                if tail.refill is not None:
                    await asyncio.shield(tail.refill)
                    continue
                seqs = [s for s in tail.seqs[tail.start :] if s not in tail.taken]
                ats = dict(zip(tail.seqs[tail.start :], tail.ats[tail.start :], strict=True))
                del self._tails[level]
                self.stored -= len(seqs)
                for start in range(0, len(seqs), 10_000):
                    part = seqs[start : start + 10_000]
                    try:
                        rows = await self._daemon.store.get_by_seqs(part)
                    except StoreError:
                        self._restore(level, seqs[start:], ats)
                        raise
                    for row in rows:
                        self._put_back(row, ats[row.seq])

    def _restore(self, level: Level, seqs: list[int], ats: dict[int, float]) -> None:
        """Tasks ``take_all`` could not read back go back into a tail, in order, ahead of any
        that joined since."""
        tail = self._tails.get(level)
        if tail is None:
            tail = self._tails[level] = _Tail()
        tail.seqs[tail.start : tail.start] = array("q", seqs)
        tail.ats[tail.start : tail.start] = array("d", [ats[s] for s in seqs])
        self.stored += len(seqs)
