"""``WorkerPool``: pre-started worker subprocesses, fed one attempt at a time over socketpairs.

Theory of operation
-------------------
The pool is an adapter (docs/architecture.md): it starts, feeds, watches and kills processes, and
decides nothing about *which* attempt runs. The daemon asks ``idle``, calls ``run(job)`` for as
many jobs as there are idle workers, and learns the rest through two callbacks: ``on_outcome``
once per finished job, ``on_idle`` whenever a worker becomes free.

Each worker is ``python -m asynctask.executor.child FD`` (see ``child.py``), started in a session
of its own so that its process group holds the processes the task forks: killing a worker means
``killpg`` - first SIGTERM, then SIGKILL after ``kill_grace`` - and a worker that exits for any
reason gets one SIGKILL to its group. What leaves the group (``setsid``, a double fork) is
contained by the process tree instead (``reaper.py``): the worker is a child subreaper that kills
its descendants after each attempt, and with ``reap_orphans`` (the daemon's setting) the pool's
process is one too, so a dead worker's descendants become its children, which the pool kills and
reaps on every worker exit. A CPU limit counts the attempt's children: the pool polls the
worker's cgroup (or, without one, its process tree in ``/proc``) every ``CPU_POLL`` seconds.

Starting workers is ``spawner.py``; what they say - frames, EOF, exit - is ``intake.py``.

A worker moves through these states (``State``)::

    STARTING --ready--> IDLE --run()--> BUSY --done--> IDLE (or RETIRING when recycled/stopping)
    BUSY --timeout/cancel()/stop()--> KILLING          IDLE --stop()/recycle--> RETIRING
    any --process exited--> DEAD (then a replacement is started, unless the pool is stopping)

Every job leaves ``BUSY`` through exactly one of: a ``done`` frame, the timeout, ``cancel``, the
process exiting, or ``stop`` giving up on it - and only ``stop`` reports no ``Outcome``. A late
``done`` frame from a worker already being killed is ignored, which keeps "exactly once" true.

Workers that die before they are ready are restarted with a backoff (0.1 s doubling to 5 s), one
probe at a time, so a broken interpreter or ``cwd`` costs a log line every few seconds, not a CPU.

Shards. The workers are split into ``config.shards`` shards for shuffle sharding of tenants. The
pool only places workers in shards and honours the caller's choice: ``run(job, shard)`` takes an
idle worker of that shard or raises. Which tenant may use which shard is the scheduler's business
(``core/sharding.py``, ``core/scheduler.py``), not the pool's. Every new worker - at ``start()``
and every replacement - goes to the shard with the fewest workers that count towards ``size``
(lowest index on ties), so a worker that dies, is killed or is recycled is replaced in the shard
that lost it: a tenant confined to a set of shards keeps that set's capacity, and a poison tenant
that kills the workers of its shards cannot drift the pool's workers away from anyone else's.
Idle workers are kept in one stack per shard, so choosing one costs O(shards) at most.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any, Final

from asynctask import protocol
from asynctask.core.slots import Placement, WarmSlots, place
from asynctask.executor.intake import Intake
from asynctask.executor.limits import classify_exit
from asynctask.executor.reaper import become_subreaper, tree_cpu_seconds
from asynctask.executor.slotbook import SlotBook
from asynctask.executor.spawner import Spawner
from asynctask.executor.workers import (
    BYSTANDER,
    CPU_POLL,
    Job,
    Outcome,
    PoolConfig,
    Roster,
    State,
    WorkerRecord,
    cancel_timer,
    log,
    mib,
    rss,
    run_frame,
    signal_group,
)
from asynctask.model import ErrorKind, error_dict
from asynctask.resources import Limits

__all__ = ["CPU_POLL", "Job", "Outcome", "PoolConfig", "WorkerPool"]

__all__ = ["CPU_POLL", "Job", "Outcome", "PoolConfig", "WorkerPool"]

_BACKOFF_FIRST: Final = 0.1
_BACKOFF_MAX: Final = 5.0


class WorkerPool:
    """A fixed number of worker processes kept ready; see the module docstring."""

    def __init__(
        self,
        config: PoolConfig,
        on_outcome: Callable[[Outcome], None],
        on_idle: Callable[[], None],
        on_log: Callable[[int, str, str], None] | None = None,
    ) -> None:
        if config.workers < 0:
            raise ValueError(f"workers must be 0 or more, not {config.workers}")
        if config.max_tasks_per_worker is not None and config.max_tasks_per_worker < 1:
            raise ValueError("max_tasks_per_worker must be 1 or more (or None)")
        if config.concurrency < 1:
            raise ValueError(f"concurrency must be 1 or more, not {config.concurrency}")
        if not 1 <= config.shards <= max(config.workers, 1):
            raise ValueError(
                f"shards must be between 1 and the number of workers "
                f"({max(config.workers, 1)}), not {config.shards}"
            )
        self._config = config
        roster = self._roster = Roster(config, on_outcome, on_idle, on_log)
        self._book = SlotBook(roster)
        self._workers = roster.workers
        self._running = roster.running
        self._slots = config.concurrency
        self._failures = 0  # consecutive workers that died before they were ready
        self._backoff: asyncio.TimerHandle | None = None
        # Autoscaling: the size ``_refill`` keeps, between ``workers`` and ``max_workers``.
        self._max = max(config.workers, config.max_workers or config.workers)
        self._target = config.workers
        self._scale_timer: asyncio.TimerHandle | None = None
        self._spawner = Spawner(roster, self._book)
        self._intake = Intake(roster, self._book)
        self._spawner.wire(self._intake)
        self._intake.wire(self._spawner, self)

    def __repr__(self) -> str:
        shards = f" idle_by_shard={self.idle_by_shard()}" if len(self._book.stacks) > 1 else ""
        return (
            f"<WorkerPool size={self.size} idle={self.idle} busy={self.busy} "
            f"starting={self.starting}{shards}>"
        )

    # -- state, for the daemon's decisions ---------------------------------------------------

    @property
    def idle(self) -> int:
        """Jobs ``run`` can start right now (in any shard): free slots of accepting workers,
        which is idle workers when each runs one attempt at a time."""
        return self._book.count

    def idle_by_shard(self) -> list[int]:
        """``idle`` per shard, indexed by shard (``config.shards`` long)."""
        return self._book.idle_by_shard()

    @property
    def busy(self) -> int:
        return len(self._running)

    def spawn_stats(self) -> dict[str, float]:
        """Workers started so far and their spawn-to-ready time (ms, over the newest 4,096):
        the price of moving a slot between tenants (``ping``, ``benchmarks/bench_tenants.py``)."""
        return self._spawner.spawn_stats()

    def warm_slots(self) -> WarmSlots:
        """Free slots by the tenant whose worker they are on (``core.slots.WarmSlots``)."""
        return self._book.warm_slots()

    @property
    def starting(self) -> int:
        return sum(1 for worker in self._workers if worker.state is State.STARTING)

    @property
    def size(self) -> int:
        """Workers that count towards ``config.workers``: starting, or ready and accepting.

        Workers being killed, retired or drained for recycling are not counted: their
        replacements already are.
        """
        return sum(
            1
            for worker in self._workers
            if worker.accepting or (worker.state is State.STARTING and not worker.dedicated)
        )

    @property
    def running(self) -> frozenset[int]:
        """The aids of the jobs running now."""
        return frozenset(self._running)

    @property
    def pids(self) -> tuple[int, ...]:
        """Every worker process not yet reaped, including those being stopped."""
        return tuple(worker.pid for worker in self._workers if worker.pid > 0)

    @property
    def fork_server_pid(self) -> int | None:
        """The fork server's pid while it serves (None: workers start as interpreters)."""
        server = self._spawner.forkserver
        return server.pid if server is not None and server.alive else None

    def worker_tenants(self) -> dict[int, str | None]:
        """pid -> the tenant it serves (None: none yet), for every worker
        process not yet reaped: who a connection from a worker's process may act for."""
        return {worker.pid: worker.tenant for worker in self._workers if worker.pid > 0}

    def pid_of(self, aid: int) -> int | None:
        """The pid of the worker running ``aid`` (for ``asynctask inspect``), if it runs."""
        worker = self._running.get(aid)
        return (worker.task_pid or worker.pid) if worker is not None else None

    def shard_of(self, aid: int) -> int | None:
        """The shard of the worker running ``aid``, if it runs."""
        worker = self._running.get(aid)
        return worker.shard if worker is not None else None

    # -- the daemon's verbs --------------------------------------------------------------------

    async def start(self) -> None:
        """Start ``config.workers`` workers and return once every one has said ``ready``.

        Raises ``RuntimeError`` (after killing whatever did start) when a worker cannot be
        spawned, exits before it is ready, or is not ready within ``spawner.START_TIMEOUT`` seconds:
        a daemon that cannot run tasks should say so at start-up, not at the first task.
        """
        if self._roster.loop is not None:
            raise RuntimeError("WorkerPool.start() can be called only once")
        loop = self._roster.loop = asyncio.get_running_loop()
        if self._spawner.orphans is not None:
            if not become_subreaper():
                log.warning("not a subreaper: a dead worker's setsid descendants may outlive it")
            self._spawner.orphans.start()
        if self._config.fork_server:
            await self._spawner.start_fork_server()
        waiter = self._roster.start_waiter = loop.create_future()
        # All records first: "every worker is ready" must not be true while one is unborn.
        workers = [self._spawner.new_worker(loop) for _ in range(self._config.workers)]
        try:
            for worker in workers:
                await self._spawner.spawn(worker)
            if self._config.workers:
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # retrieved: the first failure is what we raise
            for worker in workers:
                if worker.process is None and worker.state is not State.DEAD:
                    self._spawner.discard_unspawned(worker)  # never got its turn to spawn
            await self.stop(None)
            if isinstance(exc, OSError):
                raise RuntimeError(
                    f"cannot start a worker with {self._config.python!r} "
                    f"(cwd {self._config.cwd or os.getcwd()!r}): {exc}"
                ) from exc
            raise
        finally:
            self._roster.start_waiter = None
        self._roster.started = True
        log.info("worker pool started: %r", self)

    def run(self, job: Job, shard: int | None = None) -> None:
        """Hand ``job`` to a worker with a free slot now; ``RuntimeError`` if none has one.

        The shard is ``shard`` (``RuntimeError`` if it has no free slot, ``ValueError`` if
        there is no such shard), else the one with the most free slots (lowest index on ties),
        which leaves the scarce shards' workers to callers that need them. Within it,
        ``core.slots.place`` chooses by the job's tenant: the tenant's own warmest worker, else
        a fresh one, else another tenant's idle worker is replaced by one started for this
        tenant (the job waits for it to be ready). A refused call changes nothing.
        """
        if shard is not None and not 0 <= shard < len(self._book.stacks):
            raise ValueError(
                f"no shard {shard}: the pool has shards 0 to {len(self._book.stacks) - 1}"
            )
        if self._roster.closing:
            raise RuntimeError("the worker pool is stopping and takes no new jobs")
        if job.aid in self._running:
            raise RuntimeError(f"attempt {job.aid} is already running")
        tenant = str(job.context.get("tenant", ""))
        chosen = shard
        placement: Placement | None = None
        if chosen is None:
            chosen, placement = self._book.best_shard(tenant)
        stack = self._book.stacks[chosen]
        if not stack:
            where = "" if shard is None else f" in shard {shard}"
            raise RuntimeError(f"no idle worker{where} for attempt {job.aid}: {self!r}")
        assert self._roster.loop is not None
        # Encode before touching any state: a context msgpack cannot encode raises right here.
        frame = run_frame(job)
        if job.limits is not None and self._needs_own_worker(job.limits):
            self._lend(stack[-1], job, job.limits, tenant)
            return
        if placement is None:
            placement = place(tenant, stack, fresh_ok=self._book.fresh_ok)
        if placement is None:  # every free slot is on another tenant's busy worker
            self._lend(stack[-1], job, self._config.limits, tenant)
            return
        worker = stack[placement.index]
        if placement.replace:
            self._replace(worker, job, tenant)
            return
        channel = worker.channel
        assert channel is not None
        self._book.by_shard[chosen] -= 1
        self._book.count -= 1
        worker.tenant = tenant
        worker.state = State.BUSY
        worker.jobs[job.aid] = job
        if len(worker.jobs) + worker.lent >= self._slots:
            del stack[placement.index]
        self._running[job.aid] = worker
        self._send_job(worker, job, frame)

    def _lend(self, lender: WorkerRecord, job: Job, limits: Limits, tenant: str) -> None:
        """Run ``job`` in a worker started for it alone, borrowing one of ``lender``'s slots."""
        assert self._roster.loop is not None
        log.debug(
            "attempt %d of tenant %r borrows a slot of worker %d", job.aid, tenant, lender.pid
        )
        self._book.by_shard[lender.shard] -= 1
        self._book.count -= 1
        lender.lent += 1
        if len(lender.jobs) + lender.lent >= self._slots:
            self._book.stacks[lender.shard].remove(lender)
        own = WorkerRecord(self._roster.loop.create_future(), lender.shard, limits)
        own.dedicated = True
        own.lender = lender
        own.tenant = tenant
        self._workers.add(own)
        own.jobs[job.aid] = job  # sent once it is ready; every end path sees it already
        self._running[job.aid] = own
        self._spawn_soon(own)

    def _replace(self, idle: WorkerRecord, job: Job, tenant: str) -> None:
        """Retire another tenant's idle worker and start one for ``tenant`` in its place, with
        ``job`` waiting for it: capacity moves between tenants, workers never do."""
        assert self._roster.loop is not None
        log.debug(
            "replacing idle worker %d of tenant %r for tenant %r", idle.pid, idle.tenant, tenant
        )
        self._retire(idle)  # its free slots leave the count; the new one's join when ready
        fresh = WorkerRecord(self._roster.loop.create_future(), idle.shard, self._config.limits)
        fresh.tenant = tenant
        self._workers.add(fresh)
        fresh.jobs[job.aid] = job
        self._running[job.aid] = fresh
        self._spawn_soon(fresh)

    def _send_job(self, worker: WorkerRecord, job: Job, frame: bytes | None = None) -> None:
        gate = job.gate
        if gate is not None and not gate.done():
            gate.add_done_callback(lambda _: self._send_gated(worker, job, frame))
            return
        self._send_now(worker, job, frame)

    def _send_gated(self, worker: WorkerRecord, job: Job, frame: bytes | None) -> None:
        """The gate opened: send, unless the job was cancelled or its worker died meanwhile."""
        assert job.gate is not None
        if job.gate.cancelled() or job.gate.exception() is not None:
            return
        if worker.jobs.get(job.aid) is not job or worker.channel is None:
            return
        if job.aid in worker.stopping or self._running.get(job.aid) is not worker:
            return
        self._send_now(worker, job, frame)

    def _send_now(self, worker: WorkerRecord, job: Job, frame: bytes | None) -> None:
        assert self._roster.loop is not None
        assert worker.channel is not None
        if frame is None:
            frame = run_frame(job)
        if job.timeout is not None:
            worker.timers[job.aid] = self._roster.loop.call_later(
                job.timeout, self._on_timeout, worker, job
            )
        if worker.limits.cpu is not None:
            self._roster.loop.call_later(CPU_POLL, self._watch_cpu, worker, job)
        worker.channel.write(frame)

    def _watch_cpu(self, worker: WorkerRecord, job: Job) -> None:
        """Kill a worker whose CPU time, its children's included, passed its limit.

        RLIMIT_CPU counts each process alone, so work split over child processes would pass
        it many times over. The cgroup's accounting counts them all; without a cgroup, the
        worker's process tree in /proc does (``tree_cpu_seconds``)."""
        limit = worker.limits.cpu
        if limit is None or worker.jobs.get(job.aid) is not job or job.aid in worker.stopping:
            return
        used = worker.group.cpu_seconds() if worker.group is not None else None
        if used is None:
            used = tree_cpu_seconds(worker.pid)
        if used is None or used < limit:
            assert self._roster.loop is not None
            self._roster.loop.call_later(CPU_POLL, self._watch_cpu, worker, job)
            return
        message = f"the attempt used up its CPU limit of {limit:g}s (its child processes too)"
        error = error_dict(ErrorKind.CPU_LIMIT, "CpuLimit", message)
        for outcome in self._abandon(worker, {job.aid: error}, report=True):
            self._roster.emit(outcome)

    def _needs_own_worker(self, limits: Limits) -> bool:
        """Limits other than the pool's run in a worker started with them, never by loosening
        or tightening a shared one; so does any CPU limit, which counts a process's life."""
        return limits != self._config.limits or limits.cpu is not None

    def _return_slot(self, worker: WorkerRecord) -> None:
        """A dedicated worker is done: its lender's slot is free again (if it still takes work)."""
        lender = worker.lender
        if lender is None:
            return
        worker.lender = None
        lender.lent -= 1
        if lender.accepting:
            self._book.slot_freed(lender)
            self._roster.notify_idle()

    @property
    def max_size(self) -> int:
        return self._max

    @property
    def target(self) -> int:
        """The size the pool is kept at now (``workers`` up to ``max_workers``)."""
        return self._target

    def grow(self, wanted: int) -> int:
        """Start up to ``wanted`` more workers, within ``max_workers``; how many it starts.

        The daemon calls it when work waits and every slot is taken. Workers still starting
        count as growth already, so repeated calls while they boot do not overshoot."""
        if self._roster.closing or not self._roster.started or self._failures:
            return 0
        room = self._max - self._target
        if room <= 0:
            return 0  # the common case under load: checked on every step, so kept cheap
        count = max(0, min(wanted - self.starting, room))
        if count and self._config.memory_budget:
            count = min(count, self._room_in_budget())
        if count:
            self._target += count
            log.info(
                "scaling up by %d to %d workers",
                count,
                self._target,
                extra={"event": "pool_grow", "workers": self._target, "added": count},
            )
            self._refill()
            self._arm_scale_down()
        return count

    def _room_in_budget(self) -> int:
        """Workers that fit in ``memory_budget`` beside the ones running, each costing what
        they cost on average now."""
        sizes = [rss(w.task_pid or w.pid) for w in self._workers if w.pid > 0]
        used = sum(sizes)
        each = max(used // max(len(sizes), 1), 1)
        room = (self._config.memory_budget - used) // each
        if room <= 0:
            log.warning(
                "not scaling up: workers hold %d MiB of the %d MiB memory budget",
                used >> 20, self._config.memory_budget >> 20,
            )  # fmt: skip
        return max(0, int(room))

    def _arm_scale_down(self) -> None:
        if self._scale_timer is None and self._roster.loop is not None and not self._roster.closing:
            period = max(0.05, min(1.0, self._config.idle_timeout / 4))
            self._scale_timer = self._roster.loop.call_later(period, self._scale_down)

    def reload(self) -> int:
        """Replace the workers so the next attempts import task code anew (``asynctask
        reload``, SIGHUP): idle ones retire now; busy ones take no new job and retire once
        their running attempts end, which finish on the old code. Replacements start at once
        (``_refill``). Workers still starting have imported no task code and stay; so do
        dedicated workers (gone after their one job) and lenders (back in rotation soon).
        Returns how many workers were asked to go."""
        if not self._roster.started or self._roster.closing:
            return 0
        chosen = [w for w in self._workers if w.accepting and not w.dedicated and not w.lent]
        for worker in chosen:
            if worker.jobs:
                self._book.stop_accepting(worker)  # ``_on_done`` retires it after its last job
            else:
                self._retire(worker)
        self._refill()
        return len(chosen)

    def _scale_down(self) -> None:
        """Retire workers above ``workers`` that have been idle for ``idle_timeout``."""
        self._scale_timer = None
        assert self._roster.loop is not None
        if self._roster.closing:
            return
        cutoff = self._roster.loop.time() - self._config.idle_timeout
        for worker in sorted(self._workers, key=lambda w: w.idle_since):
            if self._target <= self._config.workers:
                break
            if worker.state is State.IDLE and worker.accepting and worker.idle_since <= cutoff:
                self._target -= 1
                self._retire(worker)
                log.info("scaling down to %d workers (idle for %gs)", self._target,
                         self._config.idle_timeout,
                         extra={"event": "pool_shrink", "workers": self._target})  # fmt: skip
        if self._target > self._config.workers:
            self._arm_scale_down()

    def cancel(self, aid: int) -> bool:
        """Stop the attempt ``aid`` by killing its worker; ``False`` if it is not running.

        Its ``Outcome`` (kind ``exception``, type ``Cancelled``) is reported from the event loop
        soon after, never from inside this call, so the caller's own bookkeeping is not
        re-entered. A replacement worker is started at once.
        """
        worker = self._running.get(aid)
        if worker is None:
            return False
        assert self._roster.loop is not None
        error = error_dict(ErrorKind.EXCEPTION, "Cancelled", "the attempt was cancelled")
        if self._shares_worker(worker, aid):
            del self._running[aid]
            self._stop_one(worker, worker.jobs[aid], None)
            outcomes = [Outcome(aid, False, None, error, worker.pid)]
        else:
            outcomes = self._abandon(worker, {aid: error}, report=True)
        for outcome in outcomes:
            self._roster.loop.call_soon(self._roster.emit, outcome)
        return True

    async def stop(self, deadline: float | None) -> list[int]:
        """Shut down: no new jobs; running ones may finish until ``deadline`` (``loop.time()``).

        ``None`` means do not wait. Jobs still running then are killed with their workers and
        their aids returned - they get no ``Outcome``, the daemon decides what they become
        (``interrupted``). Idle workers get ``exit``. Returns once every process is reaped.
        """
        if self._roster.loop is None:
            return []
        loop = self._roster.loop
        self._roster.closing = True
        if self._scale_timer is not None:
            self._scale_timer.cancel()
            self._scale_timer = None
        if self._backoff is not None:
            self._backoff.cancel()
            self._backoff = None
        for worker in list(self._workers):
            if worker.state is State.IDLE:
                self._retire(worker)
            elif worker.state is State.STARTING and not worker.jobs:
                self._kill(worker)  # a dedicated one starting for a job may finish it in time
            elif worker.state is State.BUSY:
                self._book.stop_accepting(worker)  # it retires once its jobs are done
        if deadline is not None and self._running:
            try:
                async with asyncio.timeout_at(deadline):
                    while self._running:
                        self._roster.drained = loop.create_future()
                        await self._roster.drained
            except TimeoutError:
                pass
            finally:
                self._roster.drained = None
        unfinished = list(self._running)
        for worker in {id(w): w for w in self._running.values()}.values():
            self._abandon(worker, {}, report=False)
        if self._spawner.tasks:
            await asyncio.gather(*self._spawner.tasks, return_exceptions=True)
        pending = [worker.exited for worker in self._workers]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self._config.kill_grace + 10.0)
            if late:
                log.error("%d worker(s) did not exit even after SIGKILL", len(late))
        if self._spawner.forkserver is not None:
            await self._spawner.forkserver.close()
        if self._spawner.orphans is not None:
            await self._spawner.orphans.wait(timeout=5.0)
            self._spawner.orphans.close()
        if self._spawner.output is not None:
            await self._spawner.output.close(timeout=1.0)
        log.info("worker pool stopped; %d attempt(s) did not finish", len(unfinished))
        return unfinished

    # -- spawning ------------------------------------------------------------------------------

    def _limit_error(self, worker: WorkerRecord, returncode: int | None) -> dict[str, Any] | None:
        """The error of an attempt whose worker a limit killed; ``None`` if none did."""
        group = worker.group
        limits = worker.limits
        if group is not None and group.oom_killed():
            return error_dict(
                ErrorKind.MEMORY_LIMIT,
                "MemoryLimit",
                f"the attempt went over its memory limit of {mib(limits.memory)}",
            )
        used = group.cpu_seconds() if group is not None else None
        why = classify_exit(returncode, limits, used)
        if why == "cpu_limit":
            return error_dict(
                ErrorKind.CPU_LIMIT,
                "CpuLimit",
                f"the attempt used up its CPU limit of {limits.cpu:g}s",
            )
        if why == "file_size_limit":
            return error_dict(
                ErrorKind.FILE_SIZE_LIMIT,
                "FileSizeLimit",
                f"the attempt wrote past its file size limit of {mib(limits.file_size)}",
            )
        return None

    def _spawn_soon(self, worker: WorkerRecord | None = None) -> None:
        """Start one replacement (or ``worker``, a dedicated one) in the background; failures
        count towards the backoff."""
        assert self._roster.loop is not None
        if worker is None:
            worker = self._spawner.new_worker(self._roster.loop)
        started = worker

        async def spawn() -> None:
            try:
                await self._spawner.spawn(started)
            except Exception as exc:
                log.error("cannot start a worker with %r: %s", self._config.python, exc)
                # A dedicated worker, or a replacement, had a job waiting for it: report it.
                error = error_dict(
                    ErrorKind.WORKER_DIED, "WorkerDied", f"cannot start a worker: {exc}"
                )
                for outcome in self._take_jobs(started, {}, error, report=True):
                    self._roster.emit(outcome)
                if started.dedicated:
                    self._return_slot(started)
                    return
                self._failures += 1
                self._refill()

        task = self._roster.loop.create_task(spawn())
        self._spawner.tasks.add(task)
        task.add_done_callback(self._spawner.tasks.discard)

    def _refill(self) -> None:
        """Bring the pool back to ``config.workers``; after start failures, one probe at a time."""
        if not self._roster.started or self._roster.closing or self._backoff is not None:
            return
        missing = self._target - self.size
        if missing <= 0:
            return
        if self._failures == 0:
            for _ in range(missing):
                self._spawn_soon()
            return
        if self.starting:
            return  # a probe is on its way; its fate decides what happens next
        assert self._roster.loop is not None
        delay = min(_BACKOFF_FIRST * 2 ** (self._failures - 1), _BACKOFF_MAX)
        log.warning(
            "%d worker start(s) failed in a row; trying again in %.1fs", self._failures, delay
        )
        self._backoff = self._roster.loop.call_later(delay, self._after_backoff)

    def _after_backoff(self) -> None:
        self._backoff = None
        if not self._roster.closing and self.size < self._target:
            self._spawn_soon()

    # -- events from the workers -----------------------------------------------------------------

    def _on_timeout(self, worker: WorkerRecord, job: Job) -> None:
        if worker.jobs.get(job.aid) is not job or job.aid in worker.stopping:
            return
        worker.timers.pop(job.aid, None)
        message = f"attempt exceeded its timeout of {job.timeout:g}s"
        error = error_dict(ErrorKind.TIMEOUT, "TimeoutError", message)
        if self._shares_worker(worker, job.aid):
            self._stop_one(worker, job, error)  # reported when it stops, or with the worker
            return
        for outcome in self._abandon(worker, {job.aid: error}, report=True):
            self._roster.emit(outcome)

    def _on_stop_overdue(self, worker: WorkerRecord, job: Job) -> None:
        """A job sent ``cancel`` did not stop within the grace (a sync task in a thread):
        kill its worker, and with it the other attempts it runs."""
        if worker.jobs.get(job.aid) is not job:
            return
        worker.timers.pop(job.aid, None)
        log.warning(
            "attempt %d did not stop within %gs; killing worker %d and its other %d attempt(s)",
            job.aid, self._config.kill_grace, worker.pid, len(worker.jobs) - 1,
        )  # fmt: skip
        worker.death_note = f"worker {worker.pid} was killed to stop attempt {job.aid}"
        for outcome in self._abandon(worker, {}, report=True):
            self._roster.emit(outcome)

    # -- acting on workers -----------------------------------------------------------------------

    def _shares_worker(self, worker: WorkerRecord, aid: int) -> bool:
        """Whether stopping ``aid`` must spare other attempts on its worker (ask, not kill)."""
        return self._slots > 1 and any(other != aid for other in worker.jobs)

    def _stop_one(self, worker: WorkerRecord, job: Job, error: dict[str, Any] | None) -> None:
        """Ask a shared worker to stop one job; kill the worker if it has not within the grace.
        ``error`` is reported when it stops (``None``: the caller reported it already)."""
        assert self._roster.loop is not None
        worker.stopping[job.aid] = error
        cancel_timer(worker.timers.pop(job.aid, None))
        worker.timers[job.aid] = self._roster.loop.call_later(
            self._config.kill_grace, self._on_stop_overdue, worker, job
        )
        if worker.channel is not None and not worker.channel.is_closing():
            worker.channel.write(protocol.encode_frame({"op": "cancel", "aid": job.aid}))

    def _abandon(
        self, worker: WorkerRecord, errors: dict[int, dict[str, Any]], *, report: bool
    ) -> list[Outcome]:
        """Kill a worker and take all its jobs away: ``errors`` names why for some, the rest
        were bystanders (or stopping, with their own error). The Outcomes to report, if
        ``report``; without, nobody hears of these jobs (``stop`` returns their aids)."""
        bystander = error_dict(
            BYSTANDER,
            "WorkerKilled",
            worker.death_note or f"worker {worker.pid} was killed while running this attempt",
        )
        self._book.stop_accepting(worker)  # before its jobs go: their slots are not free
        outcomes = self._take_jobs(worker, errors, bystander, report=report)
        self._kill(worker)
        self._refill()
        self._roster.wake_stop()
        return outcomes

    def _take_jobs(
        self,
        worker: WorkerRecord,
        errors: dict[int, dict[str, Any]],
        default: dict[str, Any],
        *,
        report: bool,
    ) -> list[Outcome]:
        """Forget every job of a worker that is going away; the Outcomes owed for them."""
        outcomes = []
        for aid, job in list(worker.jobs.items()):
            if aid in errors:
                error: dict[str, Any] | None = errors[aid]
            elif aid in worker.stopping:
                error = worker.stopping[aid]
            else:
                error = default
            self._end_job(worker, job)
            self._running.pop(aid, None)
            if report and error is not None:
                outcomes.append(Outcome(aid, False, None, error, worker.pid))
        worker.stopping.clear()
        return outcomes

    def _end_job(self, worker: WorkerRecord, job: Job) -> None:
        del worker.jobs[job.aid]
        worker.stopping.pop(job.aid, None)
        cancel_timer(worker.timers.pop(job.aid, None))

    def _kill(self, worker: WorkerRecord) -> None:
        """SIGTERM the worker's process group now, SIGKILL it after ``kill_grace``."""
        assert self._roster.loop is not None
        self._book.stop_accepting(worker)
        worker.state = State.KILLING
        signal_group(worker, signal.SIGTERM)
        cancel_timer(worker.kill_timer)
        worker.kill_timer = self._roster.loop.call_later(
            self._config.kill_grace, signal_group, worker, signal.SIGKILL
        )

    def _retire(self, worker: WorkerRecord) -> None:
        """Ask a worker with no job to exit; SIGKILL it if it is still there after the grace."""
        assert self._roster.loop is not None
        self._book.stop_accepting(worker)
        worker.state = State.RETIRING
        if worker.channel is not None and not worker.channel.is_closing():
            worker.channel.write(protocol.encode_frame({"op": "exit"}))
        cancel_timer(worker.kill_timer)
        worker.kill_timer = self._roster.loop.call_later(
            self._config.kill_grace, signal_group, worker, signal.SIGKILL
        )

    # -- callbacks to the daemon ---------------------------------------------------------------
