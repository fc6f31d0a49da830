"""Dispatcher: the dispatch pass, the hot path of the daemon (one call per step).

It promotes what came due (TTL expiries, timers, token and back-off wake-ups), then hands out
free slots in three levels: the tenant by stride fairness, the queue within it by aging key,
the head task of that queue (see ``scheduler.py`` for the rules each decision obeys). Every
limit is checked where it applies and a blocked entity is parked on the ``Board`` rather than
skipped, so the pass never meets the same blocked work twice.

Kept apart from the rest of the scheduler because it is the one place where cost per decision
matters: ``benchmarks/bench_core.py`` times it.
"""

from __future__ import annotations

import heapq

from asynctask.core.actions import Action, Dispatch, Finished, Persist
from asynctask.core.board import Board
from asynctask.core.confinement import Confinement
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
    QueueState,
    TenantState,
)
from asynctask.core.queues import ready_key
from asynctask.core.slots import WarmSlots
from asynctask.model import WAITING_STATES, LiveTask, TaskState

S = TaskState

#: Shortest run time the affinity budget divides by, and the most attempts it may allow.
_RUN_FLOOR = 1e-4
_AHEAD_MAX = 256.0
#: The most attempts a warm tenant may go ahead per task in the passed-over tenant's backlog.
AHEAD_PER_WAITING = 8.0


