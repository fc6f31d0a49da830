"""Bulk and single control of tasks: cancel, retry (the dead-letter queue), delete, pause and
resume, hold and release by selector. Each one is a single transaction, so a selector is acted
on whole or not at all, and the reply comes once it is stored."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from asynctask.daemon.views import row_of, selected, task_from_row
from asynctask.errors import NotFound, ShuttingDown, UsageError
from asynctask.model import (
    DEFAULT_TENANT,
    LIVE_STATES,
    WAITING_STATES,
    ListQuery,
    LiveTask,
    TaskState,
)
from asynctask.store import ClearPause, DeleteTask, ReplaceTask, SetPause, TaskFilter, TaskRow

if TYPE_CHECKING:
    from asynctask.daemon.root import Daemon

log = logging.getLogger("asynctask.daemon")

#: The most stored tasks one ``retry`` or ``delete`` request touches (run it again for more).
MAX_SELECTED = 1_000_000


class Control:
    """The control requests of one daemon (see the module docstring)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._engine = daemon.engine

    async def set_paused(self, target: tuple[str, str, str], paused: bool) -> bool:
        """Pause or resume a tenant, queue or function; durable before the reply.

        Returns whether anything changed (pausing twice is allowed and changes nothing)."""
        if self._daemon.scheduler.is_paused(target) == paused:
            return False
        op = SetPause(*target) if paused else ClearPause(*target)
        await self._daemon.store.put(op)
        if paused:
            self._daemon.scheduler.pause(target)
        else:
            self._daemon.scheduler.resume(target)
            self._daemon.engine.wake()
        log.info("%s %s %s", "paused" if paused else "resumed", target[0], target[1] or target[2])
        return True

    async def hold(self, query: ListQuery, task_id: str | None, paused: bool) -> int:
        """Pause (or resume) the waiting tasks a selector matches, one by one, in one
        transaction; durable before the reply. Unlike a tenant, queue or function pause, it
        holds only what waits now, not later submits. Returns how many changed."""
        await self._engine.loaded.wait()  # a backlog still loading: every task is seen
        await self._take_stored(query, task_id)
        now = self._daemon.clock()
        matching = self._live_matching(query, task_id, WAITING_STATES)
        if task_id is not None and not matching:
            tenant = query.tenants[0] if query.tenants else DEFAULT_TENANT
            row = await self._daemon.store.get(tenant, task_id)
            if row is not None and row.state in WAITING_STATES:
                await self._engine.cold.take(row)
                await self._refuse_elsewhere(tenant, task_id, "paused or resumed")
                matching = self._live_matching(query, task_id, WAITING_STATES)
        if task_id is not None and not matching:
            await self._raise_not_waiting(query, task_id, "paused" if paused else "resumed")
        scheduler = self._daemon.scheduler
        changed = scheduler.hold(matching) if paused else scheduler.release(matching, now)
        with self._daemon.store.one_transaction():
            for task in changed:
                self._daemon.engine.persist(task)
        if changed:
            log.info("%s %d tasks", "paused" if paused else "resumed", len(changed))
            if not paused:
                self._daemon.engine.wake()
            await self._daemon.store.flush()  # the reply says it is done only once it is stored
        return len(changed)

    def _live_matching(
        self, query: ListQuery, task_id: str | None, states: frozenset[TaskState]
    ) -> list[LiveTask]:
        """The live tasks in ``states`` that the selector (and ``task_id``, if given) matches,
        leaving out failed tasks a ``retry`` is bringing back (not in the scheduler yet)."""
        return [
            t
            for t in self._engine.live.values()
            if t.state in states
            and t.seq not in self._engine.retrying
            and (task_id is None or t.id == task_id)
            and selected(t, query)
        ]

    async def _take_stored(self, query: ListQuery, task_id: str | None) -> None:
        """A selector may match queued tasks of a long queue's tail, which the store alone
        holds (``coldqueue.py``): read them back first, so that it acts on every one. (One
        ID is read back once the store says it waits: ``ColdQueue.take``.)"""
        if task_id is not None or not self._engine.cold.stored:
            return
        if query.states and TaskState.QUEUED not in query.states:
            return
        await self._engine.cold.take_all(query.tenants)

    async def _refuse_elsewhere(self, tenant: str, task_id: str, verb: str) -> None:
        """A live task that another daemon sharing the store serves (docs/scale-out.md): it
        is in that daemon's memory only, so only that one can change it. Says which. Served
        here but not in memory yet: it was submitted on another daemon a moment ago, so the
        inbox is read now."""
        cluster = self._daemon.cluster
        if cluster is None:
            return
        if cluster.serves(tenant):
            await cluster.catch_up()
            return
        owner = await cluster.owner_of(tenant)
        raise UsageError(
            f"task {task_id!r} of tenant {tenant!r} can only be {verb} by the daemon serving "
            f"its tenant, {owner or 'none right now (its partition is moving)'}: send the "
            "request to that daemon (`asynctask nodes` lists them)"
        )

    async def _raise_not_waiting(self, query: ListQuery, task_id: str, verb: str) -> None:
        """An ID that names no waiting task: "not found", or why it cannot be ``verb``."""
        tenant = query.tenants[0] if query.tenants else DEFAULT_TENANT
        status = await self._daemon.queries.status(tenant, task_id)  # unknown: NotFound
        raise UsageError(f"task {task_id!r} is {status['state']}: only waiting tasks can be {verb}")

    async def cancel(self, query: ListQuery, task_id: str | None = None) -> int:
        """Cancel every live task the selector (and ``task_id``, if given) matches, in one
        transaction; running attempts have their workers stopped (their late reports are
        ignored). Returns how many."""
        assert self._daemon.pool is not None
        await self._engine.loaded.wait()  # a backlog still loading: every task is seen
        await self._take_stored(query, task_id)
        now = self._daemon.clock()
        chosen = self._live_matching(query, task_id, LIVE_STATES)
        if task_id is not None and not chosen:  # one ID: unknown is "not found", as elsewhere
            await self._daemon.store.flush()
            tenant = query.tenants[0] if query.tenants else DEFAULT_TENANT
            row = await self._daemon.store.get(tenant, task_id)
            if row is None:
                raise NotFound(f"no task {task_id!r} in tenant {tenant!r}")
            if row.state in LIVE_STATES:
                await self._engine.cold.take(row)
                await self._refuse_elsewhere(tenant, task_id, "cancelled")
                chosen = self._live_matching(query, task_id, LIVE_STATES)
        with self._daemon.store.one_transaction():
            for task in chosen:
                if task.state is TaskState.RUNNING:
                    self._engine.running.pop(task.seq, None)
                    self._daemon.pool.cancel(task.seq)
                self._daemon.engine.perform([self._daemon.scheduler.cancel(task, now)])
        if chosen:
            log.info("cancelled %d tasks", len(chosen))
            self._daemon.engine.wake()
            await self._daemon.store.flush()  # the reply says it is done only once it is stored
        return len(chosen)

    async def retry(self, query: ListQuery, task_id: str | None = None) -> int:
        """Queue failed tasks (the dead-letter queue) again, in one transaction; their attempt
        count goes on. Returns how many. ``task_id`` names one, which must have failed."""
        if not self._daemon.accepting:
            raise ShuttingDown("the daemon is shutting down and accepts no retries")
        await self._daemon.store.flush()  # failures still being written are found too
        rows = await self._rows_for(query, task_id, "only failed tasks can be retried")
        now = self._daemon.clock()
        failed = [task_from_row(r) for r in rows if (r.tenant, r.id) not in self._engine.live]
        requeue = self._daemon.scheduler.requeue_failed(failed, now)  # admitted, now queued
        try:
            return await self._retry_admitted(requeue.tasks, now)
        finally:
            for tenant, (count, nbytes) in requeue.reserved.items():
                self._daemon.scheduler.unreserve(tenant, count, nbytes)

    async def _retry_admitted(self, chosen: list[LiveTask], now: float) -> int:
        tasks = []
        commits = []
        cluster = self._daemon.cluster
        elsewhere = [t for t in chosen if cluster is not None and not cluster.serves(t.tenant)]
        with self._daemon.store.one_transaction():
            for task in elsewhere:  # the row goes back queued, with a note to its owner
                commits.append(self._daemon.store.put(ReplaceTask(task.seq, row_of(task), True)))
            for task in chosen:
                if task in elsewhere:
                    continue
                commits.append(self._daemon.engine.persist(task))
                self._engine.live[(task.tenant, task.id)] = (
                    task  # no second retry picks it meanwhile
                )
                self._engine.retrying.add(task.seq)  # not in the scheduler yet: cancel skips it
                tasks.append(task)
        try:
            await asyncio.gather(*commits)
        except BaseException:
            for task in tasks:
                self._engine.live.pop((task.tenant, task.id), None)
            raise
        finally:
            self._engine.retrying.difference_update(task.seq for task in tasks)
        for task in tasks:  # behind a long queue's stored tail, if it has one
            if self._engine.cold.keep_stored(task, now):
                self._engine.live.pop((task.tenant, task.id), None)
            else:
                self._daemon.scheduler.add(task, now)
        if tasks or elsewhere:
            log.info("retrying %d failed tasks", len(tasks) + len(elsewhere))
            self._daemon.engine.wake()
        return len(tasks) + len(elsewhere)

    async def delete(self, query: ListQuery, task_id: str | None = None) -> int:
        """Remove finished tasks from the history, in one transaction; their IDs may be
        submitted again. Returns how many. ``task_id`` names one, which must have finished."""
        await self._daemon.store.flush()  # tasks still being finished are found too
        rows = await self._rows_for(
            query, task_id, "only finished tasks can be deleted (cancel it first)"
        )
        chosen = [r for r in rows if (r.tenant, r.id) not in self._engine.live]
        with self._daemon.store.one_transaction():
            commits = [self._daemon.store.put(DeleteTask(row.seq)) for row in chosen]
        await asyncio.gather(*commits)
        await self._daemon.shared_logs.forget([(row.seq, row.attempts) for row in chosen])
        if chosen:
            log.info("deleted %d finished tasks", len(chosen))
        return len(chosen)

    async def _rows_for(self, query: ListQuery, task_id: str | None, refusal: str) -> list[TaskRow]:
        """The stored rows a selector or one ID names; an ID must be in one of its states."""
        if task_id is None:
            return await self._daemon.store.list_tasks(TaskFilter.from_query(query), MAX_SELECTED)
        tenant = query.tenants[0] if query.tenants else DEFAULT_TENANT
        row = await self._daemon.store.get(tenant, task_id)
        if row is None or (query.tenants is not None and row.tenant not in query.tenants):
            raise NotFound(f"no task {task_id!r} in tenant {tenant!r}")
        if row.state not in query.states:
            raise UsageError(f"task {task_id!r} is {row.state}: {refusal}")
        return [row]
