"""Scheduler: the pure decision core of the daemon.

No I/O at all - no sockets, no SQLite, no clock, no global random. Every method takes ``now`` (epoch
seconds, read once per step by ``daemon/engine.py``) and returns *actions*: persist a task's new
state, hand a task to a worker, report a finished task. The daemon performs them; nothing here
awaits. This is the h11 / httpcore shape: decide, then act.

What runs next, in three levels:

1. **Tenant** - stride scheduling by weight (``fairness.py``): capacity is shared by weight, not
   by who submitted more. Bound: ``|n_A/w_A - n_B/w_B| <= 1/w_A + 1/w_B`` while both are eligible.
2. **Queue** within the tenant - the queue whose head has the smallest aging key
   (``queues.py``): higher priority first, but a task is never overtaken by one that became ready
   more than ``9 * aging`` seconds after it, so no priority starves.
3. **Task** - the head of that queue. A queue is FIFO by key: a head blocked by its function's
   limit blocks its queue (give a slow function an exclusive queue to avoid that).

Limits gate each level - tenant (pause, concurrency, token bucket, back pressure at submit),
queue (pause, concurrency, token bucket) and function (pause, concurrency lowered by AIMD, token
bucket) - plus priority classes (``reserve``: slots kept free for priority >= p; ``caps``: at
most n running at priority <= p). A tenant or queue that is blocked is *parked* out of its heap
and woken by whatever releases it (an attempt ending, a resume, a token timer, new work), so a
dispatch decision costs O(log n) whatever the backlog; blocked work is never polled.

Rules every decision obeys:

* A task moves only along ``model.TRANSITIONS``; ``LiveTask.move`` enforces it.
* ``dispatch`` never hands out more tasks than the free slots it is given, never a task that is
  not due, never one whose TTL has passed (that one ends ``expired``), and never one that a
  limit or pause holds.
* An attempt is counted when it is dispatched, so an attempt interrupted by a crash counts.
* After an attempt fails, ``RetryPolicy`` decides between ``scheduled`` (a backoff) and
  ``failed`` (the dead-letter queue). A task makes at most ``retries + 1`` attempts.
* A task object that reaches a final state is never made live again (lazy deletion relies on it).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from asynctask.core.entities import (
    CONCURRENCY,
    FAULT,
    FUNCTION,
    HELD,
    IDLE,
    PAUSED,
    RATE,
    SHARDS,
    SLOW,
    FunctionState,
    QueueState,
    TenantState,
)
from asynctask.core.fairness import StrideScheduler
from asynctask.core.limits import FunctionLimits, SchedulerSettings
from asynctask.core.queues import ready_key
from asynctask.core.retry import RetryPolicy
from asynctask.core.sharding import ALWAYS, FAULTS, PROBATION, FaultRecord, shard_set
from asynctask.core.slots import WarmSlots
from asynctask.core.timers import Timers
from asynctask.errors import SubmitThrottled, UsageError
from asynctask.model import (
    PRIORITY_MAX,
    WAITING_STATES,
    ErrorKind,
    LiveTask,
    TaskState,
    error_dict,
)

S = TaskState
T = TypeVar("T")

#: Weight of the newest attempt in a tenant's average run time (an EWMA over ~20 attempts).
_RUN_WEIGHT = 0.05
#: Shortest run time the affinity budget divides by, and the most attempts it may allow.
_RUN_FLOOR = 1e-4
_AHEAD_MAX = 256.0


@dataclass(frozen=True, slots=True)
class Persist:
    """Write the task's current state; it is still live."""

    task: LiveTask


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Start an attempt of the task on a worker (already marked ``running`` and counted).

    ``shard`` is the worker shard to run it on, or -1 when ``dispatch`` was given a plain count
    of free workers (any worker will do)."""

    task: LiveTask
    shard: int = -1


@dataclass(frozen=True, slots=True)
class Finished:
    """The task reached a final state: persist it, release waiters, drop it from memory."""

    task: LiveTask


Action = Persist | Dispatch | Finished

#: Error kinds that mean the attempt broke its worker (killed it or held it to the timeout).
WORKER_FAULTS = frozenset({ErrorKind.WORKER_DIED, ErrorKind.TIMEOUT})

#: Pause targets: ("tenant", tenant, ""), ("queue", tenant, queue), ("function", "", function).
PauseTarget = tuple[str, str, str]


class Scheduler:
    def __init__(
        self,
        retry: RetryPolicy,
        rng: random.Random,
        settings: SchedulerSettings | None = None,
    ) -> None:
        self._retry = retry
        self._rng = rng
        self.settings = settings or SchedulerSettings()
        self._timers = Timers()
        #: (expires_at, seq, task) of waiting tasks with a TTL; entries of tasks that started or
        #: ended meanwhile are skipped when they come up (lazy deletion).
        self._expiries: list[tuple[float, int, LiveTask]] = []
        self._tenants: dict[str, TenantState] = {}
        self._functions: dict[str, FunctionState] = {}
        self._fair: StrideScheduler[TenantState] = StrideScheduler()
        self._wakeups: list[tuple[float, int, QueueState | TenantState]] = []
        self._wake_order = itertools.count()
        self._running: dict[int, LiveTask] = {}
        self._running_by_priority = [0] * (PRIORITY_MAX + 1)
        self._queued = 0
        self._paused: set[PauseTarget] = set()
        self._shard_waiters: dict[int, dict[TenantState, None]] = {}
        #: Tenants parked by their confinement alone (``HELD``), for the work-conserving pass
        #: of ``dispatch``; entries of tenants parked otherwise since are dropped there.
        self._held: dict[TenantState, None] = {}
        #: Attempts the spare pass started outside their tenant's own shards (``spread``).
        self._outside: set[int] = set()

    def __repr__(self) -> str:
        return (
            f"<Scheduler queued={self._queued} scheduled={len(self._timers)} "
            f"running={len(self._running)} tenants={len(self._tenants)} eligible={len(self._fair)}>"
        )

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def scheduled(self) -> int:
        return len(self._timers)

    @property
    def running(self) -> int:
        return len(self._running)

    # -- entities ---------------------------------------------------------------------------------

    def tenant(self, name: str, now: float = 0.0) -> TenantState:
        tenant = self._tenants.get(name)
        if tenant is None:
            tenant = self._tenants[name] = TenantState(name, self.settings.tenant(name), now)
            tenant.paused = ("tenant", name, "") in self._paused
        return tenant

    def _queue(self, tenant: TenantState, name: str, now: float) -> QueueState:
        queue = tenant.queues.get(name)
        if queue is None:
            limits = self.settings.queue(tenant.name, name)
            queue = QueueState(tenant, name, limits, self.settings.aging, now)
            queue.paused = ("queue", tenant.name, name) in self._paused
            tenant.queues[name] = queue
        return queue

    def function(self, name: str, now: float = 0.0) -> FunctionState:
        function = self._functions.get(name)
        if function is None:
            function = self._functions[name] = FunctionState(
                name,
                self.settings.function(name),
                self.settings.aimd,
                self.settings.capacity,
                now,
            )
            function.paused = ("function", "", name) in self._paused
        return function

    def declare_function_limits(self, name: str, declared: FunctionLimits, now: float) -> None:
        """Limits a function declares in code; each key the config sets for it wins."""
        configured = self.settings.function(name)
        merged = FunctionLimits(
            concurrency=_first(configured.concurrency, declared.concurrency),
            rate=_first(configured.rate, declared.rate),
            burst=_first(configured.burst, declared.burst),
            aimd=configured.aimd,
        )
        function = self.function(name, now)
        if merged == function.limits:
            return
        function.configure(merged, self.settings.aimd, self.settings.capacity, now)
        self._wake_function_waiters(function)  # a raised limit may free waiting queues

    def tenants(self) -> Iterator[TenantState]:
        return iter(self._tenants.values())

    def functions(self) -> Iterator[FunctionState]:
        return iter(self._functions.values())

    # -- admission --------------------------------------------------------------------------------

    def admit(
        self,
        tenant_name: str,
        count: int,
        now: float,
        nbytes: int = 0,
        queues: Collection[str] = (),
    ) -> None:
        """Back pressure: refuse ``count`` new tasks of ``nbytes`` payload bytes if they would
        overfill the tenant's backlog (``SubmitThrottled``, retryable), or if their ``queues``
        would give the tenant more than ``max_queues`` queue names (``UsageError``)."""
        tenant = self.tenant(tenant_name, now)
        limits = tenant.limits
        new_queues = {name for name in queues if name not in tenant.queues}
        if len(tenant.queues) + len(new_queues) > limits.max_queues:
            raise UsageError(
                f"tenant {tenant_name!r} has {len(tenant.queues)} queues and this would add "
                f"{len(new_queues)}: the limit is {limits.max_queues} ([tenants] max_queues); "
                "use fewer queue names"
            )
        limit = limits.max_backlog
        waiting = tenant.backlog + tenant.reserved
        if waiting + count > limit:
            tenant.refused += count
            running = max(tenant.running, 1)
            retry_after = min(60.0, max(1.0, (waiting + count - limit) / running))
            raise SubmitThrottled(
                f"throttled: tenant {tenant_name!r} has {waiting} tasks waiting "
                f"(limit {limit}); "
                f"retry after {retry_after:.0f}s",
                retry_after,
            )
        byte_limit = limits.max_backlog_bytes
        waiting_bytes = tenant.backlog_bytes + tenant.reserved_bytes
        if waiting_bytes + nbytes > byte_limit:
            tenant.refused += count
            # tasks to run before it fits, at the tenant's mean payload size, per running slot
            mean = waiting_bytes / waiting if waiting else nbytes or 1
            over = (waiting_bytes + nbytes - byte_limit) / max(mean, 1)
            retry_after = min(60.0, max(1.0, over / max(tenant.running, 1)))
            raise SubmitThrottled(
                f"throttled: tenant {tenant_name!r} has {waiting_bytes} payload bytes "
                f"waiting and this submit adds {nbytes} (limit {byte_limit}, max_backlog_bytes); "
                f"retry after {retry_after:.0f}s",
                retry_after,
            )

    def reserve(
        self, tenant_name: str, count: int, nbytes: int, queues: Collection[str], now: float
    ) -> None:
        """Count ``count`` admitted tasks of ``nbytes`` toward the tenant's bounds while their
        submit is being stored (``admit`` sees them), so concurrent submits cannot all pass
        one bound; their queues are made now. The caller ``unreserve``s once they are added
        or refused (counted twice in between: on the safe side)."""
        tenant = self.tenant(tenant_name, now)
        for name in queues:
            self._queue(tenant, name, now)
        tenant.reserved += count
        tenant.reserved_bytes += nbytes

    def unreserve(self, tenant_name: str, count: int, nbytes: int) -> None:
        tenant = self._tenants[tenant_name]
        tenant.reserved -= count
        tenant.reserved_bytes -= nbytes

    def add(self, task: LiveTask, now: float = 0.0) -> None:
        """Take in a task that is ``queued`` or ``scheduled`` (new, or recovered at start-up)."""
        tenant = self.tenant(task.tenant, now)
        queue = self._queue(tenant, task.queue, now)
        self.function(task.function, now)
        tenant.backlog += 1
        tenant.backlog_bytes += len(task.payload)
        if task.held and task.state in _WAITING:
            queue.held += 1
        elif task.state is S.QUEUED:
            self._enqueue(task, now)
        elif task.state is S.SCHEDULED:
            queue.scheduled += 1
            self._timers.push(task)
        else:
            tenant.backlog -= 1
            tenant.backlog_bytes -= len(task.payload)
            raise ValueError(f"only queued or scheduled tasks can be added, not {task.state}")
        if task.expires_at is not None:
            heapq.heappush(self._expiries, (task.expires_at, task.seq, task))

    def _enqueue(self, task: LiveTask, now: float) -> None:
        tenant = self._tenants[task.tenant]
        queue = tenant.queues[task.queue]
        task.queued_at = now
        queue.fifo.push(task)
        self._functions[task.function].queued += 1
        self._queued += 1
        key = ready_key(task, self.settings.aging)
        if queue.parked is None:
            if not queue.in_heap or key < queue.heap_key:
                self._push_queue(queue, key)
            self._wake_tenant(tenant)
        elif queue.parked in (FUNCTION, RATE) and key < queue.heap_key:
            self._wake_queue(queue)  # a new head may belong to a function that is not held

    def remove(self, task: LiveTask, new_state: TaskState, now: float) -> Finished:
        """Take a queued or scheduled task out (cancel); it ends in ``new_state``."""
        old = task.state
        task.move(new_state)
        task.finished_at = now
        tenant = self._tenants[task.tenant]
        tenant.backlog -= 1
        tenant.backlog_bytes -= len(task.payload)
        if task.held:
            task.held = False
            tenant.queues[task.queue].held -= 1
        elif old is S.QUEUED:
            tenant.queues[task.queue].fifo.discard(task)
            self._functions[task.function].queued -= 1
            self._queued -= 1
        elif old is S.SCHEDULED:
            tenant.queues[task.queue].scheduled -= 1
            self._timers.discard(task)
        return Finished(task)

    def cancel(self, task: LiveTask, now: float) -> Finished:
        """Cancel a live task. A running one ends ``cancelled`` at once and gives its slot back:
        the caller stops its worker and ignores whatever the attempt reports later."""
        if task.state is not S.RUNNING:
            return self.remove(task, S.CANCELLED, now)
        function = self._release(task, now)
        if function is not None:
            self._wake_function_waiters(function)
        self._tenants[task.tenant].completed += 1
        task.move(S.CANCELLED)
        task.finished_at = now
        return Finished(task)

    # -- holding tasks (pause by selector) ---------------------------------------------------------

    def hold(self, tasks: list[LiveTask]) -> list[LiveTask]:
        """Pause these waiting tasks one by one: they keep their state (``queued`` or
        ``scheduled``) and their place in the backlog, but leave the ready queues and the timers
        until ``release``; their TTL still runs. Returns the ones that were not held already.

        The queues and timers drop them at once, one pass per queue touched, rather than
        lazily: a released task is pushed again and must not meet a stale entry of itself."""
        changed = [task for task in tasks if not task.held and task.state in _WAITING]
        by_queue: dict[QueueState, set[int]] = {}
        scheduled: set[int] = set()
        for task in changed:
            queue = self._tenants[task.tenant].queues[task.queue]
            task.held = True
            queue.held += 1
            if task.state is S.QUEUED:
                by_queue.setdefault(queue, set()).add(task.seq)
                self._functions[task.function].queued -= 1
                self._queued -= 1
            else:
                scheduled.add(task.seq)
                queue.scheduled -= 1
        for queue, seqs in by_queue.items():
            queue.fifo.drop(seqs)
            if queue.parked == FUNCTION:
                self._wake_queue(queue)  # the head that held it may be gone
        if scheduled:
            self._timers.drop(scheduled)
        return changed

    def release(self, tasks: list[LiveTask], now: float) -> list[LiveTask]:
        """Undo ``hold``: queued tasks join the back of their queue, scheduled ones wait for
        their due time again. Returns the ones that were held."""
        changed = [task for task in tasks if task.held and task.state in _WAITING]
        for task in changed:
            task.held = False
            queue = self._tenants[task.tenant].queues[task.queue]
            queue.held -= 1
            if task.state is S.QUEUED:
                self._enqueue(task, now)
            else:
                queue.scheduled += 1
                self._timers.push(task)
        return changed

    # -- heaps, parking and waking ----------------------------------------------------------------

    def _push_queue(self, queue: QueueState, key: float) -> None:
        tenant = queue.tenant
        queue.heap_version += 1
        queue.in_heap = True
        queue.heap_key = key
        tenant.queue_order += 1
        heapq.heappush(tenant.queue_heap, (key, tenant.queue_order, queue.heap_version, queue))

    def _wake_tenant(self, tenant: TenantState) -> None:
        if tenant.parked is None or tenant.parked == IDLE:
            tenant.parked = None
            if tenant.queue_heap:
                self._fair.add(tenant)

    def _wake_queue(self, queue: QueueState) -> None:
        queue.parked = None
        head = queue.fifo.head()
        if head is not None and not queue.in_heap:
            self._push_queue(queue, ready_key(head, self.settings.aging))
            self._wake_tenant(queue.tenant)

    def _release_tenant(self, tenant: TenantState) -> None:
        """A parked tenant's own block may be gone: let it compete again."""
        if tenant.parked in (CONCURRENCY, RATE, PAUSED, FAULT, SHARDS, SLOW):
            tenant.parked = None
            self._wake_tenant(tenant)

    def _park_at(self, when: float, entity: QueueState | TenantState) -> None:
        heapq.heappush(self._wakeups, (when, next(self._wake_order), entity))

    def _wake_function_waiters(self, function: FunctionState) -> None:
        if not function.waiters:
            return
        waiters = list(function.waiters)
        function.waiters.clear()
        for queue in waiters:
            if queue.parked == FUNCTION:
                self._wake_queue(queue)

    def next_wakeup(self) -> float | None:
        """When ``dispatch`` next has something to do even if nothing else happens."""
        due = self._timers.next_due()
        expiries = self._expiries
        while expiries and expiries[0][2].state not in _WAITING:
            heapq.heappop(expiries)
        if expiries and (due is None or expiries[0][0] < due):
            due = expiries[0][0]
        if self._wakeups:
            first = self._wakeups[0][0]
            return first if due is None else min(due, first)
        return due

    # -- dispatch ---------------------------------------------------------------------------------

    def has_eligible(self) -> bool:
        """Whether some tenant has work it could start if a slot were free (the pool grows
        on it: paused, rate-held, concurrency-held or confinement-held work does not count; a
        lone confined tenant that the spare pass served until the slots ran out is still in
        the heap, so it does)."""
        return len(self._fair) > 0

    def dispatch(
        self, now: float, free_slots: int | list[int], warm: WarmSlots | None = None
    ) -> list[Action]:
        """Promote due timers, release token waits, then hand out up to ``free_slots`` tasks.

        ``free_slots`` is either a count of idle workers (any task may take any of them) or,
        with a sharded pool, the idle workers of each shard: then every ``Dispatch`` names its
        shard, and a confined tenant gets only its own (``sharding.py``) - unless it is the
        only tenant waiting: then a last pass gives it idle workers up to its allowance
        (``_spare_pass``). ``warm`` says whose workers the free slots are on (one tenant per
        worker, ``slots.py``): a tenant whose turn it is but who has no worker free may be
        passed over for one that has, within ``settings.affinity`` of fairness."""
        actions: list[Action] = []
        free: list[int] | None = None
        if not isinstance(free_slots, int):
            free = list(free_slots)
            expected = self.settings.sharding.shards
            if len(free) != expected:
                raise ValueError(f"{len(free)} shards given, but the settings say {expected}")
            free_slots = sum(free)
            if self._shard_waiters:
                self._wake_shard_waiters(free)
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            task = heapq.heappop(expiries)[2]
            if task.state in _WAITING:
                # Expired where it waits, not when it would have reached a worker: a backlog
                # never holds dead tasks, and waiters hear at the deadline.
                actions.append(self.remove(task, S.EXPIRED, now))
        for task in self._timers.pop_due(now):
            task.move(S.QUEUED)
            task.due_at = None
            self._tenants[task.tenant].queues[task.queue].scheduled -= 1
            self._enqueue(task, now)
            actions.append(Persist(task))
        wakeups = self._wakeups
        while wakeups and wakeups[0][0] <= now:
            entity = heapq.heappop(wakeups)[2]
            if isinstance(entity, QueueState):
                if entity.parked == RATE:
                    self._wake_queue(entity)
            elif entity.parked in (RATE, FAULT):
                self._release_tenant(entity)
        deferred: list[TenantState] = []
        fair = self._fair
        spare = False  # the work-conserving pass: bounds widened to the allowance (_spare_pass)
        while free_slots > 0:
            tenant = fair.pop()
            if tenant is None:
                if spare or not self._spare_pass():
                    break
                spare = True
                continue
            if warm is not None and not warm.serves(tenant.name):
                tenant = self._warm_instead(tenant, warm)
            block = self._tenant_block(tenant, now, spare)
            if block is not None:
                tenant.parked = block
                if block in HELD:
                    self._held[tenant] = None
                continue
            shard = -1
            outside = False
            if free is not None:
                shard = self._shard_for(tenant, free, now, warm, spare)
                if shard < 0:
                    tenant.parked = SHARDS
                    self._held[tenant] = None
                    continue
                own = tenant.shards
                outside = (
                    spare and own is not None and shard not in own and self.confined(tenant, now)
                )
            floor = self._priority_floor(free_slots)
            picked = self._pick(tenant, now, floor)
            if picked is None:
                if tenant.queue_heap:
                    deferred.append(tenant)  # only held back by reserve/caps
                else:
                    tenant.parked = IDLE
                continue
            task = picked
            queue = tenant.queues[task.queue]
            function = self._functions[task.function]
            popped = queue.fifo.pop()
            assert popped is task
            function.queued -= 1
            self._queued -= 1
            tenant.backlog -= 1
            tenant.backlog_bytes -= len(task.payload)
            if task.expires_at is not None and task.expires_at <= now:
                task.move(S.EXPIRED)
                task.finished_at = now
                actions.append(Finished(task))
                self._requeue_head(queue)
                fair.push_back(tenant)
                continue
            for bucket in (tenant.bucket, queue.bucket, function.bucket):
                if bucket is not None:
                    bucket.try_take(now)
            task.move(S.RUNNING)
            task.attempts += 1
            task.started_at = now
            tenant.running += 1
            queue.running += 1
            function.running += 1
            self._running_by_priority[task.priority] += 1
            self._running[task.seq] = task
            if outside:
                self._outside.add(task.seq)
                tenant.spread += 1
            actions.append(Dispatch(task, shard))
            if warm is not None:
                warm.take(tenant.name, shard)
            free_slots -= 1
            if free is not None:
                free[shard] -= 1
            fair.charge(tenant)
            self._requeue_head(queue)
            if tenant.queue_heap:
                fair.push_back(tenant)
            else:
                tenant.parked = IDLE
        for tenant in deferred:
            fair.push_back(tenant)
        return actions

    def _spare_pass(self) -> bool:
        """Every eligible tenant was served and workers are still idle: if exactly one tenant
        is held back by its confinement alone (``HELD``: its shards busy, or at its slow-start
        width), let it compete again with those bounds widened to its allowance (True if so;
        ``sharding.py``, "Work conservation").

        A second held tenant is someone waiting, so neither is served beyond its bounds: the
        spare pass never takes a worker another tenant could use now. Tenants held by their
        own limits (pause, concurrency, rate) or backing off after faults wait for no worker.
        ``always`` is strict: never."""
        if not self._held or self.settings.sharding.confinement == ALWAYS:
            return False
        held = [tenant for tenant in self._held if tenant.parked in HELD]
        self._held = dict.fromkeys(held)
        if len(held) != 1:
            return False
        self._release_tenant(held[0])
        return True

    def _warm_instead(self, popped: TenantState, warm: WarmSlots) -> TenantState:
        """The eligible tenant with an idle worker of its own and the smallest pass, if it is
        ahead of ``popped`` by at most ``affinity`` seconds of its own typical attempt (an
        average of its recent run times, and at most ``_AHEAD_MAX`` attempts); else
        ``popped``. ``popped`` goes back to the heap uncharged when passed over, so it keeps its
        turn for the next slot.

        This bends the stride bound by that much: over any interval, a tenant runs at most
        ``affinity`` seconds of work ahead of its share (tests/core/test_affinity.py). Replacing
        a worker costs a few ms, so short tasks gain much from it and long ones need none.
        """
        budget = self.settings.affinity
        best: TenantState | None = None
        for name, free in warm.own.items():
            if free <= 0:
                continue
            other = self._tenants.get(name)
            if other is None or not other.in_heap:
                continue
            # ``affinity`` seconds of this tenant's typical attempts, in passes (1 / weight
            # each): a tenant of short tasks may run many ahead, one of long tasks few, and one
            # with none finished yet only ties.
            typical = other.run_avg
            ahead = 0.0 if typical is None else min(budget / max(typical, _RUN_FLOOR), _AHEAD_MAX)
            ahead /= other.weight
            if other.vpass > popped.vpass + ahead:
                continue
            if best is None or other.vpass < best.vpass:
                best = other
        if best is None:
            return popped
        self._fair.push_back(popped)
        self._fair.remove(best)
        return best

    def _requeue_head(self, queue: QueueState) -> None:
        head = queue.fifo.head()
        if head is not None and queue.parked is None:
            self._push_queue(queue, ready_key(head, self.settings.aging))

    def _tenant_block(self, tenant: TenantState, now: float, spare: bool = False) -> str | None:
        """What holds the tenant now, or ``None``. In the spare pass (``spare``) its slow
        start is widened to ``1 + max(clean_successes, allowance)``; its back-off holds."""
        if tenant.paused:
            return PAUSED
        faults = tenant.faults
        if faults is not None and faults.backoff_until > now:
            self._park_at(faults.backoff_until, tenant)
            return FAULT
        limit = tenant.limits.concurrency
        if limit is not None and tenant.running >= limit:
            return CONCURRENCY
        if tenant.running > tenant.clean_successes and self._slow_started(tenant, now):
            allowance = self._allowance(tenant, now) if spare else 0
            if tenant.running > max(tenant.clean_successes, allowance):
                return SLOW
        bucket = tenant.bucket
        if bucket is not None:
            wait = bucket.wait_time(now)
            if wait > 0:
                self._park_at(now + wait, tenant)
                return RATE
        return None

    def _allowance(self, tenant: TenantState, now: float) -> int:
        """How far the spare pass may widen the tenant's bounds (``FaultRecord.spare``)."""
        faults = tenant.faults
        return 0 if faults is None else faults.spare(self.settings.sharding, now)

    def _shard_for(
        self,
        tenant: TenantState,
        free: list[int],
        now: float,
        warm: WarmSlots | None = None,
        spare: bool = False,
    ) -> int:
        """The shard the tenant's next attempt runs on, or -1 (then it waits on its shards).

        A shard where no worker need be replaced comes first (``WarmSlots.shard_of``), where
        the tenant may use it; else an unconfined tenant takes the shard with the most idle
        workers, and a confined one the best of its own. In the spare pass (``spare``) a
        confined tenant whose own shards are all busy may go outside them while fewer than its
        allowance of its attempts run there (``spread``)."""
        home = warm.shard_of(tenant.name) if warm is not None else None
        if not self.confined(tenant, now):
            if home is not None and free[home] > 0:
                return home
            return max(range(len(free)), key=free.__getitem__)
        own = tenant.shards
        if own is None:
            own = tenant.shards = self.shards_of(tenant.name)
        if home is not None and home in own and free[home] > 0:
            return home
        best = max(own, key=free.__getitem__)
        if free[best] > 0:
            return best
        if spare and tenant.spread < self._allowance(tenant, now):
            if home is not None and free[home] > 0:
                return home  # a worker of its own (or a fresh one): nothing to replace
            return max(range(len(free)), key=free.__getitem__)
        for shard in own:
            self._shard_waiters.setdefault(shard, {})[tenant] = None
        return -1

    def _wake_shard_waiters(self, free: list[int]) -> None:
        for shard, count in enumerate(free):
            if count <= 0:
                continue
            waiters = self._shard_waiters.pop(shard, None)
            if waiters:
                for tenant in waiters:
                    if tenant.parked == SHARDS:
                        self._release_tenant(tenant)

    def shards_of(self, tenant_name: str) -> tuple[int, ...]:
        """The worker shards ``tenant_name`` is confined to when it is (for ``queues``)."""
        settings = self.settings.sharding
        return shard_set(tenant_name, settings.shards, settings.per_tenant)

    def confinement(self, tenant: TenantState, now: float) -> str | None:
        """Why the tenant is confined now (``always``, ``faults``, ``probation``), or ``None``.

        A confined tenant runs only on its own shards (when there are more shards than it
        owns) and backs off after each attempt that breaks a worker."""
        settings = self.settings.sharding
        if settings.confinement == ALWAYS:
            return ALWAYS
        faults = tenant.faults
        if faults is not None and faults.confined_until > now:
            return FAULTS
        if settings.sharded and tenant.clean_ends < settings.probation:
            return PROBATION
        return None

    def _slow_started(self, tenant: TenantState, now: float) -> bool:
        """Whether the tenant's concurrency is held to ``1 + clean_successes`` (on probation or
        confined for faults): a tenant that breaks every worker it gets holds one at a time."""
        return self.confinement(tenant, now) in (FAULTS, PROBATION)

    def confined(self, tenant: TenantState, now: float) -> bool:
        """Whether the tenant may use only its own shards now."""
        return self.settings.sharding.sharded and self.confinement(tenant, now) is not None

    def _pick(self, tenant: TenantState, now: float, floor: int) -> LiveTask | None:
        """The head task of the tenant's best eligible queue (left in its queue), or ``None``.

        Queues found blocked are parked on the way; queues held back only by the priority
        floor stay in the heap."""
        heap = tenant.queue_heap
        held: list[QueueState] = []
        found: LiveTask | None = None
        aging = self.settings.aging
        while heap:
            key, _, version, queue = heapq.heappop(heap)
            if not queue.in_heap or version != queue.heap_version:
                continue
            queue.in_heap = False
            head = queue.fifo.head()
            if head is None:
                continue
            head_key = ready_key(head, aging)
            if head_key != key:
                self._push_queue(queue, head_key)
                continue
            if not self._queue_ready(queue, head, now):
                continue
            if head.priority < floor:
                held.append(queue)
                continue
            found = head
            break
        for queue in held:
            self._push_queue(queue, queue.heap_key)
        return found

    def _queue_ready(self, queue: QueueState, head: LiveTask, now: float) -> bool:
        """Whether the queue may start its head now; if not, park it on what holds it."""
        if queue.paused:
            queue.parked = PAUSED
            return False
        limit = queue.limits.concurrency
        if limit is not None and queue.running >= limit:
            queue.parked = CONCURRENCY
            return False
        function = self._functions[head.function]
        function_limit = function.concurrency_limit()
        if function.paused or (function_limit is not None and function.running >= function_limit):
            queue.parked = FUNCTION
            function.waiters[queue] = None
            return False
        wait = 0.0
        for bucket in (queue.bucket, function.bucket):
            if bucket is not None:
                wait = max(wait, bucket.wait_time(now))
        if wait > 0:
            queue.parked = RATE
            self._park_at(now + wait, queue)
            return False
        return True

    def _priority_floor(self, free_slots: int) -> int:
        """The lowest priority that may take a slot now (reserve and caps)."""
        settings = self.settings
        if not settings.reserve and not settings.caps:
            return 0
        running = self._running_by_priority
        floor = 0
        for level, reserved in settings.reserve.items():
            at_or_above = sum(running[level:])
            unmet = reserved - at_or_above
            if unmet > 0 and free_slots - 1 < unmet:
                floor = max(floor, level)  # only priority >= level may take the slot
        for level, cap in settings.caps.items():
            if sum(running[: level + 1]) >= cap:
                floor = max(floor, level + 1)
        return floor

    # -- attempts ending --------------------------------------------------------------------------

    def _release(self, task: LiveTask, now: float) -> FunctionState | None:
        """Give back the running slot of a dispatched task; wake whatever it held back."""
        if self._running.pop(task.seq, None) is None:
            return None  # recovered as running: never dispatched by this scheduler
        tenant = self._tenants[task.tenant]
        if task.seq in self._outside:
            self._outside.discard(task.seq)
            tenant.spread -= 1
        if task.started_at is not None:  # the tenant's typical attempt, for _warm_instead
            ran = max(0.0, now - task.started_at)
            average = tenant.run_avg
            tenant.run_avg = ran if average is None else average + (ran - average) * _RUN_WEIGHT
        queue = tenant.queues[task.queue]
        function = self._functions[task.function]
        tenant.running -= 1
        queue.running -= 1
        function.running -= 1
        self._running_by_priority[task.priority] -= 1
        if tenant.parked in (CONCURRENCY, SLOW):
            self._release_tenant(tenant)
        if queue.parked == CONCURRENCY:
            self._wake_queue(queue)
        return function

    def succeeded(self, task: LiveTask, result: bytes | None, now: float) -> Finished:
        function = self._release(task, now)
        tenant = self._tenants[task.tenant]
        if function is not None:
            if function.aimd is not None:
                function.aimd.on_success(now, backlog=function.queued > 0)
            self._wake_function_waiters(function)
            tenant.successes += 1
            tenant.clean_ends += 1
            tenant.clean_successes += 1
            faults = self._fault_record(tenant)
            faults.on_success()
            faults.on_clean_end(self.settings.sharding, now)
            if tenant.parked == FAULT:  # its back-off ended with the success, not at its timer
                self._release_tenant(tenant)
        tenant.completed += 1
        task.move(S.SUCCEEDED)
        task.result = result
        task.error = None
        task.finished_at = now
        return Finished(task)

    def attempt_failed(
        self, task: LiveTask, error: dict[str, Any], now: float, *, retry_limit_kills: bool = False
    ) -> Action:
        """An attempt ended without success: back off and retry, or dead-letter the task."""
        kind = _kind_of(error)
        function = self._release(task, now)
        if function is not None:
            if function.aimd is not None:
                if kind is ErrorKind.THROTTLED:
                    function.aimd.on_throttle(now)
                else:
                    function.aimd.on_other_end(now)
            self._wake_function_waiters(function)
            tenant = self._tenants[task.tenant]
            faults = self._fault_record(tenant)
            if kind in WORKER_FAULTS:
                faults.on_fault(self.settings.sharding, now)
                tenant.clean_successes = 0
                if self.confinement(tenant, now) is not None:
                    faults.back_off(self.settings.sharding, now)
            else:  # a task error is the task's, not a broken worker: not a fault
                tenant.clean_ends += 1
                faults.on_clean_end(self.settings.sharding, now)
        record_error(task, error, now)
        if self._retry.should_retry(
            kind, task.attempts, task.retries, retry_limit_kills=retry_limit_kills
        ):
            retry_after = error.get("retry_after")
            delay = self._retry.delay(
                task.attempts,
                self._rng,
                float(retry_after) if isinstance(retry_after, int | float) else None,
            )
            task.move(S.SCHEDULED)
            task.due_at = now + delay
            self._back_to_waiting(task)
            self._timers.push(task)
            self._tenants[task.tenant].queues[task.queue].scheduled += 1
            return Persist(task)
        self._tenants[task.tenant].completed += 1
        task.move(S.FAILED)
        task.finished_at = now
        return Finished(task)

    @staticmethod
    def _fault_record(tenant: TenantState) -> FaultRecord:
        """The tenant's record of recent attempts (every ending counts toward the ratio)."""
        if tenant.faults is None:
            tenant.faults = FaultRecord()
        return tenant.faults

    def interrupted(self, task: LiveTask, reason: str, now: float) -> Action:
        """The daemon itself stopped the attempt (shutdown, crash): it counts, and the task is
        queued again at once if it has retries left."""
        function = self._release(task, now)
        if function is not None:
            self._wake_function_waiters(function)
        record_error(task, error_dict(ErrorKind.INTERRUPTED, "Interrupted", reason), now)
        if task.attempts > task.retries:
            task.move(S.FAILED)
            task.finished_at = now
            return Finished(task)
        task.move(S.QUEUED)
        self._back_to_waiting(task)
        self._enqueue(task, now)
        return Persist(task)

    def _back_to_waiting(self, task: LiveTask) -> None:
        tenant = self.tenant(task.tenant)
        self._queue(tenant, task.queue, 0.0)
        self.function(task.function)
        tenant.backlog += 1
        tenant.backlog_bytes += len(task.payload)
        if task.expires_at is not None:
            heapq.heappush(self._expiries, (task.expires_at, task.seq, task))

    # -- pause / resume ---------------------------------------------------------------------------

    def pause(self, target: PauseTarget) -> None:
        """Hold a tenant, queue or function: queued work stays queued; running work goes on."""
        self._set_paused(target, True)

    def resume(self, target: PauseTarget) -> None:
        self._set_paused(target, False)

    def is_paused(self, target: PauseTarget) -> bool:
        return target in self._paused

    def paused_targets(self) -> list[PauseTarget]:
        return sorted(self._paused)

    def _set_paused(self, target: PauseTarget, paused: bool) -> None:
        kind, tenant_name, name = target
        if paused:
            self._paused.add(target)
        else:
            self._paused.discard(target)
        if kind == "tenant":
            tenant = self.tenant(tenant_name)
            tenant.paused = paused
            if not paused and tenant.parked == PAUSED:
                self._release_tenant(tenant)
        elif kind == "queue":
            queue = self._queue(self.tenant(tenant_name), name, 0.0)
            queue.paused = paused
            if not paused and queue.parked == PAUSED:
                self._wake_queue(queue)
        elif kind == "function":
            function = self.function(name)
            function.paused = paused
            if not paused:
                self._wake_function_waiters(function)
        else:
            raise ValueError(f"unknown pause target kind {kind!r}")


#: Failed attempts whose errors a task keeps (the newest); each entry names its attempt, so a
#: gap shows where older ones were dropped.
ERROR_HISTORY = 20


def record_error(task: LiveTask, error: dict[str, Any], now: float) -> None:
    """Make ``error`` the task's last error and add it to ``task.errors``, the per-attempt
    history that outlives a later success (without the traceback: only the last keeps one)."""
    task.error = error
    entry = {key: value for key, value in error.items() if key != "traceback"}
    entry["attempt"] = task.attempts
    entry["started_at"] = task.started_at
    entry["finished_at"] = now
    history = task.errors
    if history is None:
        task.errors = [entry]
    else:
        history.append(entry)
        del history[:-ERROR_HISTORY]


def _first(*values: T | None) -> T | None:
    return next((value for value in values if value is not None), None)


_WAITING = WAITING_STATES


def _kind_of(error: dict[str, Any]) -> ErrorKind:
    try:
        return ErrorKind(error.get("kind", ErrorKind.EXCEPTION))
    except ValueError:
        return ErrorKind.EXCEPTION
