"""The step loop: it asks the pure core what to do (``Scheduler.dispatch``), performs the
actions it gets (start an attempt, store a change, end a task), and feeds back what workers
report. A state change that already happened is stored through the ``StoreGuard`` and what
depends on it waits for the commit; an attempt's number goes to the start journal before the
attempt starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from asynctask import protocol
from asynctask.core.destinations import destination_of
from asynctask.core.scheduler import Action, Dispatch, Finished, Persist
from asynctask.daemon.coldqueue import ColdQueue
from asynctask.daemon.liveindex import LiveIndex
from asynctask.daemon.readout import POOL_ENTITY
from asynctask.daemon.views import Key, failure_view, row_of, update_of, view_of
from asynctask.executor.pool import Job, Outcome
from asynctask.model import LiveTask, SubmitSpec, TaskState
from asynctask.observe.metrics import CANCELLED, COMPLETED, EXPIRED, FAILED, RETRIED, SUBMITTED
from asynctask.observe.tracing import queue_wait, record_attempt, run_time
from asynctask.resources import Limits
from asynctask.store import InsertTask, Op, ReplaceTask, StoreError
from asynctask.store.starts import StartJournal

if TYPE_CHECKING:
    from asynctask.daemon.root import Daemon

log = logging.getLogger("asynctask.daemon")


_FINAL_COUNTERS = {
    TaskState.SUCCEEDED: COMPLETED,
    TaskState.FAILED: FAILED,
    TaskState.EXPIRED: EXPIRED,
    TaskState.CANCELLED: CANCELLED,
}


#: Failed attempts ``stats`` keeps for ``top``'s failure list.
FAILURES_KEPT = 20


class Engine:
    """The step loop of one daemon (see the module docstring)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._step_pending = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: float | None = None
        #: The tasks not yet ended (and ended ones until their end is stored), by (tenant, ID).
        self.live = LiveIndex()
        #: Attempts handed to the pool, by attempt ID (the task's seq).
        self.running: dict[int, LiveTask] = {}
        #: An ID whose submit or end is being stored: the next submit of it waits on this.
        self.claims: dict[Key, asyncio.Future[None]] = {}
        #: ``wait`` requests, answered once the task's end is stored.
        self.waiters: dict[Key, list[asyncio.Future[dict[str, Any]]]] = {}
        self.next_seq = 1
        #: Limits that functions declared in code, as last applied to the scheduler.
        self.declared_limits: dict[str, dict[str, float]] = {}
        #: Tasks whose ``retry`` is being stored (they cannot be retried again meanwhile).
        self.retrying: set[int] = set()
        #: The newest failed attempts, for ``stats`` and ``top`` (newest last).
        self.failures: deque[dict[str, Any]] = deque(maxlen=FAILURES_KEPT)
        #: Long queues' tails, kept in the store (not on a store that daemons share).
        self.cold = ColdQueue(daemon, enabled=daemon.config.store.url is None)
        #: The stored backlog is still loading (``Recovery.load_rest``): nothing is dispatched,
        #: and tasks submitted meanwhile (``seq`` above ``_load_cap``) wait in ``_deferred``.
        self.loading = False
        #: Set once the stored backlog is loaded; what must see every task waits for it.
        self.loaded = asyncio.Event()
        self.loaded.set()
        self._load_cap = 0
        self._deferred: list[LiveTask] = []

    def take_seq(self) -> int:
        """The next task's number: this daemon's counter, or a block of the shared store's."""
        cluster = self._daemon.cluster
        if cluster is not None:
            return cluster.next_seq()
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def adopt(self, task: LiveTask, now: float, recovered: bool = False) -> bool:
        """Keep a stored waiting task in memory to dispatch; ``False`` (left to the database)
        when another daemon serves its tenant, or this one is handing it over. A task
        submitted while the backlog loads waits until it has loaded (``recovered``: one of
        the backlog's), so that it never overtakes an older one not loaded yet."""
        cluster = self._daemon.cluster
        if cluster is not None and not cluster.serves(task.tenant):
            return False
        if self.loading and not recovered and task.seq > self._load_cap:
            self.live[(task.tenant, task.id)] = task  # status and wait find it meanwhile
            self._deferred.append(task)
            return True
        if self.cold.keep_stored(task, now):  # a long queue's tail: the store keeps it
            return True
        self.live[(task.tenant, task.id)] = task
        self._daemon.scheduler.add(task, now)
        return True

    def adopts_at_once(self, task: LiveTask) -> bool:
        """Whether ``adopt`` would hand ``task`` to the scheduler as an object now: not while
        the backlog loads (it waits aside), nor into a long queue's stored tail. Only such a
        task may be adopted before its insert commits (``Intake.submit_one``), since only
        such a one can be let go again if the commit fails."""
        return not self.loading and not self.cold.would_keep(task)

    def begin_loading(self, cap: int) -> None:
        """The stored backlog (tasks up to ``seq`` ``cap``) goes on loading while the daemon
        serves (``Recovery``)."""
        self.loading = True
        self._load_cap = cap
        self.loaded.clear()

    def end_loading(self, now: float) -> None:
        """The stored backlog is loaded (or the daemon stops): the tasks submitted meanwhile
        join their queues, in order, and dispatch begins."""
        if not self.loading:
            return
        self.loading = False
        deferred, self._deferred = self._deferred, []
        for task in deferred:
            key = (task.tenant, task.id)
            if self.live.get(key) is task:
                del self.live[key]
                self.adopt(task, now)
        self.loaded.set()
        self.wake()

    def interrupt(self, aids: Iterable[int], reason: str) -> None:
        """Attempts the pool gave up on (a stop's drain ran out): each counts as interrupted,
        and its task is queued again if it has retries left."""
        now = self._daemon.clock()
        count = 0
        for aid in aids:
            task = self.running.pop(aid, None)
            if task is not None:
                self.perform([self._daemon.scheduler.interrupted(task, reason, now)])
                count += 1
        if count:
            log.info("re-queued %d unfinished attempts", count)

    def cancel_waiters(self) -> None:
        """The daemon stops: ``wait`` requests still open end with their connections."""
        for futures in self.waiters.values():
            for future in futures:
                future.cancel()
        self.waiters.clear()

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def wake_for(self, task: LiveTask) -> None:
        """``wake`` for a task just adopted, unless it is due (and expires) no sooner than the
        timer already armed: then the step would find nothing to do, so a delayed submit costs
        no pass."""
        armed = self._timer_due
        if (
            armed is not None
            and task.state is TaskState.SCHEDULED
            and task.due_at is not None
            and task.due_at >= armed
            and (task.expires_at is None or task.expires_at >= armed)
        ):
            return
        self.wake()

    def wake(self) -> None:
        if not self._step_pending:
            self._step_pending = True
            self._daemon.loop.call_soon(self.step)

    def step(self) -> None:
        """One decision pass: dispatch to free workers, promote due timers, arm the next timer."""
        self._step_pending = False
        if self._daemon.pool is None or not self._daemon.accepting or self.loading:
            return
        if self._daemon.cluster is not None:
            self._daemon.cluster.drop_lapsed()  # the safety rule: held now, not at the plan
        now = self._daemon.clock()
        cluster = self._daemon.cluster
        for entry, slot in self._daemon.crons.due(now):
            if cluster is None or cluster.serves(entry.tenant):  # once per cluster: its owner
                self._daemon.cron.fire(entry, slot)
        pool = self._daemon.pool
        free = pool.idle_by_shard() if self._daemon.sharded else pool.idle
        self.perform(
            self._daemon.scheduler.dispatch(now, free, pool.warm_slots() if pool.idle else None)
        )
        self._daemon.metrics.sample(
            POOL_ENTITY, self._daemon.scheduler.queued, pool.busy, now
        )  # peak per minute
        if pool.idle == 0 and self._daemon.scheduler.has_eligible():
            pool.grow(self._daemon.scheduler.queued)  # work waits and every slot is taken
        self.cold.check()  # read back the tails of queues that dispatch ran low
        wakeup = self._daemon.scheduler.next_wakeup()
        cron_at = self._daemon.crons.next_at()
        if cron_at is not None and (wakeup is None or cron_at < wakeup):
            wakeup = cron_at
        self._arm_timer(wakeup)

    def _arm_timer(self, due: float | None) -> None:
        if due is None or due == self._timer_due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        delay = max(due - self._daemon.clock(), 0.0)
        self._timer = self._daemon.loop.call_at(self._daemon.loop.time() + delay, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._timer_due = None
        self.step()

    def perform(self, actions: Iterable[Action]) -> None:
        for action in actions:
            task = action.task
            if isinstance(action, Dispatch):
                assert self._daemon.pool is not None
                shard = action.shard if action.shard >= 0 else None
                if not self._daemon.pool.can_run(shard):  # fewer free slots than it said
                    self._daemon.scheduler.undispatch(task, self._daemon.clock())
                    continue  # dispatched again once a worker is free (the pool wakes us)
                self.running[task.seq] = task
                # The newest report of its function's code, if it changes the task: then its
                # row is rewritten with the new options (rare: submitted before the report).
                changed = bool(self._daemon.code.known) and self._daemon.code.apply(task)
                stored = self.record(task, _rewrite(task) if changed else ())
                # The attempt's number is on disk before it starts (store/starts.py), so a
                # crash in between re-runs it as the next attempt, never as this one again;
                # if the journal cannot be written, it starts once the database has it.
                journal = self._daemon.starts
                if journal is not None and journal.started(task.seq, task.attempts):
                    gate = None
                    if journal.switch_due():
                        self._switch_start_journal(journal)
                else:
                    gate = stored
                self._daemon.pool.run(
                    Job(
                        aid=task.seq,
                        func=task.function,
                        payload=task.payload,
                        context={
                            "id": task.id,
                            "tenant": task.tenant,
                            "attempt": task.attempts,
                            "labels": task.labels,
                        },
                        timeout=task.timeout,
                        limits=self._limits_of(task),
                        gate=gate,
                    ),
                    shard=shard,
                )
            elif isinstance(action, Persist):
                self.record(task)
            elif isinstance(action, Finished):
                self.finish(task)

    def _switch_start_journal(self, journal: StartJournal) -> None:
        """Start journal lines go to its other file now; the first is emptied once every
        "running" write put so far has committed."""
        left = journal.switch()
        self._daemon.background_task(self._empty_journal_file(journal, left))

    async def _empty_journal_file(self, journal: StartJournal, left: int) -> None:
        while self._daemon.accepting:
            with contextlib.suppress(StoreError):
                await self._daemon.store.flush()
                if not self._daemon.guard.unstored:
                    journal.rotated(left)
                    return
            await asyncio.sleep(1.0)  # storage is failing: its lines are still needed

    def record(self, task: LiveTask, extra: Sequence[Op] = ()) -> asyncio.Future[None]:
        """Store a change that already happened (``StoreGuard``): resolves once stored."""
        return self._daemon.guard.record(task, extra)

    def _limits_of(self, task: LiveTask) -> Limits | None:
        """The attempt's limits: the task's own over ``[workers]``; ``None`` when it has none
        of its own and so runs in a pool worker of the default profile (the common case)."""
        own = task.options.get("resources")
        if not own:
            return None
        default = self._daemon.config.workers.limits
        try:
            return default.merged(Limits.from_wire(own))
        except ValueError:  # checked at submit; a row from older code: the defaults hold
            return None

    def persist(self, task: LiveTask) -> asyncio.Future[None]:
        """One write of the task's state, for a request that undoes its change if it fails
        (``retry``); a change that already happened goes through ``_record``."""
        return self._daemon.store.put(update_of(task))

    def let_go(self, tasks: Sequence[LiveTask], stop_running: bool) -> int:
        """Take ``tasks`` out of memory without ending them: another daemon now has them
        (``cluster.py``), or their submit was not stored (``Intake.submit_one``). Waiting ones
        leave at once; running ones are stopped first, or stay to finish when
        ``stop_running`` is false; ended ones whose end is not stored yet leave at once when
        ``stop_running`` (their end is refused or moot), else once it is stored. Returns how
        many waiting or running tasks left."""
        gone: list[LiveTask] = []
        for task in tasks:
            if task.state is TaskState.RUNNING:
                if not stop_running:
                    continue
                if self.running.pop(task.seq, None) is not None and self._daemon.pool:
                    self._daemon.pool.cancel(task.seq)
            elif task.state not in (TaskState.QUEUED, TaskState.SCHEDULED):
                if stop_running:
                    key = (task.tenant, task.id)
                    if self.live.get(key) is task:
                        del self.live[key]
                continue
            gone.append(task)
        self._daemon.scheduler.forget(gone, self._daemon.clock())
        for task in gone:
            key = (task.tenant, task.id)
            if self.live.get(key) is task:
                del self.live[key]
        return len(gone)

    def finish(self, task: LiveTask) -> None:
        counter = _FINAL_COUNTERS.get(task.state)
        if counter is not None:
            self._daemon.metrics.count(
                (task.tenant, task.queue, task.function), counter, self._daemon.clock()
            )
        key = (task.tenant, task.id)
        destination = self._destination_of(task)
        # The end of the task and the submit of its destination commit together: after a
        # crash either both happened or neither did, so the destination runs once.
        extra = (
            ()
            if destination is None
            else (InsertTask(row_of(destination), foreign=not self._serves(destination)),)
        )
        committed = self.record(task, extra)
        if destination is not None:
            committed.add_done_callback(lambda done: self._destination_stored(destination, done))
        self.claims[key] = committed

        def released(done: asyncio.Future[None]) -> None:
            if done.cancelled():  # the daemon stopped first, or the fence refused the end
                if self.claims.get(key) is committed:  # (its partition moved): not ours now
                    del self.claims[key]
                return
            if self.claims.get(key) is committed:
                del self.claims[key]
            if self.live.get(key) is task:
                del self.live[key]
            view = view_of(task)
            for waiter in self.waiters.pop(key, ()):
                if not waiter.done():
                    waiter.set_result(view)

        committed.add_done_callback(released)

    def _destination_of(self, task: LiveTask) -> LiveTask | None:
        """The ``on_success`` / ``on_failure`` task to submit now that ``task`` has ended
        (``core/destinations.py`` decides which, and its ID)."""
        destination = destination_of(task)
        if destination is None:
            return None
        info = {**destination.info, "result": _opaque(destination.result)}
        spec = SubmitSpec(
            function=destination.function,
            payload=protocol.pack([[info], {}]),
            tenant=destination.tenant,
        )
        return self._daemon.intake.new_task(spec, destination.task_id, self._daemon.clock())

    def _destination_stored(self, task: LiveTask, done: asyncio.Future[None]) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # the failed commit is logged by _persist's callback on the same batch
        key = (task.tenant, task.id)
        if key in self.live:
            return
        now = self._daemon.clock()
        self.adopt(task, now)
        self._daemon.metrics.count((task.tenant, task.queue, task.function), SUBMITTED, now)
        self.wake()

    def _serves(self, task: LiveTask) -> bool:
        cluster = self._daemon.cluster
        return cluster is None or cluster.serves(task.tenant)

    def on_log(self, aid: int, stream: str, text: str) -> None:
        task = self.running.get(aid)
        if task is not None:
            self._daemon.attempt_logs.append(task.seq, task.attempts, text)

    def on_declare(self, aid: int, raw: Any) -> None:
        """A worker imported the function of the running attempt ``aid``, which declares
        ``raw`` in code (``daemon/codeoptions.py``): remembered for its tenant, and applied
        to the running attempts of that tenant's function (the worker reports once, and
        several may have started before it did) where their submit and the config left an
        option to the code."""
        task = self.running.get(aid)
        if task is None:
            return
        key = (task.tenant, task.function)
        code = self._daemon.code.report(task.tenant, task.function, raw)
        if code is None:
            return
        pool = self._daemon.pool
        for running in [t for t in self.running.values() if (t.tenant, t.function) == key]:
            timeout = running.timeout
            if not self._daemon.code.apply(running, code):
                continue
            self.record(running, _rewrite(running))  # its options, as ``status`` reads them
            if running.timeout != timeout and pool is not None:
                pool.retime(running.seq, running.timeout, started=running.seq == aid)

    def on_outcome(self, outcome: Outcome) -> None:
        self._daemon.shared_logs.finish(
            outcome.aid
        )  # its log is complete (the aid is the task's seq); copied for the other daemons
        task = self.running.pop(outcome.aid, None)
        if task is None:
            return
        now = self._daemon.clock()
        started = (
            None if outcome.started is None else self._daemon.clock.at_monotonic(outcome.started)
        )
        stages = record_attempt(task, started, now)
        key = (task.tenant, task.queue, task.function)
        self._daemon.metrics.attempt(key, queue_wait(stages), run_time(stages), now)
        if outcome.ok:
            self.perform([self._daemon.scheduler.succeeded(task, outcome.result, now)])
        else:
            error = outcome.error or {"kind": "exception", "type": "Error", "message": "unknown"}
            code = self._daemon.code.known.get((task.tenant, task.function), {})
            action = self._daemon.scheduler.attempt_failed(
                task, error, now, retry_limit_kills=code.get("retry_limit_kills") is True
            )
            self.failures.append(failure_view(task, error, now))
            if task.state is not TaskState.FAILED:
                self._daemon.metrics.count(key, RETRIED, now)
            self.perform([action])
        if self._daemon.cluster is not None:
            self._daemon.cluster.let_go_if_moved(task)
        if self._daemon.spans is not None:
            outcome_name = "succeeded" if outcome.ok else str((outcome.error or {}).get("kind"))
            self._daemon.spans.attempt(task, stages, outcome_name)
        self._daemon.events.outcome(task, None if outcome.ok else error, outcome.pid, now)
        self.wake()


def _opaque(result: bytes | None) -> Any:
    """A finished task's packed result, for its destination's argument, without decoding its
    values: msgpack hands the task value types (``protocol/values.py``) back as ``ExtType``s,
    packed again byte for byte, so the daemon never imports or runs what a value names. Bytes
    that are not one msgpack value (only a task that forged its worker's frames sends those)
    become ``None`` rather than an error in the daemon."""
    if result is None:
        return None
    try:
        return protocol.unpack(result)
    except Exception:  # msgpack raises several unrelated types for bad input
        return None


def _rewrite(task: LiveTask) -> tuple[Op, ...]:
    """The ops that store ``task``'s whole row again: a task's options are written only at
    insert (an update writes the fields that change), so a report that changed them
    (``daemon/codeoptions.py``) rewrites the row, in the transaction of the task's update."""
    return (ReplaceTask(task.seq, row_of(task)),)
