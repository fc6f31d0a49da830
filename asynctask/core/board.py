"""Board: the bookkeeping every part of the scheduler shares, and the parking that keeps it cheap.

One ``Board`` per ``Scheduler`` holds the tenants, queues and functions (``entities.py``), the
waiting tasks (ready queues, timers, TTL expiries), the running set and the heaps that decide
who is looked at next. The dispatch pass, the holds and the attempt endings all change the same
counters, so they live in one place and each collaborator is handed the board rather than a
copy that could drift.

Parking: an entity that cannot be served is taken out of its heap with a reason (``parked``)
and woken by whatever releases it, so blocked work is never polled and a dispatch decision costs
O(log n) whatever the backlog. The ``wake_*`` and ``release_tenant`` methods are those wake-ups;
they are the only code that puts a parked entity back.
"""

from __future__ import annotations

import heapq
import itertools

from asynctask.core.actions import Finished, PauseTarget
from asynctask.core.entities import (
    CONCURRENCY,
    FAULT,
    FUNCTION,
    IDLE,
    PAUSED,
    RATE,
    SHARDS,
    SLOW,
    FunctionState,
    QueueState,
    TenantState,
)
from asynctask.core.events import Event
from asynctask.core.fairness import StrideScheduler
from asynctask.core.limits import SchedulerSettings
from asynctask.core.queues import ready_key
from asynctask.core.timers import Timers
from asynctask.model import PRIORITY_MAX, WAITING_STATES, LiveTask, TaskState

S = TaskState

#: What a parked tenant may be released from by ``release_tenant`` (its own block is gone).
_RELEASABLE = (CONCURRENCY, RATE, PAUSED, FAULT, SHARDS, SLOW)