class Dispatcher:
    def __init__(self, board: Board, confinement: Confinement) -> None:
        self._board = board
        self._confinement = confinement

    def dispatch(
        self, now: float, free_slots: int | list[int], warm: WarmSlots | None = None
    ) -> list[Action]:
        actions: list[Action] = []
        board = self._board
        confinement = self._confinement
        free: list[int] | None = None
        if not isinstance(free_slots, int):
            free = list(free_slots)
            expected = board.settings.sharding.shards
            if len(free) != expected:
                raise ValueError(f"{len(free)} shards given, but the settings say {expected}")
            free_slots = sum(free)
            if confinement.shard_waiters:
                confinement.wake_shard_waiters(free)
        self._promote(now, actions)
        deferred: list[TenantState] = []
        fair = board.fair
        spare = False  # the work-conserving pass: bounds widened to the allowance (spare_pass)
        while free_slots > 0:
            tenant = fair.pop()
            if tenant is None:
                if spare or not confinement.spare_pass():
                    break
                spare = True
                continue
            if warm is not None and not warm.serves(tenant.name):
                tenant = self._warm_instead(tenant, warm)
            block = self._tenant_block(tenant, now, spare)
            if block is not None:
                tenant.parked = block
                if block in HELD:
                    confinement.held[tenant] = None
                continue
            shard = -1
            if free is not None:
                shard = confinement.shard_for(tenant, free, now, warm, spare)
                if shard < 0:
                    tenant.parked = SHARDS
                    confinement.held[tenant] = None
                    continue
            picked = self._pick(tenant, now, self._priority_floor(free_slots))
            if picked is None:
                if tenant.queue_heap:
                    deferred.append(tenant)  # only held back by reserve/caps
                else:
                    tenant.parked = IDLE
                continue
            queue = tenant.queues[picked.queue]
            if not self._start(tenant, queue, picked, now, spare and free is not None, shard):
                actions.append(Finished(picked))  # its TTL passed at the head of its queue
                board.requeue_head(queue)
                fair.push_back(tenant)
                continue
            actions.append(Dispatch(picked, shard))
            if warm is not None:
                warm.take(tenant.name, shard)
            free_slots -= 1
            if free is not None:
                free[shard] -= 1
            fair.charge(tenant)
            board.requeue_head(queue)
            if tenant.queue_heap:
                fair.push_back(tenant)
            else:
                tenant.parked = IDLE
        for tenant in deferred:
            fair.push_back(tenant)
        return actions

    def _start(
        self,
        tenant: TenantState,
        queue: QueueState,
        task: LiveTask,
        now: float,
        spare: bool,
        shard: int,
    ) -> bool:
        """Take the picked head out of its queue and start its attempt; False if it expired
        there instead (it ends ``expired``). The attempt is counted now, at dispatch, so one
        that a crash interrupts still counts against the task's retries."""
        board = self._board
        function = board.functions[task.function]
        popped = queue.fifo.pop()
        assert popped is task
        function.queued -= 1
        board.queued -= 1
        tenant.backlog -= 1
        tenant.backlog_bytes -= len(task.payload)
        if task.expires_at is not None and task.expires_at <= now:
            task.move(S.EXPIRED)
            task.finished_at = now
            return False
        for bucket in (tenant.bucket, queue.bucket, function.bucket):
            if bucket is not None:
                bucket.try_take(now)
        task.move(S.RUNNING)
        task.attempts += 1
        task.started_at = now
        tenant.running += 1
        queue.running += 1
        function.running += 1
        board.running_by_priority[task.priority] += 1
        board.running[task.seq] = task
        if spare:  # the spare pass may have placed it outside its tenant's own shards
            own = tenant.shards
            confinement = self._confinement
            if own is not None and shard not in own and confinement.confined(tenant, now):
                confinement.outside.add(task.seq)
                tenant.spread += 1
        return True

    def _promote(self, now: float, actions: list[Action]) -> None:
        """Expire waiting tasks whose TTL passed, queue due timers, wake what a timer parked."""
        board = self._board
        expiries = board.expiries
        while expiries and expiries[0][0] <= now:
            task = heapq.heappop(expiries)[2]
            if task.state in WAITING_STATES:
                # Expired where it waits, not when it would have reached a worker: a backlog
                # never holds dead tasks, and waiters hear at the deadline.
                actions.append(board.remove(task, S.EXPIRED, now))
        for task in board.timers.pop_due(now):
            task.move(S.QUEUED)
            task.due_at = None
            board.tenants[task.tenant].queues[task.queue].scheduled -= 1
            board.enqueue(task, now)
            actions.append(Persist(task))
        wakeups = board.wakeups
        while wakeups and wakeups[0][0] <= now:
            entity = heapq.heappop(wakeups)[2]
            if isinstance(entity, QueueState):
                if entity.parked == RATE:
                    board.wake_queue(entity)
            elif entity.parked in (RATE, FAULT):
                board.release_tenant(entity)

    def _warm_instead(self, popped: TenantState, warm: WarmSlots) -> TenantState:
        """The eligible tenant with an idle worker of its own and the smallest pass, if it is
        ahead of ``popped`` by at most ``affinity`` seconds of its own typical attempt (an
        average of its recent run times, at most ``_AHEAD_MAX`` attempts, and at most
        ``AHEAD_PER_WAITING`` attempts per task ``popped`` has waiting); else ``popped``.
        ``popped`` goes back to the heap uncharged when passed over, so it keeps its turn for
        the next slot.

        The per-task cap is for a tenant with a few tasks beside one that has many: passing it
        over saves no replacement when the warm tenant will not drain within the budget (its
        worker is replaced for ``popped`` all the same, only later), and 256 no-ops of a flood
        were 50-180 ms of wait for W7's small tenant on 2 workers (benchmarks/RESULTS.md,
        issue 17). A tenant with a backlog of its own still lets the warm one run the full
        budget, so a 100-tenant drain replaces no more workers than before.

        This bends the stride bound by that much: over any interval, a tenant runs at most
        ``affinity`` seconds of work ahead of its share (tests/core/test_affinity.py). Replacing
        a worker costs a few ms, so short tasks gain much from it and long ones need none.
        """
        board = self._board
        budget = board.settings.affinity
        cap = min(_AHEAD_MAX, AHEAD_PER_WAITING * popped.backlog)
        best: TenantState | None = None
        for name, free in warm.own.items():
            if free <= 0:
                continue
            other = board.tenants.get(name)
            if other is None or not other.in_heap:
                continue
            # ``affinity`` seconds of this tenant's typical attempts, in passes (1 / weight
            # each): a tenant of short tasks may run many ahead, one of long tasks few, and one
            # with none finished yet only ties.
            typical = other.run_avg
            ahead = 0.0 if typical is None else min(budget / max(typical, _RUN_FLOOR), cap)
            ahead /= other.weight
            if other.vpass > popped.vpass + ahead:
                continue
            if best is None or other.vpass < best.vpass:
                best = other
        if best is None:
            return popped
        board.fair.push_back(popped)
        board.fair.remove(best)
        return best

    def _tenant_block(self, tenant: TenantState, now: float, spare: bool = False) -> str | None:
        """What holds the tenant now, or ``None``. In the spare pass (``spare``) its slow
        start is widened to ``1 + max(clean_successes, allowance)``; its back-off holds."""
        if tenant.paused:
            return PAUSED
        faults = tenant.faults
        if faults is not None and faults.backoff_until > now:
            self._board.park_at(faults.backoff_until, tenant)
            return FAULT
        limit = tenant.limits.concurrency
        if limit is not None and tenant.running >= limit:
            return CONCURRENCY
        confinement = self._confinement
        if tenant.running > tenant.clean_successes and confinement.slow_started(tenant, now):
            allowance = confinement.allowance(tenant, now) if spare else 0
            if tenant.running > max(tenant.clean_successes, allowance):
                return SLOW
        bucket = tenant.bucket
        if bucket is not None:
            wait = bucket.wait_time(now)
            if wait > 0:
                self._board.park_at(now + wait, tenant)
                return RATE
        return None

    def _pick(self, tenant: TenantState, now: float, floor: int) -> LiveTask | None:
        """The head task of the tenant's best eligible queue (left in its queue), or ``None``.

        Queues found blocked are parked on the way; queues held back only by the priority
        floor stay in the heap."""
        heap = tenant.queue_heap
        held: list[QueueState] = []
        found: LiveTask | None = None
        board = self._board
        aging = board.settings.aging
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
                board.push_queue(queue, head_key)
                continue
            if not self._queue_ready(queue, head, now):
                continue
            if head.priority < floor:
                held.append(queue)
                continue
            found = head
            break
        for queue in held:
            board.push_queue(queue, queue.heap_key)
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
        function = self._board.functions[head.function]
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
            self._board.park_at(now + wait, queue)
            return False
        return True

    def _priority_floor(self, free_slots: int) -> int:
        """The lowest priority that may take a slot now (reserve and caps)."""
        settings = self._board.settings
        if not settings.reserve and not settings.caps:
            return 0
        running = self._board.running_by_priority
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
