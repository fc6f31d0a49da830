"""``Scaler``: how many workers the pool keeps, and starting the ones it lacks.

The pool is kept at ``target`` workers: ``config.workers`` at first, grown up to
``max_workers`` while work waits with every slot taken (within ``memory_budget``), and shrunk
back by retiring workers above ``config.workers`` that were idle for ``idle_timeout``. Any worker
that goes - killed, exited, recycled, reloaded - is replaced by ``refill``.

Workers that die before they are ready are restarted with a backoff (0.1 s doubling to 5 s), one
probe at a time, so a broken interpreter or ``cwd`` costs a log line every few seconds, not a CPU.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from asynctask.executor.workers import (
    Roster,
    State,
    WorkerRecord,
    log,
    rss,
)
from asynctask.model import ErrorKind, error_dict

if TYPE_CHECKING:
    from asynctask.executor.placement import Placer
    from asynctask.executor.slotbook import SlotBook
    from asynctask.executor.spawner import Spawner
    from asynctask.executor.stopping import Stopper

_BACKOFF_FIRST: Final = 0.1
_BACKOFF_MAX: Final = 5.0


class Scaler:
    """Keeps the pool at its target size; see the module docstring."""

    def __init__(self, roster: Roster, book: SlotBook) -> None:
        self._roster = roster
        self._book = book
        self._config = roster.config
        self._workers = roster.workers
        self._spawner: Spawner  # wire()
        self._stopper: Stopper  # wire()
        self._placer: Placer  # wire()
        # Autoscaling: the size ``refill`` keeps, between ``workers`` and ``max_workers``.
        self.max_size = max(
            roster.config.workers, roster.config.max_workers or roster.config.workers
        )
        self.target = roster.config.workers
        self.scale_timer: asyncio.TimerHandle | None = None
        self.failures = 0  # consecutive workers that died before they were ready
        self.backoff: asyncio.TimerHandle | None = None

    def wire(self, spawner: Spawner, stopper: Stopper, placer: Placer) -> None:
        """The other parts it calls, given once all of them exist (some call it too)."""
        self._spawner = spawner
        self._stopper = stopper
        self._placer = placer

    @property
    def starting(self) -> int:
        return sum(1 for worker in self._workers if worker.state is State.STARTING)

    @property
    def size(self) -> int:
        """Workers that count towards ``config.workers``: starting, or ready and accepting.

        Workers being killed, retired or drained for recycling are not counted: their
        replacements already are.
        """
        return sum(
            1
            for worker in self._workers
            if worker.accepting or (worker.state is State.STARTING and not worker.dedicated)
        )

    def grow(self, wanted: int) -> int:
        """Start up to ``wanted`` more workers, within ``max_workers``; how many it starts.

        The daemon calls it when work waits and every slot is taken. Workers still starting
        count as growth already, so repeated calls while they boot do not overshoot."""
        if self._roster.closing or not self._roster.started or self.failures:
            return 0
        room = self.max_size - self.target
        if room <= 0:
            return 0  # the common case under load: checked on every step, so kept cheap
        count = max(0, min(wanted - self.starting, room))
        if count and self._config.memory_budget:
            count = min(count, self.room_in_budget())
        if count:
            self.target += count
            log.info(
                "scaling up by %d to %d workers",
                count,
                self.target,
                extra={"event": "pool_grow", "workers": self.target, "added": count},
            )
            self.refill()
            self.arm_scale_down()
        return count

    def room_in_budget(self) -> int:
        """Workers that fit in ``memory_budget`` beside the ones running, each costing what
        they cost on average now."""
        sizes = [rss(w.task_pid or w.pid) for w in self._workers if w.pid > 0]
        used = sum(sizes)
        each = max(used // max(len(sizes), 1), 1)
        room = (self._config.memory_budget - used) // each
        if room <= 0:
            log.warning(
                "not scaling up: workers hold %d MiB of the %d MiB memory budget",
                used >> 20, self._config.memory_budget >> 20,
            )  # fmt: skip
        return max(0, int(room))

    def arm_scale_down(self) -> None:
        if self.scale_timer is None and self._roster.loop is not None and not self._roster.closing:
            period = max(0.05, min(1.0, self._config.idle_timeout / 4))
            self.scale_timer = self._roster.loop.call_later(period, self.scale_down)

    def reload(self) -> int:
        """Replace the workers so the next attempts import task code anew (``asynctask
        reload``, SIGHUP): idle ones retire now; busy ones take no new job and retire once
        their running attempts end, which finish on the old code. Replacements start at once
        (``refill``). Workers still starting have imported no task code and stay; so do
        dedicated workers (gone after their one job) and lenders (back in rotation soon).
        Returns how many workers were asked to go."""
        if not self._roster.started or self._roster.closing:
            return 0
        chosen = [w for w in self._workers if w.accepting and not w.dedicated and not w.lent]
        for worker in chosen:
            if worker.jobs:
                self._book.stop_accepting(worker)  # ``Intake.on_done`` retires it after its last
            else:
                self._stopper.retire(worker)
        self.refill()
        return len(chosen)

    def scale_down(self) -> None:
        """Retire workers above ``workers`` that have been idle for ``idle_timeout``."""
        self.scale_timer = None
        assert self._roster.loop is not None
        if self._roster.closing:
            return
        cutoff = self._roster.loop.time() - self._config.idle_timeout
        for worker in sorted(self._workers, key=lambda w: w.idle_since):
            if self.target <= self._config.workers:
                break
            if worker.state is State.IDLE and worker.accepting and worker.idle_since <= cutoff:
                self.target -= 1
                self._stopper.retire(worker)
                log.info("scaling down to %d workers (idle for %gs)", self.target,
                         self._config.idle_timeout,
                         extra={"event": "pool_shrink", "workers": self.target})  # fmt: skip
        if self.target > self._config.workers:
            self.arm_scale_down()

    def spawn_soon(self, worker: WorkerRecord | None = None) -> None:
        """Start one replacement (or ``worker``, a dedicated one) in the background; failures
        count towards the backoff."""
        assert self._roster.loop is not None
        if worker is None:
            worker = self._spawner.new_worker(self._roster.loop)
        started = worker

        async def spawn() -> None:
            try:
                await self._spawner.spawn(started)
            except Exception as exc:
                log.error("cannot start a worker with %r: %s", self._config.python, exc)
                # A dedicated worker, or a replacement, had a job waiting for it: report it.
                error = error_dict(
                    ErrorKind.WORKER_DIED, "WorkerDied", f"cannot start a worker: {exc}"
                )
                for outcome in self._stopper.take_jobs(started, {}, error, report=True):
                    self._roster.emit(outcome)
                if started.dedicated:
                    self._placer.return_slot(started)
                    return
                self.failures += 1
                self.refill()

        task = self._roster.loop.create_task(spawn())
        self._spawner.tasks.add(task)
        task.add_done_callback(self._spawner.tasks.discard)

    def refill(self) -> None:
        """Bring the pool back to ``target``; after start failures, one probe at a time."""
        if not self._roster.started or self._roster.closing or self.backoff is not None:
            return
        missing = self.target - self.size
        if missing <= 0:
            return
        if self.failures == 0:
            for _ in range(missing):
                self.spawn_soon()
            return
        if self.starting:
            return  # a probe is on its way; its fate decides what happens next
        assert self._roster.loop is not None
        delay = min(_BACKOFF_FIRST * 2 ** (self.failures - 1), _BACKOFF_MAX)
        log.warning(
            "%d worker start(s) failed in a row; trying again in %.1fs", self.failures, delay
        )
        self.backoff = self._roster.loop.call_later(delay, self.after_backoff)

    def after_backoff(self) -> None:
        self.backoff = None
        if not self._roster.closing and self.size < self.target:
            self.spawn_soon()