class Board:
    def __init__(self, settings: SchedulerSettings) -> None:
        #: Replaced whole by ``reconfigure``; read where it is used, never cached.
        self.settings = settings
        self.timers = Timers()
        #: (expires_at, seq, task) of waiting tasks with a TTL; entries of tasks that started or
        #: ended meanwhile are skipped when they come up (lazy deletion).
        self.expiries: list[tuple[float, int, LiveTask]] = []
        self.tenants: dict[str, TenantState] = {}
        self.functions: dict[str, FunctionState] = {}
        self.fair: StrideScheduler[TenantState] = StrideScheduler()
        self.wakeups: list[tuple[float, int, QueueState | TenantState]] = []
        self._wake_order = itertools.count()
        self.running: dict[int, LiveTask] = {}
        #: This daemon's part of every function's limits (``limits.shared``).
        self.share = 1.0
        self.running_by_priority = [0] * (PRIORITY_MAX + 1)
        self.queued = 0
        self.paused: set[PauseTarget] = set()
        #: What changed that the daemon may log, oldest first (``events.py``; ``take_events``).
        self.events: list[Event] = []

    # -- entities ---------------------------------------------------------------------------------

    def tenant(self, name: str, now: float = 0.0) -> TenantState:
        tenant = self.tenants.get(name)
        if tenant is None:
            tenant = self.tenants[name] = TenantState(name, self.settings.tenant(name), now)
            tenant.paused = ("tenant", name, "") in self.paused
        return tenant

    def queue(self, tenant: TenantState, name: str, now: float) -> QueueState:
        queue = tenant.queues.get(name)
        if queue is None:
            limits = self.settings.queue(tenant.name, name)
            queue = QueueState(tenant, name, limits, self.settings.aging, now)
            queue.paused = ("queue", tenant.name, name) in self.paused
            tenant.queues[name] = queue
        return queue

    def function(self, name: str, now: float = 0.0) -> FunctionState:
        function = self.functions.get(name)
        if function is None:
            settings = self.settings
            function = self.functions[name] = FunctionState(
                name, settings.function(name), settings.aimd, settings.capacity, now, self.share
            )
            function.paused = ("function", "", name) in self.paused
        return function

    # -- waiting tasks ----------------------------------------------------------------------------

    def add(self, task: LiveTask, now: float) -> None:
        tenant = self.tenant(task.tenant, now)
        queue = self.queue(tenant, task.queue, now)
        self.function(task.function, now)
        tenant.backlog += 1
        tenant.backlog_bytes += len(task.payload)
        if task.held and task.state in WAITING_STATES:
            queue.held += 1
        elif task.state is S.QUEUED:
            self.enqueue(task, now)
        elif task.state is S.SCHEDULED:
            queue.scheduled += 1
            self.timers.push(task)
        else:
            tenant.backlog -= 1
            tenant.backlog_bytes -= len(task.payload)
            raise ValueError(f"only queued or scheduled tasks can be added, not {task.state}")
        if task.expires_at is not None:
            heapq.heappush(self.expiries, (task.expires_at, task.seq, task))

    def add_stored(
        self,
        tenant_name: str,
        queue_name: str,
        function_name: str,
        nbytes: int,
        now: float,
        count: int = 1,
    ) -> None:
        """Count a queued task that the daemon keeps in the store only (a long queue's tail:
        ``daemon/coldqueue.py``). It counts as queued everywhere (back pressure, readouts, the
        function's backlog) but is not in the queue's ``fifo`` until it is ``add``ed, after
        ``unstore``; until then no dispatch sees it. ``count`` such tasks of ``nbytes`` in all
        at once (start-up recovery counts a batch of them in one call)."""
        tenant = self.tenant(tenant_name, now)
        queue = self.queue(tenant, queue_name, now)
        function = self.function(function_name, now)
        tenant.backlog += count
        tenant.backlog_bytes += nbytes
        queue.stored += count
        function.queued += count
        self.queued += count

    def unstore(self, tenant_name: str, queue_name: str, function_name: str, nbytes: int) -> None:
        """Undo ``add_stored`` for one task: it is being ``add``ed now, or it left the backlog."""
        tenant = self.tenants[tenant_name]
        tenant.backlog -= 1
        tenant.backlog_bytes -= nbytes
        tenant.queues[queue_name].stored -= 1
        self.functions[function_name].queued -= 1
        self.queued -= 1

    def enqueue(self, task: LiveTask, now: float) -> None:
        tenant = self.tenants[task.tenant]
        queue = tenant.queues[task.queue]
        task.queued_at = now
        queue.fifo.push(task)
        self.functions[task.function].queued += 1
        self.queued += 1
        key = ready_key(task, self.settings.aging)
        if queue.parked is None:
            if not queue.in_heap or key < queue.heap_key:
                self.push_queue(queue, key)
            self.wake_tenant(tenant)
        elif queue.parked in (FUNCTION, RATE) and key < queue.heap_key:
            self.wake_queue(queue)  # a new head may belong to a function that is not held

    def remove(self, task: LiveTask, new_state: TaskState, now: float) -> Finished:
        old = task.state
        task.move(new_state)
        task.finished_at = now
        tenant = self.tenants[task.tenant]
        tenant.backlog -= 1
        tenant.backlog_bytes -= len(task.payload)
        if task.held:
            task.held = False
            tenant.queues[task.queue].held -= 1
        elif old is S.QUEUED:
            tenant.queues[task.queue].fifo.discard(task)
            self.functions[task.function].queued -= 1
            self.queued -= 1
        elif old is S.SCHEDULED:
            tenant.queues[task.queue].scheduled -= 1
            self.timers.discard(task)
        return Finished(task)

    def forget(self, tasks: list[LiveTask]) -> None:
        """Drop waiting tasks from the board as they are: no state change, no ``Finished``.
        For a partition another daemon takes over, which has them from the database."""
        gone = {id(task) for task in tasks}
        timed: set[int] = set()
        for task in tasks:
            tenant = self.tenants[task.tenant]
            tenant.backlog -= 1
            tenant.backlog_bytes -= len(task.payload)
            queue = tenant.queues[task.queue]
            if task.held:
                queue.held -= 1
            elif task.state is S.QUEUED:
                queue.fifo.discard(task)
                self.functions[task.function].queued -= 1
                self.queued -= 1
            elif task.state is S.SCHEDULED:
                queue.scheduled -= 1
                timed.add(task.seq)
        if timed:  # they stay scheduled, so their entries are not stale: out now
            self.timers.drop(timed)
        if gone and any(id(entry[2]) in gone for entry in self.expiries):
            self.expiries = [entry for entry in self.expiries if id(entry[2]) not in gone]
            heapq.heapify(self.expiries)

    def back_to_waiting(self, task: LiveTask) -> None:
        """Count a task that was running as waiting again (a retry or a re-queue)."""
        tenant = self.tenant(task.tenant)
        self.queue(tenant, task.queue, 0.0)
        self.function(task.function)
        tenant.backlog += 1
        tenant.backlog_bytes += len(task.payload)
        if task.expires_at is not None:
            heapq.heappush(self.expiries, (task.expires_at, task.seq, task))

    def next_wakeup(self) -> float | None:
        due = self.timers.next_due()
        expiries = self.expiries
        while expiries and expiries[0][2].state not in WAITING_STATES:
            heapq.heappop(expiries)
        if expiries and (due is None or expiries[0][0] < due):
            due = expiries[0][0]
        if self.wakeups:
            first = self.wakeups[0][0]
            return first if due is None else min(due, first)
        return due

    # -- heaps, parking and waking ----------------------------------------------------------------

    def push_queue(self, queue: QueueState, key: float) -> None:
        tenant = queue.tenant
        queue.heap_version += 1
        queue.in_heap = True
        queue.heap_key = key
        tenant.queue_order += 1
        heapq.heappush(tenant.queue_heap, (key, tenant.queue_order, queue.heap_version, queue))

    def requeue_head(self, queue: QueueState) -> None:
        head = queue.fifo.head()
        if head is not None and queue.parked is None:
            self.push_queue(queue, ready_key(head, self.settings.aging))

    def wake_tenant(self, tenant: TenantState) -> None:
        if tenant.parked is None or tenant.parked == IDLE:
            tenant.parked = None
            if tenant.queue_heap:
                self.fair.add(tenant)

    def wake_queue(self, queue: QueueState) -> None:
        queue.parked = None
        head = queue.fifo.head()
        if head is not None and not queue.in_heap:
            self.push_queue(queue, ready_key(head, self.settings.aging))
            self.wake_tenant(queue.tenant)

    def release_tenant(self, tenant: TenantState) -> None:
        """A parked tenant's own block may be gone: let it compete again."""
        if tenant.parked in _RELEASABLE:
            tenant.parked = None
            self.wake_tenant(tenant)

    def park_at(self, when: float, entity: QueueState | TenantState) -> None:
        heapq.heappush(self.wakeups, (when, next(self._wake_order), entity))

    def wake_function_waiters(self, function: FunctionState) -> None:
        if not function.waiters:
            return
        waiters = list(function.waiters)
        function.waiters.clear()
        for queue in waiters:
            if queue.parked == FUNCTION:
                self.wake_queue(queue)
