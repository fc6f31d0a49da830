"""The daemon as the server sees it (``server.ops.Backend``): each request goes to the service
that owns it. Kept apart from the composition root so that the root only builds and runs the
parts, and the routing of requests can be read in one place."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from asynctask.core.cron import CronSchedule
from asynctask.daemon.nodesview import local_view, nodes_view
from asynctask.errors import UsageError
from asynctask.executor.lineage import worker_of
from asynctask.model import ListQuery, SubmitSpec
from asynctask.server.auth import Principal
from asynctask.server.connection import Peer

if TYPE_CHECKING:
    from asynctask.daemon.root import Daemon


def principal_of(peer: Peer, worker_tenants: Mapping[int, str | None]) -> Principal:
    """Who a new connection acts as: a task of its worker's tenant when the peer is one of the
    pool's workers or a process one started (``lineage.worker_of``), else a user."""
    worker = worker_of(peer.pid, worker_tenants)
    if worker is None:
        return Principal(uid=peer.uid, pid=peer.pid)
    return Principal(
        uid=peer.uid, pid=peer.pid, is_worker=True, worker_tenant=worker_tenants[worker]
    )


class Backend:
    """Routes each request of ``server.ops`` to its service; decides nothing itself."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._intake = daemon.intake
        self._queries = daemon.queries
        self._control = daemon.control
        self._readout = daemon.readout
        self._cron = daemon.cron

    def stop(self, drain: float | None) -> dict[str, Any]:
        return self._daemon.stop(drain)

    def reload(self, why: str = "reload") -> dict[str, Any]:
        return self._daemon.reload(why)

    def submit(
        self, specs: list[SubmitSpec], brief: bool = False
    ) -> Awaitable[list[dict[str, Any]]]:
        if len(specs) == 1:
            answer = self._intake.submit_one(specs[0], brief)
            if answer is not None:
                return answer
        return self._intake.submit(specs, brief)

    async def status(self, tenant: str, task_id: str) -> dict[str, Any]:
        return await self._queries.status(tenant, task_id)

    async def wait(self, tenant: str, task_id: str, timeout: float | None) -> dict[str, Any]:
        return await self._queries.wait(tenant, task_id, timeout)

    async def logs(self, tenant: str, task_id: str, offsets: dict[int, int]) -> dict[str, Any]:
        return await self._queries.logs(tenant, task_id, offsets)

    async def inspect(self, tenant: str, task_id: str) -> dict[str, Any]:
        return await self._queries.inspect(tenant, task_id)

    async def list_tasks(self, query: ListQuery) -> dict[str, Any]:
        return await self._queries.list_tasks(query)

    async def cancel(self, query: ListQuery, task_id: str | None = None) -> int:
        return await self._control.cancel(query, task_id)

    async def retry(self, query: ListQuery, task_id: str | None = None) -> int:
        return await self._control.retry(query, task_id)

    async def delete(self, query: ListQuery, task_id: str | None = None) -> int:
        return await self._control.delete(query, task_id)

    async def set_paused(self, target: tuple[str, str, str], paused: bool) -> bool:
        return await self._control.set_paused(target, paused)

    async def hold(self, query: ListQuery, task_id: str | None, paused: bool) -> int:
        return await self._control.hold(query, task_id, paused)

    async def cron_add(
        self, tenant: str, name: str, schedule: CronSchedule, catch_up: str, task: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._cron.cron_add(tenant, name, schedule, catch_up, task)

    def cron_list(self, tenants: frozenset[str] | None) -> list[dict[str, Any]]:
        return self._cron.cron_list(tenants)

    async def cron_remove(self, tenant: str, name: str) -> bool:
        return await self._cron.cron_remove(tenant, name)

    def ping(self) -> dict[str, Any]:
        return self._readout.ping()

    async def queues(self, tenants: frozenset[str] | None) -> dict[str, Any]:
        return await self._readout.queues(tenants)

    async def stats(
        self,
        tenants: frozenset[str] | None,
        tenant: str | None,
        queue: str | None = None,
        top: int | None = None,
    ) -> dict[str, Any]:
        return await self._readout.stats(tenants, tenant, queue, top)

    async def prometheus(self) -> str:
        return await self._readout.prometheus()

    async def nodes(self) -> dict[str, Any]:
        """The cluster's live daemons from the lease tables; on SQLite, this daemon alone."""
        cluster = self._daemon.cluster
        if cluster is None:
            return local_view(
                pid=os.getpid(),
                host=socket.gethostname(),
                started_at=self._daemon.started_at,
                running=len(self._daemon.engine.running),
                now=self._daemon.clock(),
            )
        return await nodes_view(
            cluster.leases,
            cluster.me,
            cluster.settings,
            time.time(),
            my_running=len(self._daemon.engine.running),
        )

    def web_token(self, uid: int) -> dict[str, Any]:
        web = self._daemon.web
        if web is None:
            raise UsageError(
                "the web console is off: set [web] http in the config and restart the daemon "
                "(docs/web-console.md)"
            )
        return web.issue(uid)
