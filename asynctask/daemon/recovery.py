"""Start-up recovery: the live tasks, pauses and cron entries come back from the store, an
attempt that was running (or had started, says the start journal) counts as interrupted, and a
row that cannot be used is set aside in the quarantine table instead of stopping the start."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from asynctask.core.scheduler import Action
from asynctask.daemon.crontab import UnusableCron
from asynctask.daemon.views import check_recovered, task_from_row
from asynctask.model import TaskState
from asynctask.server.requests import PAUSE_KINDS
from asynctask.store import Quarantine, SkippedRow, StoreError, TaskRow
from asynctask.store.errors import describe
from asynctask.store.starts import read_starts

if TYPE_CHECKING:
    from asynctask.daemon.root import Daemon

log = logging.getLogger("asynctask.daemon")
#: Unusable stored rows logged one by one at start-up; the recovery line counts them all.
_SKIPPED_LOGGED = 100
#: Stored live tasks loaded before the daemon serves; a longer backlog's rest loads while it
#: serves (1,000,000 tasks took 5.7 s before the first request was answered). Below it a
#: restart is as before: everything loaded before the first request.
BEFORE_SERVING = 10_000
#: Rows a batch of the load reads: the loop serves requests between two batches.
BATCH = 5_000


class Recovery:
    """The start-up recovery of one daemon (see the module docstring).

    A long backlog loads in two parts: the first ``BEFORE_SERVING`` rows before the daemon
    serves (``load``), the rest while it serves (``load_rest``, a background task). Meanwhile
    nothing is dispatched (``Engine.loading``), and the requests that would miss a task not
    loaded yet wait for the end of the load (``Engine.loaded``): cancel, pause of tasks, wait.
    Status, list and de-duplication read the store, which has every task; a submit is
    stored at once and taken in when the load ends (``Engine.adopt``)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._engine = daemon.engine
        self._started: dict[int, int] = {}
        self._unusable: list[Quarantine] = []  # set aside once everything is loaded
        self._interrupted: list[Action] = []
        self._skipped: list[SkippedRow] = []  # left in the store as they are, for an operator
        self._loaded = 0
        self._cap = 0
        self._batches: AsyncIterator[list[TaskRow]] | None = None

    async def load(self) -> int:
        """Load the live tasks back, up to ``BEFORE_SERVING`` of them; returns how many. If
        more are stored, ``Engine.loading`` is set and ``load_rest`` loads them. The cyclic
        collector is off meanwhile and the result is frozen out of its reach: a million
        long-lived objects made it rescan everything again and again (1,000,000 tasks: 3.9 s
        to build them with it on, 1.8 s with it off)."""
        gc.disable()
        try:
            await self._prepare()
            if await self._load_batches(BEFORE_SERVING):
                await self._end_load()
            else:
                self._engine.begin_loading(self._cap)
            return self._loaded
        finally:
            gc.freeze()
            gc.enable()

    async def load_rest(self) -> int:
        """Load the rest of a long backlog, batch by batch with the loop serving in between;
        returns how many tasks were loaded in all."""
        await self._load_batches(None)
        await self._end_load()
        return self._loaded

    async def close(self) -> None:
        """The load stops (the daemon stops first): its read connection is closed."""
        close = getattr(self._batches, "aclose", None)
        self._batches = None
        if close is not None:
            await close()

    async def empty_start_journal(self) -> None:
        """Once start-up's writes (the interrupted attempts it found) have committed, the
        journal's lines are in the database; until then (a full disk) they are kept. A line
        kept longer does no harm: one whose attempt the database already counts is ignored."""
        with contextlib.suppress(StoreError):
            await self._daemon.store.flush()
            if self._daemon.starts is not None and not self._daemon.guard.unstored:
                self._daemon.starts.reset()

    async def _prepare(self) -> None:
        cluster = self._daemon.cluster is not None
        started = await asyncio.to_thread(read_starts, self._daemon.home)
        if self._daemon.cluster is not None:
            # On a shared store the live tasks come with the partitions the lease loop takes
            # (``cluster.py``), which applies the journal as they load; task numbers come
            # from the database's blocks.
            self._daemon.cluster.earlier_starts = started
        else:
            # Above the journal's numbers too: a task may start before its insert commits
            # (``Intake.submit_one``), and a number the store never got must not be given
            # to a new task while a journal line still says it began.
            stored = await self._daemon.store.max_seq()
            self._engine.next_seq = max(stored, max(started, default=0)) + 1
        self._started = started
        self._cap = self._engine.next_seq - 1  # submits from now on are not the backlog's
        unusable = self._unusable
        for kind, tenant, name in await self._daemon.store.load_pauses():
            try:
                kind.encode(), tenant.encode(), name.encode()  # escaped: not UTF-8
                if kind not in PAUSE_KINDS:
                    raise ValueError(f"unknown pause kind {kind!r}")
            except (ValueError, UnicodeError) as exc:
                label = f"{kind} {tenant}/{name}"
                log.error("pause %s cannot be used and is skipped: %s", label, describe(exc),
                          extra={"event": "pause_skipped"})  # fmt: skip
                unusable.append(Quarantine("pauses", (kind, tenant, name), label, describe(exc)))
                continue
            self._daemon.scheduler.pause((kind, tenant, name))
        now = self._daemon.clock()
        for tenant, name, blob in await self._daemon.store.load_crons():
            try:
                self._daemon.missed_slots += self._daemon.crons.load_stored(tenant, name, blob, now)
            except UnusableCron as exc:
                log.error(
                    "cron %s/%s cannot be used and is skipped: %s",
                    tenant, name, exc,
                    extra={"event": "cron_skipped", "tenant": tenant, "cron": name},
                )  # fmt: skip
                unusable.append(Quarantine("crons", (tenant, name), f"{tenant}/{name}", str(exc)))
        # In batches: each is turned into tasks (sharing equal values) before the next is read,
        # so the rows of a million-task backlog never all exist beside their tasks.
        if not cluster:
            self._batches = self._daemon.store.load_live_batches(size=BATCH, skipped=self._skipped)

    async def _load_batches(self, limit: int | None) -> bool:
        """Load batches until ``limit`` rows were loaded in all (``None``: no limit); whether
        every batch is loaded."""
        batches = self._batches
        if batches is None:
            return True
        declare = self._daemon.intake.declare_limits
        started = self._started
        skipped = self._skipped
        engine = self._engine
        cold = engine.cold
        cap = self._cap
        queued = TaskState.QUEUED
        plain: dict[int, tuple[dict[str, Any], bool]] = {}  # by options: may go to a tail
        while limit is None or self._loaded < limit:
            try:
                rows = await anext(batches)
            except StopAsyncIteration:
                self._batches = None
                return True
            now = self._daemon.clock()
            for row in rows:
                if row.seq > cap:  # submitted since the start: ``Engine.adopt`` has it
                    continue
                options = row.options
                known = plain.get(id(options))
                if known is None or known[0] is not options:
                    known = plain[id(options)] = (options, _plain(options))
                if (  # a long queue's tail (``coldqueue.py``): no task object is made
                    known[1]
                    and row.state is queued
                    and not row.held
                    and type(row.labels) is dict
                    and started.get(row.seq, 0) <= row.attempts
                    and cold.keep_stored_row(row, now)
                ):
                    declare(row.function, options.get("limits"), now)
                    self._loaded += 1
                    continue
                try:
                    task = task_from_row(row)  # the rows share equal values already
                    check_recovered(task)
                    declare(task.function, task.options.get("limits"), now)
                except Exception as exc:  # decoded, but not a task this version can run
                    skipped.append(SkippedRow(row.seq, row.tenant, row.id, describe(exc)))
                    continue
                self._loaded += 1
                if started.get(task.seq, 0) > task.attempts:  # began before "running" committed
                    task.attempts = started[task.seq]
                    task.state = TaskState.RUNNING
                if task.state is TaskState.RUNNING:
                    engine.live[(task.tenant, task.id)] = task
                    reason = "the daemon stopped during the attempt"
                    self._interrupted.append(self._daemon.scheduler.interrupted(task, reason, now))
                else:  # in memory, or in its queue's stored tail (``coldqueue.py``)
                    engine.adopt(task, now, recovered=True)
            cold.count_rows(now)  # the batch's stored rows, one call per queue and function
        return False

    async def _end_load(self) -> None:
        skipped = self._skipped
        for bad in skipped[:_SKIPPED_LOGGED]:
            log.error("skipped %s", bad, extra={"event": "row_skipped"})
        unusable = self._unusable
        unusable += (
            Quarantine("tasks", (bad.seq,), f"seq={bad.seq} {bad.tenant}/{bad.id}", bad.reason)
            for bad in skipped
        )
        await self.set_aside(unusable)
        interrupted, self._interrupted = self._interrupted, []
        self._daemon.engine.perform(interrupted)
        loaded = self._loaded
        if loaded or skipped:
            log.info(
                "recovered %d live tasks, %d of them interrupted attempts; skipped %d bad rows",
                loaded, len(interrupted), len(skipped),
                extra={"event": "recovery", "live": loaded, "interrupted": len(interrupted),
                       "skipped": len(skipped)},
            )  # fmt: skip

    async def set_aside(self, rows: list[Quarantine]) -> None:
        """Move the rows start-up skipped into the ``quarantine`` table (``asynctask doctor``
        lists them), so that the next start does not meet them again. A store that cannot
        write (read-only, full) leaves them where they are: they were skipped, the daemon
        serves all the same, and the log says so."""
        if not rows:
            return
        try:
            moved = await self._daemon.store.quarantine(rows, self._daemon.clock())
        except StoreError as exc:
            log.error(
                "could not set aside %d unusable row(s), so the next start skips them again "
                "(`asynctask cron remove NAME` deletes a cron entry): %s", len(rows), exc,
                extra={"event": "quarantine_failed", "rows": len(rows)},
            )  # fmt: skip
            return
        for row in rows:
            if row.source == "crons":  # no longer stored: no longer listed by `cron list`
                self._daemon.crons.remove(*row.key)
        log.warning(
            "set aside %d unusable row(s) in the quarantine table; `asynctask doctor` lists "
            "them", moved, extra={"event": "quarantined", "rows": moved},
        )  # fmt: skip


def _plain(options: dict[str, Any]) -> bool:
    """Whether a recovered task with these options may stay in a queue's stored tail: no TTL
    (the expiry heap holds task objects), and what ``check_recovered`` checks of them holds."""
    if type(options) is not dict:  # decoded, but not a map: ``task_from_row`` says why
        return False
    timeout = options.get("timeout")
    retries = options.get("retries", 0)
    return (
        options.get("expires_at") is None
        and (timeout is None or type(timeout) in (int, float))
        and type(retries) is int
    )
