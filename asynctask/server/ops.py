"""Route each op to the daemon: validate, authorize, call, shape the reply.

The daemon implements ``Backend``; this module owns the wire names of ops and fields, so the
daemon never sees an unvalidated map and the wire format lives in one place (``requests.py``
parses, ``Ops`` routes).

Authorization is ``AuthPolicy``'s, applied to the connection's ``Principal``. For a task acting
as a client (a worker's process), another tenant's task ID is "not found", the very error an ID
that does not exist gets, so a task cannot even learn that the ID exists; naming another tenant
in any other way (a submit, a selector without an ID, ``list --tenant``) is ``Unauthorized``, as
for any user.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, ClassVar, Protocol

from asynctask.core.allowlist import RunPolicy
from asynctask.core.cron import CronSchedule
from asynctask.errors import NotFound, Unauthorized, UsageError
from asynctask.model import ListQuery, SubmitSpec
from asynctask.protocol.requests import StatsRequest, decode
from asynctask.server.auth import AuthPolicy, Principal
from asynctask.server.connection import Reply
from asynctask.server.requests import (
    is_task_selector,
    parse_cancel,
    parse_cron_add,
    parse_cron_ref,
    parse_delete,
    parse_drain,
    parse_hold,
    parse_list,
    parse_log_offsets,
    parse_pause_target,
    parse_retry,
    parse_submit,
    parse_task_ref,
    parse_tenant,
    parse_wait_timeout,
)


class Backend(Protocol):
    def ping(self) -> dict[str, Any]: ...

    def submit(
        self, specs: list[SubmitSpec], brief: bool = False
    ) -> Awaitable[list[dict[str, Any]]]:
        """Each task's view, or with ``brief`` only its id, tenant and state."""
        ...

    def status(self, tenant: str, task_id: str) -> Awaitable[dict[str, Any]]: ...

    def wait(
        self, tenant: str, task_id: str, timeout: float | None
    ) -> Awaitable[dict[str, Any]]: ...

    def list_tasks(self, query: ListQuery) -> Awaitable[dict[str, Any]]:
        """``{"tasks": [...], "cursor": str | None}``: a page and where the next one starts."""
        ...

    def set_paused(self, target: tuple[str, str, str], paused: bool) -> Awaitable[bool]: ...

    def hold(self, query: ListQuery, task_id: str | None, paused: bool) -> Awaitable[int]: ...

    def cancel(self, query: ListQuery, task_id: str | None) -> Awaitable[int]: ...

    def retry(self, query: ListQuery, task_id: str | None) -> Awaitable[int]: ...

    def delete(self, query: ListQuery, task_id: str | None) -> Awaitable[int]: ...

    def cron_add(
        self, tenant: str, name: str, schedule: CronSchedule, catch_up: str, task: dict[str, Any]
    ) -> Awaitable[dict[str, Any]]: ...

    def cron_list(self, tenants: frozenset[str] | None) -> list[dict[str, Any]]: ...

    def cron_remove(self, tenant: str, name: str) -> Awaitable[bool]: ...

    def queues(self, tenants: frozenset[str] | None) -> Awaitable[dict[str, Any]]: ...

    def logs(
        self, tenant: str, task_id: str, offsets: dict[int, int]
    ) -> Awaitable[dict[str, Any]]: ...

    def inspect(self, tenant: str, task_id: str) -> Awaitable[dict[str, Any]]: ...

    def stop(self, drain: float | None) -> dict[str, Any]: ...

    def reload(self) -> dict[str, Any]: ...

    def stats(
        self,
        tenants: frozenset[str] | None,
        tenant: str | None,
        queue: str | None = None,
        top: int | None = None,
    ) -> Awaitable[dict[str, Any]]: ...

    def prometheus(self) -> Awaitable[str]: ...

    def nodes(self) -> Awaitable[dict[str, Any]]:
        """The live daemons of the cluster (``daemon/nodesview.py`` has the shape)."""
        ...

    def web_token(self, uid: int) -> dict[str, Any]:
        """A web console login token for ``uid`` (``web/console.py``: ``WebConsole.issue``)."""
        ...


