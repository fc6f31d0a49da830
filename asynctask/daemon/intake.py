"""Submits: admission against the tenant's bounds, de-duplication by task ID, and the one
transaction that stores a request's tasks before the reply. A task enters the scheduler only
once it is stored, so nothing unacknowledged ever runs."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any

from asynctask.config import Config
from asynctask.core.admission import Admission, TaskDefaults, admission, admit, queue_of, spec_shape
from asynctask.core.dedup import Dedup, keeps, on_existing
from asynctask.core.limits import FunctionLimits
from asynctask.daemon.views import Key, brief_of, brief_view, row_of, view_of, view_of_row
from asynctask.errors import ShuttingDown, StorageError, SubmitThrottled
from asynctask.model import (
    LiveTask,
    SubmitSpec,
    new_task_id,
)
from asynctask.observe.metrics import REFUSED, SUBMITTED
from asynctask.store import InsertTask, Op, ReplaceTask

if TYPE_CHECKING:
    from asynctask.daemon.root import Daemon

#: Tasks of one submit handled between two yields to the loop: one request creating 500 new
#: queues held other clients for 156 ms in one go.
CHUNK = 256


def function_limits(limits: dict[str, float]) -> FunctionLimits:
    """The limits a function declared in code (``options["limits"]``), as ``declare_limits``
    reads them, for ``reconfigure``."""
    concurrency = limits.get("concurrency")
    return FunctionLimits(
        concurrency=int(concurrency) if concurrency is not None else None,
        rate=limits.get("rate"),
        burst=limits.get("burst"),
    )


class Intake:
    """The submits of one daemon (see the module docstring)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._engine = daemon.engine
        self._defaults_of: Config | None = None
        self._task_defaults = TaskDefaults(retries=0, timeout=None)

    async def submit(self, specs: list[SubmitSpec], brief: bool = False) -> list[dict[str, Any]]:
        """Each task's view, or with ``brief`` only its id, tenant and state."""
        if not self._daemon.accepting:
            raise ShuttingDown("the daemon is shutting down and accepts no new tasks")
        now = self._daemon.clock()
        payload_bytes: Counter[str] = Counter()
        queues: dict[str, set[str]] = {}
        foreign = self._foreign(specs)
        for spec in specs:
            if spec.tenant in foreign:  # its owner admits it when it takes it in
                continue
            payload_bytes[spec.tenant] += len(spec.payload)
            queues.setdefault(spec.tenant, set()).add(self.queue_of(spec))
        counts = Counter(spec.tenant for spec in specs if spec.tenant not in foreign)
        for tenant, count in counts.items():
            try:
                self._daemon.scheduler.admit(
                    tenant, count, now, payload_bytes[tenant], queues[tenant]
                )
            except SubmitThrottled as refusal:
                self._refused([spec for spec in specs if spec.tenant == tenant], refusal, now)
                raise
        for tenant, count in counts.items():  # until added: concurrent submits see them
            self._daemon.scheduler.reserve(
                tenant, count, payload_bytes[tenant], queues[tenant], now
            )
        try:
            return await self._submit_admitted(specs, now, foreign, brief)
        finally:
            for tenant, count in counts.items():
                self._daemon.scheduler.unreserve(tenant, count, payload_bytes[tenant])

    def submit_one(
        self, spec: SubmitSpec, brief: bool = False
    ) -> asyncio.Future[list[dict[str, Any]]] | None:
        """The common submit, one task with no ID of a tenant this daemon serves, without a
        coroutine: admitted and put at once, answered from the commit's callback. ``None`` for
        any other submit (``submit`` then takes it).

        Speculative dispatch (docs/contract.md, "Durable submit"): on a daemon of its own store, the
        task is adopted, and so may start, while its insert commits; the reply still waits for the
        commit. Nobody can ask about the task before the reply names its ID, and lists read the
        store, so no status or result shows before the commit. If the commit fails, the task leaves
        memory (stopped if it started) and the submit is refused: it may have run without being
        acknowledged, which at-least-once allows, as after a crash. A task that submits others when
        it ends (``on_success``/``on_failure``) is not started early, so an unstored task never
        leaves a stored one behind."""
        daemon = self._daemon
        cluster = daemon.cluster
        if spec.id is not None or (cluster is not None and not cluster.serves(spec.tenant)):
            return None
        if not daemon.accepting:
            raise ShuttingDown("the daemon is shutting down and accepts no new tasks")
        now = daemon.clock()
        tenant = spec.tenant
        queues = (self.queue_of(spec),)
        nbytes = len(spec.payload)
        scheduler = daemon.scheduler
        try:
            scheduler.admit(tenant, 1, now, nbytes, queues)
        except SubmitThrottled as refusal:
            self._refused([spec], refusal, now)
            raise
        scheduler.reserve(tenant, 1, nbytes, queues, now)
        try:
            self.declare_limits(spec.function, spec.limits, now)
            task = self.new_task(spec, new_task_id(now), now)
            stored = daemon.store.put(InsertTask(row_of(task)))
        except BaseException:
            scheduler.unreserve(tenant, 1, nbytes)
            raise
        reply: asyncio.Future[list[dict[str, Any]]] = daemon.loop.create_future()
        view = (brief_view if brief else view_of)(task)  # as submitted, not as it runs
        early = (
            cluster is None
            and spec.on_success is None
            and spec.on_failure is None
            and daemon.store.failure is None  # a failing store: the commit will fail too
            and self._engine.adopts_at_once(task)
        )
        if early:
            self._engine.adopt(task, now)
            self._engine.wake_for(task)

        def committed(done: asyncio.Future[None]) -> None:
            scheduler.unreserve(tenant, 1, nbytes)
            if done.cancelled() or done.exception() is not None:
                if early:
                    self._engine.let_go([task], stop_running=True)
                    daemon.guard.forget(task.seq)
                if reply.done():
                    return
                if done.cancelled():
                    reply.cancel()
                else:
                    reply.set_exception(done.exception())  # type: ignore[arg-type]
                return
            daemon.metrics.count((tenant, task.queue, task.function), SUBMITTED, now)
            if not early:
                self._engine.adopt(task, now)
                self._engine.wake_for(task)
            if not reply.done():
                reply.set_result([view])

        stored.add_done_callback(committed)
        return reply

    def _refused(self, specs: list[SubmitSpec], refusal: SubmitThrottled, now: float) -> None:
        """Back pressure refused ``specs``, all of one tenant: the event and the counts."""
        self._daemon.events.refused(specs[0].tenant, len(specs), refusal, now)
        for spec in specs:
            where = (spec.tenant, self.queue_of(spec), spec.function)
            self._daemon.metrics.count(where, REFUSED, now)

    def _foreign(self, specs: list[SubmitSpec]) -> frozenset[str]:
        """The tenants of ``specs`` that another daemon serves (docs/scale-out.md): their
        tasks are stored with a note to their owner, and not kept here."""
        cluster = self._daemon.cluster
        if cluster is None:
            return frozenset()
        return frozenset(t for t in {s.tenant for s in specs} if not cluster.serves(t))

    async def _submit_admitted(
        self, specs: list[SubmitSpec], now: float, foreign: frozenset[str], brief: bool
    ) -> list[dict[str, Any]]:
        view_of_new = brief_view if brief else view_of
        for spec in specs:
            self.declare_limits(spec.function, spec.limits, now)
        views: list[dict[str, Any] | None] = [None] * len(specs)
        created: list[tuple[int, LiveTask]] = []
        own_claims: dict[Key, asyncio.Future[None]] = {}
        in_batch: dict[Key, LiveTask] = {}
        loop = asyncio.get_running_loop()
        ops: list[Op] = []
        # A batch of one function's calls: what the spec makes of a task is worked out once
        # for each run of specs alike but for their arguments (``admission.spec_shape``).
        shape: tuple[Any, ...] | None = None
        admitted: Admission | None = None
        interner = self._daemon.interner
        try:
            for index, spec in enumerate(specs):
                if index % CHUNK == CHUNK - 1:  # a 10,000-task request: the others go on too
                    await asyncio.sleep(0)
                elsewhere = spec.tenant in foreign
                if spec.id is None:
                    this_shape = spec_shape(spec)
                    if admitted is None or this_shape != shape:
                        shape = this_shape
                        admitted = admission(spec, now, self._defaults, interner)
                    task = admitted.task(
                        self._engine.take_seq(), new_task_id(now), interner.payload(spec.payload)
                    )
                    ops.append(InsertTask(row_of(task), foreign=elsewhere))
                    created.append((index, task))
                    continue
                key = (spec.tenant, spec.id)
                if key in in_batch:
                    created.append((index, in_batch[key]))
                    continue
                existing = await self.settled(key)
                if existing is not None:
                    views[index] = brief_of(existing) if brief else existing
                    continue
                claim = loop.create_future()
                self._engine.claims[key] = own_claims[key] = claim
                row = await self._daemon.store.get(spec.tenant, spec.id)
                meaning = on_existing(None if row is None else row.state)
                if meaning is Dedup.KEEP:
                    assert row is not None
                    views[index] = brief_of(view_of_row(row)) if brief else view_of_row(row)
                    continue
                task = self.new_task(spec, spec.id, now)
                ops.append(
                    InsertTask(row_of(task), foreign=elsewhere)
                    if row is None
                    else ReplaceTask(row.seq, row_of(task), foreign=elsewhere)
                )
                created.append((index, task))
                in_batch[key] = task
            if ops:
                # One request, one transaction, whatever its size: a submit_many is stored
                # whole or not at all, across a failed commit and across a crash.
                if len(ops) == 1:  # a lone op shares a batch with whatever else is queued
                    await self._daemon.store.put(ops[0])
                else:
                    with self._daemon.store.one_transaction():
                        commits = [self._daemon.store.put(op) for op in ops]
                    await asyncio.gather(*commits)
            added = set()
            metrics = self._daemon.metrics
            for count, (index, task) in enumerate(created, 1):
                if count % CHUNK == 0:
                    await asyncio.sleep(0)
                if task.seq not in added:
                    added.add(task.seq)
                    if task.tenant not in foreign:  # else: its owner takes it from the inbox
                        self._engine.adopt(task, now)
                    metrics.count((task.tenant, task.queue, task.function), SUBMITTED, now)
                views[index] = view_of_new(task)
        finally:
            for key, claim in own_claims.items():
                if self._engine.claims.get(key) is claim:
                    del self._engine.claims[key]
                claim.set_result(None)
        self._daemon.engine.wake()
        return [view for view in views if view is not None]

    def declare_limits(self, function: str, limits: dict[str, float] | None, now: float) -> None:
        """Apply limits a function declares in code (they travel with every submit and are
        stored with each task, so a restart applies them again before anything runs)."""
        if limits is None or self._engine.declared_limits.get(function) == limits:
            return
        self._engine.declared_limits[function] = limits
        concurrency = limits.get("concurrency")
        self._daemon.scheduler.declare_function_limits(
            function,
            FunctionLimits(
                concurrency=int(concurrency) if concurrency is not None else None,
                rate=limits.get("rate"),
                burst=limits.get("burst"),
            ),
            now,
        )

    async def settled(self, key: Key) -> dict[str, Any] | None:
        """The view of a live task holding ``key`` once no other submit or finish is in flight
        for it, or ``None`` when the ID is free in memory (the caller then checks the store)."""
        while True:
            task = self._engine.live.get(key)
            if task is not None and self._daemon.guard.is_unstored(task.seq):
                raise StorageError(
                    f"task {key[1]!r} has a change that is not stored yet, so its ID cannot be "
                    f"used: {self._daemon.store.failure or 'storage is failing'}"
                )
            if task is not None and keeps(task.state):
                return view_of(task)
            claim = self._engine.claims.get(key)
            if claim is None:
                return None
            await asyncio.wait([claim])  # cancelled (a fenced end) or not: look again

    def new_task(self, spec: SubmitSpec, task_id: str, now: float) -> LiveTask:
        seq = self._engine.take_seq()
        return admit(spec, task_id, seq, now, self._defaults, self._daemon.interner)

    def queue_of(self, spec: SubmitSpec) -> str:
        return queue_of(spec, self._defaults)

    @property
    def _defaults(self) -> TaskDefaults:
        """Read per call: ``reload`` may replace the config's function defaults."""
        config = self._daemon.config
        if self._defaults_of is not config:
            self._defaults_of = config
            self._task_defaults = TaskDefaults(
                retries=config.retry.retries,
                timeout=config.workers.timeout,
                functions=config.functions,
                code=self._daemon.code.known,
            )
        return self._task_defaults
