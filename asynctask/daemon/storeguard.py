"""State changes that already happened, kept and re-written until the store takes them.

Why: an attempt that ended, or a task that was cancelled, cannot be refused after the fact. If
the commit that records it fails (disk full, a read-only file), the change must neither be
forgotten nor be treated as stored. Forgetting it stranded tasks: the daemon dropped a finished
task from memory while the database still said ``running``, so ``wait`` answered with that
unfinished state, a resubmit of its ID de-duplicated to it, and the next start ran it again
under the same attempt number. Treating it as stored would acknowledge what is not durable.

So ``StoreGuard.record`` writes a task's current state and returns a future that resolves only
once that state is committed. A failed commit puts the task in ``unstored``; one background loop
re-writes the latest state of every unstored task in one transaction, with a growing pause,
until it commits. Whatever depends on the change waits on the future: the attempt starts only
once its count is stored, and a finished task leaves memory (and its waiters hear of it) only
once its end is stored. While nothing is unstored but the store reports a failure, the loop
probes it with a ``Touch`` write, so health comes back as soon as the disk does, without a
request having to fail first.

Failures are logged once per ``log_interval`` with a count of what was held back: on a full
disk every write fails, and a line per write buried the log (1,200 lines a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from asynctask.model import LiveTask
from asynctask.server.loglimit import LogLimiter, held_back
from asynctask.store import Fenced, Op, StoreError, TaskStore, Touch

log = logging.getLogger("asynctask.daemon")

#: The first pause before a re-write, doubled after each failure up to ``MAX_PAUSE``.
MIN_PAUSE: Final = 0.1
MAX_PAUSE: Final = 2.0
#: How often the loop looks at the store's health while nothing is unstored.
HEALTH_CHECK: Final = 1.0


@dataclass(slots=True)
class _Unstored:
    task: LiveTask
    extra: list[Op] = field(default_factory=list)
    futures: list[asyncio.Future[None]] = field(default_factory=list)


class StoreGuard:
    """See the module docstring. ``update_of`` builds the op that writes a task's state."""

    def __init__(
        self,
        store: TaskStore,
        update_of: Callable[[LiveTask], Op],
        clock: Callable[[], float],
        log_interval: float = 10.0,
    ) -> None:
        self._store = store
        self._update_of = update_of
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._unstored: dict[int, _Unstored] = {}
        self._wake = asyncio.Event()
        self._limiter = LogLimiter(log_interval)
        self._task: asyncio.Task[None] | None = None
        #: Re-write transactions that committed (for tests and ``ping``).
        self.rewrites = 0
        #: Tasks whose insert was never stored (``forget``): their changes are not re-written.
        self._forgotten: set[int] = set()

    def __repr__(self) -> str:
        return f"<StoreGuard {len(self._unstored)} unstored, {self.rewrites} re-writes>"

    @property
    def unstored(self) -> int:
        """Tasks whose latest change is not stored yet."""
        return len(self._unstored)

    def is_unstored(self, seq: int) -> bool:
        return seq in self._unstored

    def start(self) -> None:
        self._task = self._loop.create_task(self._run(), name="asynctask-store-guard")

    async def close(self) -> int:
        """Stop re-writing; returns how many tasks' changes were never stored (the next start
        finds those tasks as the store last had them, and runs or re-runs them)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left = len(self._unstored)
        for entry in self._unstored.values():
            for future in entry.futures:
                if not future.done():
                    future.cancel()
        self._unstored.clear()
        return left

    def record(self, task: LiveTask, extra: Sequence[Op] = ()) -> asyncio.Future[None]:
        """Write ``task``'s current state (and ``extra`` ops, in the same transaction); the
        future resolves once it is stored, however many attempts that takes. It is cancelled
        if the daemon stops first, or if the fence refused it (the task's partition moved to
        another daemon, which owns the task's state from then on: ``Fenced``)."""
        future: asyncio.Future[None] = self._loop.create_future()
        entry = self._unstored.get(task.seq)
        if entry is not None:  # an earlier change is not stored: the re-write carries this one
            entry.extra.extend(extra)
            entry.futures.append(future)
            return future
        store = self._store
        try:
            if not extra:  # the common case: joins whatever batch is open (group commit)
                commits = [store.put(self._update_of(task))]
            else:
                with store.one_transaction():
                    commits = [store.put(self._update_of(task))]
                    commits.extend(store.put(op) for op in extra)
        except StoreError as error:  # the store is closed or broken: nothing was queued
            self._hold(task, list(extra), future, error)
            return future
        committed: asyncio.Future[Any] = (
            commits[0] if len(commits) == 1 else asyncio.gather(*commits)
        )

        def done(result: asyncio.Future[Any]) -> None:
            if future.done():
                return
            error = None if result.cancelled() else result.exception()
            if error is None and not result.cancelled():
                future.set_result(None)
            elif isinstance(error, Fenced):  # another daemon owns the task now: not ours
                future.cancel()
            else:
                self._hold(task, list(extra), future, error)

        committed.add_done_callback(done)
        return future

    def forget(self, seq: int) -> None:
        """Task ``seq`` was never stored (its submit's commit failed after it had started:
        ``Intake.submit_one``), so there is no row to write its changes to: drop those held,
        and refuse those still in flight when they fail. Re-writing them would update no row,
        and such a no-op commit would report a failing store healthy."""
        self._forgotten.add(seq)
        entry = self._unstored.pop(seq, None)
        for future in entry.futures if entry is not None else ():
            future.cancel()

    def _hold(
        self,
        task: LiveTask,
        extra: list[Op],
        future: asyncio.Future[None],
        error: BaseException | None,
    ) -> None:
        if task.seq in self._forgotten:
            future.cancel()
            return
        entry = self._unstored.get(task.seq)
        if entry is None:
            entry = self._unstored[task.seq] = _Unstored(task)
        entry.extra.extend(extra)
        entry.futures.append(future)
        self._log(f"a task's state change was not stored, retrying: {error}")
        self._wake.set()

    def _log(self, message: str) -> None:
        held = self._limiter.allow("store")
        if held is not None:
            log.error("%s%s", message, held_back(held), extra={"event": "store_failed"})

    async def _run(self) -> None:
        pause = MIN_PAUSE
        while True:
            if not self._unstored and self._store.failure is None:
                pause = MIN_PAUSE
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), HEALTH_CHECK)
                continue
            await asyncio.sleep(pause)
            pause = MIN_PAUSE if await self._write_again() else min(pause * 2, MAX_PAUSE)

    async def _write_again(self) -> bool:
        """One transaction with the latest state of every unstored task (or a probe).

        The entries leave ``unstored`` while it is in flight: a change recorded meanwhile is
        written on its own, after this one, so the newest state still lands last."""
        entries = list(self._unstored.values())
        self._unstored.clear()
        store = self._store
        try:
            per_entry: list[list[asyncio.Future[None]]] = []
            with store.one_transaction():
                commits = [store.put(Touch(self._clock()))]
                for entry in entries:
                    own = [store.put(self._update_of(entry.task))]
                    own.extend(store.put(op) for op in entry.extra)
                    per_entry.append(own)
                    commits.extend(own)
            outcomes = await asyncio.gather(*commits, return_exceptions=True)
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            fenced = {
                index
                for index, own in enumerate(per_entry)
                if any(f.done() and not f.cancelled() and isinstance(f.exception(), Fenced)
                       for f in own)
            }  # fmt: skip
            if any(not isinstance(o, Fenced) for o in failed):
                raise next(o for o in failed if not isinstance(o, Fenced))
            for index in sorted(fenced, reverse=True):  # another daemon's task now: let go
                for future in entries.pop(index).futures:
                    future.cancel()
        except (StoreError, asyncio.CancelledError) as error:
            for entry in entries:  # back, ahead of anything held since
                later = self._unstored.get(entry.task.seq)
                if later is not None:
                    entry.extra.extend(later.extra)
                    entry.futures.extend(later.futures)
                self._unstored[entry.task.seq] = entry
            if isinstance(error, asyncio.CancelledError):
                raise
            if entries:
                self._log(f"{len(entries)} task state change(s) still not stored: {error}")
            return False
        for entry in entries:
            for future in entry.futures:
                if not future.done():
                    future.set_result(None)
        if entries:
            self.rewrites += 1
            log.warning(
                "storage recovered: %d held task state change(s) are now stored",
                len(entries),
                extra={"event": "store_recovered"},
            )
        return True
