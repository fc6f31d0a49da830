"""Questions about tasks: ``status``, ``wait``, ``logs``, ``inspect`` and ``list``. A live task
is answered from memory, a finished one from the store; nothing here changes a task."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from asynctask.cursor import encode_cursor
from asynctask.daemon.views import view_of, view_of_row
from asynctask.errors import NotFound, UsageError, WaitTimeout
from asynctask.executor.inspection import dump_stack, process_info, stack_path
from asynctask.model import FINAL_STATES, ListQuery, TaskState
from asynctask.paths import RUN_DIR
from asynctask.store import TaskFilter

if TYPE_CHECKING:
    from asynctask.daemon.root import Daemon

#: How often ``wait`` reads the row of a task another daemon serves (docs/scale-out.md).
SHARED_POLL = 0.2
#: The most log bytes one ``logs`` reply carries (the client asks again for more).
LOG_CHUNK = 4 * 1024 * 1024


FINAL_STATES_TEXT = frozenset(str(state) for state in FINAL_STATES)


class Queries:
    """The task questions of one daemon (see the module docstring)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._engine = daemon.engine

    async def status(self, tenant: str, task_id: str) -> dict[str, Any]:
        task = self._engine.live.get((tenant, task_id))
        if task is not None:
            return view_of(task)
        row = await self._daemon.store.get(tenant, task_id)
        if row is None:
            raise NotFound(f"no task {task_id!r} in tenant {tenant!r}")
        return view_of_row(row)

    async def wait(self, tenant: str, task_id: str, timeout: float | None) -> dict[str, Any]:
        if self._daemon.cluster is not None:
            return await self._wait_shared(tenant, task_id, timeout)
        if (tenant, task_id) not in self._engine.live and not self._engine.loaded.is_set():
            # It may be a task of the backlog still loading: the wait counts in the timeout.
            loop = asyncio.get_running_loop()
            began = loop.time()
            try:
                await asyncio.wait_for(self._engine.loaded.wait(), timeout)
            except TimeoutError:
                raise WaitTimeout(f"task {task_id!r} did not finish within {timeout:g}s") from None
            left = None if timeout is None else max(0.0, timeout - (loop.time() - began))
            return await self._wait_here(tenant, task_id, left, timeout)
        return await self._wait_here(tenant, task_id, timeout, timeout)

    async def _wait_here(
        self, tenant: str, task_id: str, timeout: float | None, asked: float | None
    ) -> dict[str, Any]:
        """``wait`` on a daemon that is its store's only one (``asked``: the request's
        timeout, for the message; ``timeout`` is what is left of it)."""
        key = (tenant, task_id)
        task = self._engine.live.get(key)
        if (
            task is None
            and await self._engine.cold.holds_key(tenant, task_id)
            and self._daemon.accepting
        ):
            return await self._wait_for(key, task_id, timeout, asked)  # in a long queue's tail
        if task is None:
            claim = self._engine.claims.get(key)
            if claim is not None:
                await asyncio.shield(claim)
                task = self._engine.live.get(key)
        if task is None:
            view = await self.status(tenant, task_id)
            if view["state"] in FINAL_STATES or not self._daemon.accepting:
                return view
            task = self._engine.live.get(key)
            if task is None:  # finished while we read the store
                return await self.status(tenant, task_id)
        return await self._wait_for(key, task_id, timeout, asked)

    async def _wait_for(
        self, key: tuple[str, str], task_id: str, timeout: float | None, asked: float | None
    ) -> dict[str, Any]:
        """Until the live task ``key`` ends (``Engine.finish`` releases its waiters)."""
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._engine.waiters.setdefault(key, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise WaitTimeout(f"task {task_id!r} did not finish within {asked:g}s") from None
        finally:
            waiters = self._engine.waiters.get(key)
            if waiters and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._engine.waiters[key]

    async def _wait_shared(
        self, tenant: str, task_id: str, timeout: float | None
    ) -> dict[str, Any]:
        """``wait`` when daemons share the store: the task may end on any of them, and move
        between them while it waits. In memory here it is waited for as on one daemon, a
        second at a time; otherwise its row is read every ``SHARED_POLL`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        key = (tenant, task_id)
        while True:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise WaitTimeout(f"task {task_id!r} did not finish within {timeout:g}s")
            task = self._engine.live.get(key)
            if task is None:
                view = await self.status(tenant, task_id)
                if view["state"] in FINAL_STATES or not self._daemon.accepting:
                    return view
                if self._engine.live.get(key) is None:
                    await asyncio.sleep(SHARED_POLL if left is None else min(left, SHARED_POLL))
                continue
            waiter: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._engine.waiters.setdefault(key, []).append(waiter)
            try:
                return await asyncio.wait_for(waiter, 1.0 if left is None else min(left, 1.0))
            except TimeoutError:
                continue
            finally:
                waiters = self._engine.waiters.get(key)
                if waiters and waiter in waiters:
                    waiters.remove(waiter)
                    if not waiters:
                        del self._engine.waiters[key]

    async def payload(self, tenant: str, task_id: str) -> bytes | None:
        """A task's arguments as submitted (msgpack), for the web console's task page, which
        has authorized the caller with ``status`` first; ``None`` for an unknown ID."""
        task = self._engine.live.get((tenant, task_id))
        if task is not None:
            return task.payload
        row = await self._daemon.store.get(tenant, task_id)
        return None if row is None else row.payload

    async def logs(self, tenant: str, task_id: str, offsets: dict[int, int]) -> dict[str, Any]:
        """Each attempt's captured output from ``offsets[attempt]`` on, at most ``LOG_CHUNK``
        bytes in one reply (ask again from the new offsets for more); ``done`` once the task
        has ended and everything was read."""
        live = self._engine.live.get((tenant, task_id))
        if live is not None:
            seq, view = live.seq, view_of(live)
        else:
            row = await self._daemon.store.get(tenant, task_id)
            if row is None:
                raise NotFound(f"no task {task_id!r} in tenant {tenant!r}")
            seq, view = row.seq, view_of_row(row)
        budget = LOG_CHUNK
        attempts = []
        complete = True
        for entry in await self._daemon.shared_logs.read(seq, view["attempts"], offsets):
            data = entry.data[:budget]
            budget -= len(data)
            start = min(max(0, offsets.get(entry.attempt, 0)), entry.size)
            complete = complete and start + len(data) == entry.size
            attempts.append({"attempt": entry.attempt, "offset": start + len(data), "data": data})
        finished = view["state"] in FINAL_STATES_TEXT
        return {"state": view["state"], "attempts": attempts, "done": finished and complete}

    async def inspect(self, tenant: str, task_id: str) -> dict[str, Any]:
        """The worker running a task: ``pid``, ``rss``, ``cpu_seconds``, ``open_files``,
        ``threads``, ``children`` and every thread's Python ``stack``."""
        task = self._engine.live.get((tenant, task_id))
        stored = None
        if task is None:  # NotFound for an unknown ID; a stored one is finished or queued
            stored = (await self.status(tenant, task_id))["state"]
        pid = self._daemon.pool.pid_of(task.seq) if task is not None and self._daemon.pool else None
        if task is None or task.state is not TaskState.RUNNING or pid is None:
            state = task.state if task is not None else stored
            raise UsageError(f"task {task_id!r} is {state}: only a running task can be inspected")
        try:
            info = process_info(pid)
        except ProcessLookupError:
            raise UsageError(f"task {task_id!r}: its worker {pid} has just exited") from None
        info["stack"] = await dump_stack(
            pid, stack_path(self._daemon.home / RUN_DIR, pid), self._daemon.home
        )
        info["attempt"] = task.attempts
        return info

    async def list_tasks(self, query: ListQuery) -> dict[str, Any]:
        """One page: ``tasks`` newest first, and ``cursor`` for the next page, or None when
        this is the last (one row more than the page is read to know)."""
        await self._daemon.store.flush()
        rows = await self._daemon.store.list_tasks(TaskFilter.from_query(query), query.limit + 1)
        more = len(rows) > query.limit
        del rows[query.limit :]
        views = []
        for row in rows:
            live = self._engine.live.get((row.tenant, row.id))
            views.append(
                view_of(live) if live is not None and live.seq == row.seq else view_of_row(row)
            )
        last = rows[-1] if more else None
        cursor = None if last is None else encode_cursor(last.created_at, last.seq)
        return {"tasks": views, "cursor": cursor}