class Ops:
    """``policy`` says what each tenant may run (multi-user mode); ``clock`` gives the epoch
    seconds ``run_at`` is bounded from (the daemon's own clock)."""

    def __init__(
        self,
        backend: Backend,
        auth: AuthPolicy,
        max_payload: int,
        *,
        policy: RunPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._backend = backend
        self._auth = auth
        self._max_payload = max_payload
        self._policy = policy or RunPolicy()
        self._clock = clock

    def __call__(self, who: Principal, op: str, message: dict[str, Any]) -> Reply:
        if who.is_worker and who.worker_tenant is None:
            raise Unauthorized("a worker that has run no task may not use the daemon")
        handler = self._handlers.get(op)
        if handler is None:
            raise UsageError(f"unknown op {op!r} (known: {', '.join(OPS)})")
        return handler(self, who, message)

    def _submit(self, who: Principal, message: dict[str, Any]) -> Reply:
        specs, brief = parse_submit(message, self._max_payload, self._clock())
        for spec in specs:
            self._auth.check(who, spec.tenant)
        for index, spec in enumerate(specs):
            where = f"task {index}: " if len(specs) > 1 else ""
            code = spec.defaults or {}
            for function in (
                spec.function,
                spec.on_success,
                spec.on_failure,
                code.get("on_success"),
                code.get("on_failure"),
            ):
                self._may_run(spec.tenant, function, where)
        return _keyed(self._backend.submit(specs, brief), "tasks")

    def _status(self, who: Principal, message: dict[str, Any]) -> Reply:
        tenant, task_id = self._task_ref(who, message)
        return _wrap(self._backend.status(tenant, task_id), "task")

    def _wait(self, who: Principal, message: dict[str, Any]) -> Reply:
        tenant, task_id = self._task_ref(who, message)
        timeout = parse_wait_timeout(message)
        return _wrap(self._backend.wait(tenant, task_id, timeout), "task")

    def _logs(self, who: Principal, message: dict[str, Any]) -> Reply:
        tenant, task_id = self._task_ref(who, message)
        return self._backend.logs(tenant, task_id, parse_log_offsets(message))

    def _inspect(self, who: Principal, message: dict[str, Any]) -> Reply:
        tenant, task_id = self._task_ref(who, message)
        return self._backend.inspect(tenant, task_id)

    def _list(self, who: Principal, message: dict[str, Any]) -> Reply:
        return self._backend.list_tasks(self._visible(who, parse_list(message)))

    def _cancel(self, who: Principal, message: dict[str, Any]) -> Reply:
        query, one_id = parse_cancel(message)  # another tenant's ID, to a task: not found
        cancelled = self._backend.cancel(self._visible(who, query, one_id), one_id)
        return _wrap(cancelled, "cancelled")

    def _retry(self, who: Principal, message: dict[str, Any]) -> Reply:
        query, one_id = parse_retry(message)
        return _wrap(self._backend.retry(self._visible(who, query, one_id), one_id), "retried")

    def _delete(self, who: Principal, message: dict[str, Any]) -> Reply:
        query, one_id = parse_delete(message)
        return _wrap(self._backend.delete(self._visible(who, query, one_id), one_id), "deleted")

    def _cron_add(self, who: Principal, message: dict[str, Any]) -> Reply:
        tenant, name, schedule, catch_up, task = parse_cron_add(
            message, self._max_payload, self._clock()
        )
        self._auth.check(who, tenant)
        self._may_run(tenant, task["function"], f"cron entry {name!r}: ")
        return _wrap(self._backend.cron_add(tenant, name, schedule, catch_up, task), "cron")

    def _cron_list(self, who: Principal, message: dict[str, Any]) -> Reply:
        return {"crons": self._backend.cron_list(self._auth.tenants_of(who))}

    def _cron_remove(self, who: Principal, message: dict[str, Any]) -> Reply:
        tenant, name = parse_cron_ref(message)
        self._auth.check(who, tenant)
        return _wrap(self._backend.cron_remove(tenant, name), "removed")

    def _pause(self, who: Principal, message: dict[str, Any]) -> Reply:
        return self._set_paused(who, message, "pause")

    def _resume(self, who: Principal, message: dict[str, Any]) -> Reply:
        return self._set_paused(who, message, "resume")

    def _set_paused(self, who: Principal, message: dict[str, Any], op: str) -> Reply:
        """Tasks by selector (a hold), or a tenant, queue or function (a pause)."""
        if is_task_selector(message):
            query, one_id = parse_hold(message, op)
            held = self._backend.hold(self._visible(who, query, one_id), one_id, op == "pause")
            return _wrap(held, "tasks")
        target = parse_pause_target(message)
        kind, tenant, _ = target
        if kind == "function":
            self._admin_only(who, "pause or resume a function")
        else:
            self._auth.check(who, tenant)
        return _wrap(self._backend.set_paused(target, op == "pause"), "changed")

    def _stop(self, who: Principal, message: dict[str, Any]) -> Reply:
        self._admin_only(who, "stop the daemon")
        return self._backend.stop(parse_drain(message))

    def _reload(self, who: Principal, message: dict[str, Any]) -> Reply:
        self._admin_only(who, "reload the workers")
        return self._backend.reload()

    def _queues(self, who: Principal, message: dict[str, Any]) -> Reply:
        return self._backend.queues(self._auth.tenants_of(who))

    def _stats(self, who: Principal, message: dict[str, Any]) -> Reply:
        only = None if message.get("tenant") is None else parse_tenant(message)
        if only is not None:
            self._auth.check(who, only)
        queue, top = parse_readout_page(message)
        return self._backend.stats(self._auth.tenants_of(who), only, queue, top)

    def _metrics(self, who: Principal, message: dict[str, Any]) -> Reply:
        self._admin_only(who, "read the metrics of every tenant")
        return _as_text(self._backend.prometheus())

    def _ping(self, who: Principal, message: dict[str, Any]) -> Reply:
        return self._backend.ping()

    def _nodes(self, who: Principal, message: dict[str, Any]) -> Reply:
        """Any user, as ``ping``: daemons' IDs, hosts, pids, partition numbers and running
        counts, no tenant's name, task or figure (``ping`` already shows a pid and the running
        count to anyone who may connect)."""
        return self._backend.nodes()

    def _web_token(self, who: Principal, message: dict[str, Any]) -> Reply:
        """A login token for the web console, for the caller's own uid: the console then
        acts as that uid, with what ``AuthPolicy`` lets it do. A task may not have one."""
        if who.is_worker:
            raise Unauthorized("a task may not log in to the web console")
        if self._auth.tenants_of(who) == frozenset():
            raise Unauthorized(f"{who} may act for no tenant ([auth.users])")
        return self._backend.web_token(who.uid)

    #: Each op's handler; a new op is a method and a line here.
    _handlers: ClassVar[dict[str, Callable[[Ops, Principal, dict[str, Any]], Reply]]] = {
        "ping": _ping,
        "submit": _submit,
        "status": _status,
        "wait": _wait,
        "list": _list,
        "cancel": _cancel,
        "retry": _retry,
        "delete": _delete,
        "cron_add": _cron_add,
        "cron_list": _cron_list,
        "cron_remove": _cron_remove,
        "pause": _pause,
        "resume": _resume,
        "queues": _queues,
        "logs": _logs,
        "inspect": _inspect,
        "stop": _stop,
        "reload": _reload,
        "stats": _stats,
        "metrics": _metrics,
        "nodes": _nodes,
        "web_token": _web_token,
    }

    def _task_ref(self, who: Principal, message: dict[str, Any]) -> tuple[str, str]:
        tenant, task_id = parse_task_ref(message)
        self._check_ref(who, tenant, task_id)
        return tenant, task_id

    def _admin_only(self, who: Principal, what: str) -> None:
        if not self._auth.is_admin(who):
            raise Unauthorized(f"only an admin may {what}, not {who}")

    def _may_run(self, tenant: str, function: str | None, where: str) -> None:
        """Refuse a request naming a function its tenant may not run, before anything is
        stored, so no worker ever imports it."""
        refusal = None if function is None else self._policy.refusal(tenant, function)
        if refusal is not None:
            raise UsageError(f"{where}{refusal}")

    def _visible(self, who: Principal, query: ListQuery, one_id: str | None = None) -> ListQuery:
        """Check the tenants a query names, or narrow it to the ones the caller may see."""
        allowed = self._auth.tenants_of(who)
        if query.tenants is not None:
            for tenant in query.tenants:
                if one_id is not None:
                    self._check_ref(who, tenant, one_id)
                else:
                    self._auth.check(who, tenant)
        elif allowed is not None:
            query = replace(query, tenants=tuple(sorted(allowed)))
        return query

    def _check_ref(self, who: Principal, tenant: str, task_id: str) -> None:
        """May ``who`` name task ``task_id`` of ``tenant``? A task asking for another tenant's
        ID gets the daemon's "not found" (``Daemon.status``'s words), as for an unknown ID."""
        if who.is_worker and tenant != who.worker_tenant:
            raise NotFound(f"no task {task_id!r} in tenant {tenant!r}")
        self._auth.check(who, tenant)


async def _wrap(result: Awaitable[Any], key: str) -> dict[str, Any]:
    return {key: await result}


def _keyed(result: Awaitable[Any], key: str) -> Reply:
    """``{key: result}``; a future (the daemon's submit of one task) is chained by a callback
    rather than awaited in a coroutine, which would cost an asyncio Task per request."""
    if not isinstance(result, asyncio.Future):
        return _wrap(result, key)
    reply: asyncio.Future[dict[str, Any]] = result.get_loop().create_future()

    def settle(done: asyncio.Future[Any]) -> None:
        if reply.done():
            return
        if done.cancelled():
            reply.cancel()
        elif (error := done.exception()) is not None:
            reply.set_exception(error)
        else:
            reply.set_result({key: done.result()})

    result.add_done_callback(settle)
    return reply


def parse_readout_page(message: dict[str, Any]) -> tuple[str | None, int | None]:
    """A ``stats`` request's ``queue`` (only queues of that name) and ``top`` (rows per
    section, 1 to ``MAX_TOP``; ``None``: the daemon's default)."""
    request = decode(StatsRequest, message)
    return request.queue, request.top


async def _as_text(text: Awaitable[str]) -> dict[str, Any]:
    return {"text": await text}


#: The ops a daemon answers, in the order ``unknown op`` lists them.
OPS = tuple(Ops._handlers)
