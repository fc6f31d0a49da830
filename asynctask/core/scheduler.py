"""Scheduler: the pure decision core of the daemon.

No I/O at all - no sockets, no SQLite, no clock, no global random. Every method takes ``now``
(epoch seconds, read once per step by ``daemon/engine.py``) and returns *actions*: persist a
task's new state, hand a task to a worker, report a finished task (``actions.py``). The daemon
performs them; nothing here awaits. This is the h11 / httpcore shape: decide, then act. What
the core changed on its own (an AIMD move, a confinement, a release) it reports as *events*
(``events.py``, ``take_events``), so the daemon logs them without keeping copies of its state.

The work is split by concern (``Scheduler``'s docstring); this module keeps the rules below.

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

import random
from collections.abc import Collection, Iterator, Sequence
from typing import Any, TypeVar

from asynctask.core import backpressure
from asynctask.core.actions import (
    ERROR_HISTORY,
    WORKER_FAULTS,
    Action,
    Dispatch,
    Finished,
    PauseTarget,
    Persist,
    kind_of,
    record_error,
)
from asynctask.core.backpressure import Requeue
from asynctask.core.board import Board
from asynctask.core.confinement import Confinement
from asynctask.core.dispatcher import Dispatcher
from asynctask.core.entities import CONCURRENCY, FAULT, SLOW, FunctionState, TenantState
from asynctask.core.events import AimdMoved, Event
from asynctask.core.holds import Holds
from asynctask.core.limits import FunctionLimits, SchedulerSettings
from asynctask.core.retry import RetryPolicy
from asynctask.core.slots import WarmSlots
from asynctask.model import ErrorKind, LiveTask, TaskState, error_dict

__all__ = [
    "ERROR_HISTORY",
    "WORKER_FAULTS",
    "Action",
    "Dispatch",
    "Finished",
    "PauseTarget",
    "Persist",
    "Requeue",
    "Scheduler",
    "record_error",
]

S = TaskState
T = TypeVar("T")

#: Weight of the newest attempt in a tenant's average run time (an EWMA over ~20 attempts).
_RUN_WEIGHT = 0.05


class Scheduler:
    """The one object the daemon talks to; the work is done by collaborators that share one
    ``Board``: ``Dispatcher`` (the dispatch pass), ``Confinement`` (shards and fault records),
    ``Holds`` (pauses and held tasks) and ``backpressure``. What stays here is
    what ties them together: taking tasks in and out, and the end of each attempt."""

    def __init__(
        self,
        retry: RetryPolicy,
        rng: random.Random,
        settings: SchedulerSettings | None = None,
    ) -> None:
        self._retry = retry
        self._rng = rng
        self._board = board = Board(settings or SchedulerSettings())
        self._confinement = Confinement(board)
        self._dispatcher = Dispatcher(board, self._confinement)
        self._holds = Holds(board)

    def __repr__(self) -> str:
        board = self._board
        return (
            f"<Scheduler queued={board.queued} scheduled={len(board.timers)} "
            f"running={len(board.running)} tenants={len(board.tenants)} "
            f"eligible={len(board.fair)}>"
        )

    @property
    def settings(self) -> SchedulerSettings:
        return self._board.settings

    @settings.setter
    def settings(self, settings: SchedulerSettings) -> None:
        self._board.settings = settings

    @property
    def queued(self) -> int:
        return self._board.queued

    @property
    def scheduled(self) -> int:
        return len(self._board.timers)

    @property
    def running(self) -> int:
        return len(self._board.running)

    # -- entities ---------------------------------------------------------------------------------

    def tenant(self, name: str, now: float = 0.0) -> TenantState:
        return self._board.tenant(name, now)

    def function(self, name: str, now: float = 0.0) -> FunctionState:
        return self._board.function(name, now)

    def declare_function_limits(self, name: str, declared: FunctionLimits, now: float) -> None:
        """Limits a function declares in code; each key the config sets for it wins."""
        settings = self.settings
        configured = settings.function(name)
        merged = FunctionLimits(
            concurrency=_first(configured.concurrency, declared.concurrency),
            rate=_first(configured.rate, declared.rate),
            burst=_first(configured.burst, declared.burst),
            aimd=configured.aimd,
        )
        function = self.function(name, now)
        if merged == function.limits:
            return
        function.configure(merged, settings.aimd, settings.capacity, now)
        self._board.wake_function_waiters(function)  # a raised limit may free waiting queues

    def share_function_limits(self, share: float, now: float) -> None:
        """Enforce ``share`` of every function's limits from now on: ``1 / N`` when ``N``
        daemons share a database (docs/scale-out.md, "Per-function limits")."""
        if not 0.0 < share <= 1.0:
            raise ValueError(f"a share is in (0, 1], not {share}")
        board = self._board
        if share == board.share:
            return
        board.share = share
        settings = self.settings
        for function in board.functions.values():
            function.configure(function.limits, settings.aimd, settings.capacity, now, share)
            board.wake_function_waiters(function)

    def tenants(self) -> Iterator[TenantState]:
        return iter(self._board.tenants.values())

    def functions(self) -> Iterator[FunctionState]:
        return iter(self._board.functions.values())

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
        backpressure.admit(self._board, tenant_name, count, now, nbytes, queues)

    def reserve(
        self, tenant_name: str, count: int, nbytes: int, queues: Collection[str], now: float
    ) -> None:
        """Count ``count`` admitted tasks of ``nbytes`` toward the tenant's bounds while their
        submit is being stored (``admit`` sees them), so concurrent submits cannot all pass
        one bound; their queues are made now. The caller ``unreserve``s once they are added
        or refused (counted twice in between: on the safe side)."""
        backpressure.reserve(self._board, tenant_name, count, nbytes, queues, now)

    def unreserve(self, tenant_name: str, count: int, nbytes: int) -> None:
        backpressure.unreserve(self._board, tenant_name, count, nbytes)

    def requeue_failed(self, tasks: Sequence[LiveTask], now: float) -> Requeue:
        """Retry dead-lettered tasks (``failed``, not live): admit them per tenant as a submit
        (``SubmitThrottled`` / ``UsageError``, and then none moved), reserve their room, and
        move them back to ``queued``. The caller stores them, ``add``s them, and then
        ``unreserve``s ``Requeue.reserved`` whatever happened."""
        return backpressure.requeue_failed(self._board, tasks, now)

    def add(self, task: LiveTask, now: float = 0.0) -> None:
        """Take in a task that is ``queued`` or ``scheduled`` (new, or recovered at start-up)."""
        self._board.add(task, now)

    def add_stored(
        self,
        tenant: str,
        queue: str,
        function: str,
        nbytes: int,
        now: float = 0.0,
        count: int = 1,
    ) -> None:
        """Count ``count`` queued tasks of ``nbytes`` payload in all whose objects stay in the
        store (a long queue's tail); each is dispatched only once ``unstore``d and ``add``ed."""
        self._board.add_stored(tenant, queue, function, nbytes, now, count)

    def unstore(self, tenant: str, queue: str, function: str, nbytes: int) -> None:
        """Stop counting a task ``add_stored`` counted (then ``add`` it, or it is gone)."""
        self._board.unstore(tenant, queue, function, nbytes)

    def queued_at_level(self, tenant: str, queue: str, priority: int) -> int:
        """The task objects queued in ``tenant``'s ``queue`` at ``priority``, ready to
        dispatch (stored ones not counted)."""
        state = self._board.tenants.get(tenant)
        found = None if state is None else state.queues.get(queue)
        return 0 if found is None else found.fifo.live_at[priority]

    def remove(self, task: LiveTask, new_state: TaskState, now: float) -> Finished:
        """Take a queued or scheduled task out (cancel); it ends in ``new_state``."""
        return self._board.remove(task, new_state, now)

    def forget(self, tasks: Sequence[LiveTask], now: float) -> None:
        """Let go of tasks without ending them: their partition moved to another daemon
        (docs/scale-out.md), which has them from the database. Waiting ones leave the queues
        and timers; running ones give their slots back (the caller has stopped their
        attempts). Their states stay as they are, and nothing is to be stored."""
        waiting = [task for task in tasks if task.state is not S.RUNNING]
        self._board.forget(waiting)
        for task in tasks:
            if task.state is S.RUNNING:
                function = self._release(task, now)
                if function is not None:
                    self._board.wake_function_waiters(function)

    def cancel(self, task: LiveTask, now: float) -> Finished:
        """Cancel a live task. A running one ends ``cancelled`` at once and gives its slot back:
        the caller stops its worker and ignores whatever the attempt reports later."""
        if task.state is not S.RUNNING:
            return self.remove(task, S.CANCELLED, now)
        function = self._release(task, now)
        if function is not None:
            self._board.wake_function_waiters(function)
        self._board.tenants[task.tenant].completed += 1
        task.move(S.CANCELLED)
        task.finished_at = now
        return Finished(task)

    # -- holds: pause by target, or by selector ---------------------------------------------------

    def hold(self, tasks: list[LiveTask]) -> list[LiveTask]:
        """Pause these waiting tasks one by one: they keep their state (``queued`` or
        ``scheduled``) and their place in the backlog, but leave the ready queues and the timers
        until ``release``; their TTL still runs. Returns the ones that were not held already."""
        return self._holds.hold(tasks)

    def release(self, tasks: list[LiveTask], now: float) -> list[LiveTask]:
        """Undo ``hold``: queued tasks join the back of their queue, scheduled ones wait for
        their due time again. Returns the ones that were held."""
        return self._holds.release(tasks, now)

    def pause(self, target: PauseTarget) -> None:
        """Hold a tenant, queue or function: queued work stays queued; running work goes on."""
        self._holds.set_paused(target, True)

    def resume(self, target: PauseTarget) -> None:
        self._holds.set_paused(target, False)

    def is_paused(self, target: PauseTarget) -> bool:
        return target in self._board.paused

    def paused_targets(self) -> list[PauseTarget]:
        return sorted(self._board.paused)

    # -- dispatch ---------------------------------------------------------------------------------

    def next_wakeup(self) -> float | None:
        """When ``dispatch`` next has something to do even if nothing else happens."""
        return self._board.next_wakeup()

    def has_eligible(self) -> bool:
        """Whether some tenant has work it could start if a slot were free (the pool grows
        on it: paused, rate-held, concurrency-held or confinement-held work does not count; a
        lone confined tenant that the spare pass served until the slots ran out is still in
        the heap, so it does)."""
        return len(self._board.fair) > 0

    def dispatch(
        self, now: float, free_slots: int | list[int], warm: WarmSlots | None = None
    ) -> list[Action]:
        """Promote due timers, release token waits, then hand out up to ``free_slots`` tasks.

        ``free_slots`` is either a count of idle workers (any task may take any of them) or,
        with a sharded pool, the idle workers of each shard: then every ``Dispatch`` names its
        shard, and a confined tenant gets only its own (``sharding.py``) - unless it is the
        only tenant waiting: then a last pass gives it idle workers up to its allowance
        (``Confinement.spare_pass``). ``warm`` says whose workers the free slots are on (one
        tenant per worker, ``slots.py``): a tenant whose turn it is but who has no worker free
        may be passed over for one that has, within ``settings.affinity`` of fairness."""
        return self._dispatcher.dispatch(now, free_slots, warm)

    # -- confinement ------------------------------------------------------------------------------

    def shards_of(self, tenant_name: str) -> tuple[int, ...]:
        """The worker shards ``tenant_name`` is confined to when it is (for ``queues``)."""
        return self._confinement.shards_of(tenant_name)

    def confinement(self, tenant: TenantState, now: float) -> str | None:
        """Why the tenant is confined now (``always``, ``faults``, ``probation``), or ``None``."""
        return self._confinement.reason(tenant, now)

    def confined(self, tenant: TenantState, now: float) -> bool:
        """Whether the tenant may use only its own shards now."""
        return self._confinement.confined(tenant, now)

    def confinement_due(self, tenant_name: str, now: float) -> float | None:
        """The daemon's timer for a reported ``Confined`` fired (``until``): nothing in the core
        happens when time passes, so the release is reported when it is asked for. Returns
        when to ask again if faults since pushed the end on."""
        return self._confinement.due(tenant_name, now)

    def take_events(self) -> Sequence[Event]:
        """What changed since the last call that the daemon may log (``events.py``)."""
        events = self._board.events
        if not events:
            return ()
        self._board.events = []
        return events

    # -- attempts ending --------------------------------------------------------------------------

    def _release(self, task: LiveTask, now: float) -> FunctionState | None:
        """Give back the running slot of a dispatched task; wake whatever it held back."""
        board = self._board
        if board.running.pop(task.seq, None) is None:
            return None  # recovered as running: never dispatched by this scheduler
        tenant = board.tenants[task.tenant]
        self._confinement.slot_given_back(task, tenant)
        if task.started_at is not None:  # the tenant's typical attempt, for _warm_instead
            ran = max(0.0, now - task.started_at)
            average = tenant.run_avg
            tenant.run_avg = ran if average is None else average + (ran - average) * _RUN_WEIGHT
        queue = tenant.queues[task.queue]
        function = board.functions[task.function]
        tenant.running -= 1
        queue.running -= 1
        function.running -= 1
        board.running_by_priority[task.priority] -= 1
        if tenant.parked in (CONCURRENCY, SLOW):
            board.release_tenant(tenant)
        if queue.parked == CONCURRENCY:
            board.wake_queue(queue)
        return function

    def undispatch(self, task: LiveTask, now: float) -> None:
        """Take back a dispatch that no worker could take after all (the pool had fewer free
        slots than it said: replacing another tenant's idle worker retires all of that
        worker's slots for the one job that waits on its replacement). The attempt never
        started, so it is not counted; the task waits in its queue again."""
        task.started_at = None  # not an attempt that ran: no run time for the tenant's average
        function = self._release(task, now)
        if function is not None:
            self._board.wake_function_waiters(function)
        task.move(S.QUEUED)
        task.attempts -= 1
        self._board.back_to_waiting(task)
        self._board.enqueue(task, now)

    def succeeded(self, task: LiveTask, result: bytes | None, now: float) -> Finished:
        function = self._release(task, now)
        tenant = self._board.tenants[task.tenant]
        if function is not None:
            tenant.successes += 1
            self._confinement.clean_end(tenant, now, success=True)
            aimd = function.aimd
            if aimd is not None:
                previous = aimd.limit
                moved = aimd.on_success(now, backlog=function.queued > 0)
                if moved is not None:
                    self._board.events.append(AimdMoved.of(function.name, previous, aimd, moved))
            self._board.wake_function_waiters(function)
            if tenant.parked == FAULT:  # its back-off ended with the success, not at its timer
                self._board.release_tenant(tenant)
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
        kind = kind_of(error)
        board = self._board
        function = self._release(task, now)
        if function is not None:
            tenant = board.tenants[task.tenant]
            if kind in WORKER_FAULTS:
                self._confinement.fault(tenant, now)
            else:  # a task error is the task's, not a broken worker: not a fault
                self._confinement.clean_end(tenant, now, success=False)
            aimd = function.aimd
            if aimd is not None:
                if kind is ErrorKind.THROTTLED:
                    previous = aimd.limit
                    moved = aimd.on_throttle(now)
                    if moved is not None:
                        board.events.append(AimdMoved.of(function.name, previous, aimd, moved))
                else:
                    aimd.on_other_end(now)
            board.wake_function_waiters(function)
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
            board.back_to_waiting(task)
            board.timers.push(task)
            board.tenants[task.tenant].queues[task.queue].scheduled += 1
            return Persist(task)
        board.tenants[task.tenant].completed += 1
        task.move(S.FAILED)
        task.finished_at = now
        return Finished(task)

    def interrupted(self, task: LiveTask, reason: str, now: float) -> Action:
        """The daemon itself stopped the attempt (shutdown, crash): it counts, and the task is
        queued again at once if it has retries left."""
        board = self._board
        function = self._release(task, now)
        if function is not None:
            board.wake_function_waiters(function)
        record_error(task, error_dict(ErrorKind.INTERRUPTED, "Interrupted", reason), now)
        if task.attempts > task.retries:
            task.move(S.FAILED)
            task.finished_at = now
            return Finished(task)
        task.move(S.QUEUED)
        board.back_to_waiting(task)
        board.enqueue(task, now)
        return Persist(task)


def _first(*values: T | None) -> T | None:
    return next((value for value in values if value is not None), None)
