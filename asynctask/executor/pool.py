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

The daemon's end of each socketpair is an asyncio ``Protocol`` feeding a ``FrameDecoder``: a
result is handled in the callback that delivered its bytes, with no coroutine per message. Process
exit is a ``SubprocessProtocol.process_exited`` callback for the same reason; the event loop's
child watcher reaps the process, so none is left a zombie.

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
import contextlib
import json
import os
import signal
import socket
import subprocess
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, cast

from asynctask import protocol
from asynctask.core.slots import Placement, WarmSlots, place
from asynctask.errors import ProtocolError
from asynctask.executor.cgroups import worker_group_name
from asynctask.executor.childstart import (
    LIMITS_ENV,
    PARENT_PID_ENV,
    PATHS_ENV,
    SANDBOX_ENV,
    STACK_DIR_ENV,
)
from asynctask.executor.forkserver import ForkServer, ForkServerError
from asynctask.executor.limits import classify_exit
from asynctask.executor.output import WorkerOutput
from asynctask.executor.reaper import OrphanReaper, become_subreaper, tree_cpu_seconds
from asynctask.executor.slotbook import SlotBook
from asynctask.executor.workerenv import home_of, minimal_environment
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
    describe_exit,
    grandchild,
    log,
    mib,
    outcome_of,
    rss,
    run_frame,
    signal_group,
    state_of,
)
from asynctask.model import ErrorKind, error_dict
from asynctask.resources import Limits

__all__ = ["CPU_POLL", "Job", "Outcome", "PoolConfig", "WorkerPool"]

__all__ = ["CPU_POLL", "Job", "Outcome", "PoolConfig", "WorkerPool"]

#: How long a new worker may take to send ``ready`` before it counts as failed to start.
START_TIMEOUT: Final = 15.0
_BACKOFF_FIRST: Final = 0.1
_BACKOFF_MAX: Final = 5.0
_FORK_SERVER_RETRY: Final = 5.0
#: Where the ``asynctask`` package lives: workers must import the same code as the daemon,
#: even when the daemon runs from a source tree and ``cwd`` is the user's project.
_PACKAGE_ROOT: Final = str(Path(__file__).resolve().parents[2])


class _ProcessProtocol(asyncio.SubprocessProtocol):
    def __init__(self, pool: WorkerPool, worker: WorkerRecord) -> None:
        self._pool = pool
        self._worker = worker

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's process transport quacks like asyncio.SubprocessTransport without being one.
        process = cast(asyncio.SubprocessTransport, transport)
        self._worker.process = process
        self._worker.pid = process.get_pid()

    def process_exited(self) -> None:
        self._pool._on_exit(self._worker)


class _ChannelProtocol(asyncio.Protocol):
    """The daemon's end of one worker's socketpair: bytes in, frames to the pool."""

    def __init__(self, pool: WorkerPool, worker: WorkerRecord) -> None:
        self._pool = pool
        self._worker = worker
        self._decoder = protocol.FrameDecoder()
        self._broken = False

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return
        try:
            messages = self._decoder.feed(data)
        except ProtocolError as exc:
            self._broken = True
            self._pool._on_broken(self._worker, exc.message)
            return
        for message in messages:
            self._pool._on_message(self._worker, message)

    def eof_received(self) -> bool | None:
        self._pool._on_eof(self._worker)
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._pool._on_eof(self._worker)


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
        self._spawning: set[asyncio.Task[None]] = set()
        self._spawn_lock = asyncio.Lock()
        self._failures = 0  # consecutive workers that died before they were ready
        self._backoff: asyncio.TimerHandle | None = None
        self._env = _worker_env(config)
        self._orphans = OrphanReaper(self._worker_pids) if config.reap_orphans else None
        output = config.output_path
        self._output = None if output is None else WorkerOutput(output, config.max_output)
        # Autoscaling: the size ``_refill`` keeps, between ``workers`` and ``max_workers``.
        self._max = max(config.workers, config.max_workers or config.workers)
        self._target = config.workers
        self._scale_timer: asyncio.TimerHandle | None = None
        self._forkserver: ForkServer | None = None
        self._fork_server_retry_at = 0.0
        self._started_count = 0  # workers that became ready, ever
        self._ready_seconds: deque[float] = deque(maxlen=4096)  # spawn to ready, newest
        self._spawn_stats: dict[str, float] | None = None  # spawn_stats() until the next start

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
        # ``ping`` needs no authorization and may come often: sort only after a new start.
        if self._spawn_stats is None:
            times = sorted(self._ready_seconds)
            stats: dict[str, float] = {"started": self._started_count}
            if times:
                stats["ready_p50_ms"] = round(times[len(times) // 2] * 1000, 2)
                stats["ready_p99_ms"] = round(
                    times[min(len(times) - 1, len(times) * 99 // 100)] * 1000, 2
                )
            self._spawn_stats = stats
        return dict(self._spawn_stats)

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
        server = self._forkserver
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
        spawned, exits before it is ready, or is not ready within ``START_TIMEOUT`` seconds:
        a daemon that cannot run tasks should say so at start-up, not at the first task.
        """
        if self._roster.loop is not None:
            raise RuntimeError("WorkerPool.start() can be called only once")
        loop = self._roster.loop = asyncio.get_running_loop()
        if self._orphans is not None:
            if not become_subreaper():
                log.warning("not a subreaper: a dead worker's setsid descendants may outlive it")
            self._orphans.start()
        if self._config.fork_server:
            await self._start_fork_server()
        waiter = self._roster.start_waiter = loop.create_future()
        # All records first: "every worker is ready" must not be true while one is unborn.
        workers = [self._new_worker(loop) for _ in range(self._config.workers)]
        try:
            for worker in workers:
                await self._spawn(worker)
            if self._config.workers:
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # retrieved: the first failure is what we raise
            for worker in workers:
                if worker.process is None and worker.state is not State.DEAD:
                    self._discard_unspawned(worker)  # never got its turn to spawn
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

    async def _start_fork_server(self) -> None:
        """Without a fork server every worker is an interpreter start: slower, never wrong."""
        config = self._config
        server = ForkServer()
        # Under the spawn lock: the orphan reaper spares only children whose pids it knows.
        async with self._spawn_lock:
            output = None
            if self._output is not None:
                output = await self._output.pipe(lambda: server.pid)
            try:
                await server.start(config.python, self._env, config.cwd, output)
            except ForkServerError as exc:
                log.warning("workers start as new interpreters: %s", exc)
                return
            finally:
                if output is not None:
                    os.close(output)
            if self._roster.closing:
                await server.close()
                return
            old, self._forkserver = self._forkserver, server
            if old is not None:
                await old.close()

    def _restart_fork_server(self) -> None:
        """The fork server died (its workers with it): start another in the background, at
        most once per ``_FORK_SERVER_RETRY`` seconds; workers start as interpreters meanwhile."""
        loop = self._roster.loop
        if loop is None or self._roster.closing or loop.time() < self._fork_server_retry_at:
            return
        self._fork_server_retry_at = loop.time() + _FORK_SERVER_RETRY
        log.warning("the fork server is gone; starting another")
        task = loop.create_task(self._start_fork_server())
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

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
        if self._spawning:
            await asyncio.gather(*self._spawning, return_exceptions=True)
        pending = [worker.exited for worker in self._workers]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self._config.kill_grace + 10.0)
            if late:
                log.error("%d worker(s) did not exit even after SIGKILL", len(late))
        if self._forkserver is not None:
            await self._forkserver.close()
        if self._orphans is not None:
            await self._orphans.wait(timeout=5.0)
            self._orphans.close()
        if self._output is not None:
            await self._output.close(timeout=1.0)
        log.info("worker pool stopped; %d attempt(s) did not finish", len(unfinished))
        return unfinished

    # -- spawning ------------------------------------------------------------------------------

    def _new_worker(self, loop: asyncio.AbstractEventLoop) -> WorkerRecord:
        """A STARTING record in the shard with the fewest workers counting towards ``size``.

        The shard is chosen now, from the records that exist now (not when the process is up),
        so a batch of records made in a row - ``start()``, a ``_refill`` - spreads evenly.
        """
        sizes = [0] * len(self._book.stacks)
        for other in self._workers:  # O(workers), once per process start: noise beside a fork
            if other.accepting or (other.state is State.STARTING and not other.dedicated):
                sizes[other.shard] += 1
        worker = WorkerRecord(loop.create_future(), sizes.index(min(sizes)), self._config.limits)
        self._workers.add(worker)
        return worker

    async def _spawn(self, worker: WorkerRecord) -> None:
        """Start ``worker``'s process; raises ``OSError`` if it cannot even be spawned.

        The channel is connected before the process exists, so no frame or EOF can arrive
        before the pool is listening. The lock keeps one child's socket end from being open
        in the daemon while another child is forked.
        """
        loop = asyncio.get_running_loop()
        async with self._spawn_lock:
            if worker.state is not State.STARTING:  # stop() came while it waited for the lock
                self._discard_unspawned(worker)
                return
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            output: int | None = None
            try:
                worker.channel, _ = await loop.connect_accepted_socket(
                    lambda: _ChannelProtocol(self, worker), ours
                )
                if self._output is not None:  # a pipe of its own, read by the daemon
                    output = await self._output.pipe(lambda: worker.pid)
                fd = theirs.fileno()
                worker.ready_timer = loop.call_later(START_TIMEOUT, self._on_ready_timeout, worker)
                worker.spawned_at = loop.time()
                await self._start_process(worker, fd, output)
            except BaseException:
                if worker.channel is None:
                    ours.close()  # otherwise the channel owns it and _release closes it
                self._discard_unspawned(worker)
                raise
            finally:
                theirs.close()
                if output is not None:
                    os.close(output)
        if state_of(worker) is State.DEAD:  # a forked worker that exited at once
            return
        self._confine(worker)
        if state_of(worker) is State.KILLING:  # stop() came while it was spawning
            signal_group(worker, signal.SIGKILL)

    async def _start_process(self, worker: WorkerRecord, fd: int, output: int | None) -> None:
        """Fork the worker from the fork server (a few ms), else start an interpreter for it
        (tens of ms); either way ``worker.pid`` is set and its exit reaches ``_on_exit``."""
        config = self._config
        args = [str(config.concurrency)] if config.concurrency > 1 else []
        server = self._forkserver
        if server is not None and not server.alive:
            self._restart_fork_server()
        if server is not None and server.alive:
            try:
                worker.pid = await server.fork(
                    self._env_for(worker),
                    config.cwd or os.getcwd(),
                    args,
                    [fd] if output is None else [fd, output],
                    lambda pid, code: self._on_forked_exit(worker, pid, code),
                )
                return
            except ForkServerError as exc:
                log.warning("starting a worker without the fork server: %s", exc)
        process, _ = await asyncio.get_running_loop().subprocess_exec(
            lambda: _ProcessProtocol(self, worker),
            config.python,
            "-m",
            "asynctask.executor.child",
            str(fd),
            *args,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            pass_fds=(fd,),
            start_new_session=True,
            cwd=config.cwd,
            env=self._env_for(worker),
        )
        if worker.process is None:  # normally set already, by _ProcessProtocol.connection_made
            worker.process = process
            worker.pid = process.get_pid()

    def _on_forked_exit(self, worker: WorkerRecord, pid: int, code: int | None) -> None:
        """The fork server reaped ``worker`` (``code`` None: the fork server died, and the
        worker with it)."""
        worker.pid = worker.pid or pid
        worker.returncode = code
        self._on_exit(worker)

    def _env_for(self, worker: WorkerRecord) -> dict[str, str]:
        sandbox = self._config.sandbox
        env = self._env
        if sandbox is not None:
            env = {**env, SANDBOX_ENV: sandbox(getattr(worker, "tenant", None))}
        if worker.limits.is_empty:
            return env
        wire: dict[str, Any] = dict(worker.limits.to_wire())
        support = self._config.cgroups
        if support is not None and support.memory and worker.limits.memory is not None:
            wire["address_space"] = False  # the memory cgroup holds it, counting real memory
        env = {**env, LIMITS_ENV: json.dumps(wire)}
        if worker.limits.user != self._config.limits.user and "HOME" not in self._config.env:
            env["HOME"] = home_of(worker.limits.user)
        return env

    def _worker_pids(self) -> set[int] | None:
        """The pids of the workers, the children ``_orphans`` spares; ``None`` while one is being
        spawned: its pid is not known yet."""
        if self._spawn_lock.locked():
            return None
        pids = {worker.pid for worker in self._workers if worker.pid > 0}
        if self._forkserver is not None and self._forkserver.running:
            pids.add(self._forkserver.pid)
        return pids

    def _confine(self, worker: WorkerRecord) -> None:
        """Put a new worker in a cgroup of its own with its memory and process limits, before
        it is ready for work; without usable cgroups its rlimits alone hold it."""
        support = self._config.cgroups
        if support is None or worker.limits.is_empty or worker.pid <= 0:
            return
        try:
            name = worker_group_name(os.getpid(), worker.pid)
            worker.group = support.create(name, worker.limits)
            if worker.group is not None:
                worker.group.add(worker.pid)
        except OSError as exc:
            log.warning("worker %d runs on rlimits alone: its cgroup failed: %s", worker.pid, exc)
            if worker.group is not None:
                worker.group.remove()
                worker.group = None

    def _confine_task_process(self, worker: WorkerRecord) -> bool:
        """A sandboxed worker forks the process that runs tasks, maybe before ``_confine``
        moved its parent into the group: move it too, before it gets work. ``False``: it could
        not be, and the worker is killed rather than run without its limits."""
        if worker.group is None:
            return True
        try:
            worker.group.add(worker.task_pid)
        except OSError as exc:
            worker.death_note = f"worker {worker.pid} could not be put in its cgroup: {exc}"
            signal_group(worker, signal.SIGKILL)
            return False
        return True

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

    def _discard_unspawned(self, worker: WorkerRecord) -> None:
        """Forget a worker whose process never started."""
        worker.state = State.DEAD
        self._release(worker)
        if not worker.exited.done():
            worker.exited.set_result(None)

    def _spawn_soon(self, worker: WorkerRecord | None = None) -> None:
        """Start one replacement (or ``worker``, a dedicated one) in the background; failures
        count towards the backoff."""
        assert self._roster.loop is not None
        if worker is None:
            worker = self._new_worker(self._roster.loop)
        started = worker

        async def spawn() -> None:
            try:
                await self._spawn(started)
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
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

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

    def _on_message(self, worker: WorkerRecord, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "log":
            self._on_log_frame(worker, message)
        elif op == "done":
            self._on_done(worker, message)
        elif op == "ready":
            reported = message.get("pid")
            if (
                worker.state is State.STARTING  # once, before any task code: never a task's
                and type(reported) is int
                and reported != worker.pid
                and grandchild(reported, worker.pid)
            ):
                worker.task_pid = reported  # a sandboxed worker's child, which runs the tasks
                if not self._confine_task_process(worker):
                    return
            self._on_ready(worker)
        else:
            log.warning("worker %d sent an unknown op %r; ignored", worker.pid, op)

    def _on_ready(self, worker: WorkerRecord) -> None:
        if worker.state is not State.STARTING:
            return  # killed (stop, ready timeout) before it got here
        cancel_timer(worker.ready_timer)
        worker.ready_timer = None
        worker.was_ready = True
        assert self._roster.loop is not None
        self._started_count += 1
        self._ready_seconds.append(self._roster.loop.time() - worker.spawned_at)
        self._spawn_stats = None
        self._failures = 0
        if worker.dedicated:
            worker.state = State.BUSY
            for job in list(worker.jobs.values()):
                self._send_job(worker, job)
            return
        if worker.jobs:  # it replaced another tenant's worker, and its first job waits for it
            self._start_waiting_jobs(worker)
            return
        if self._roster.closing:
            self._retire(worker)
            return
        self._book.make_ready(worker)
        waiter = self._roster.start_waiter
        if waiter is not None:
            if not waiter.done() and self._book.count == self._config.workers * self._slots:
                waiter.set_result(None)
            return  # start() is still running: no callbacks before it returns
        self._refill()
        self._roster.notify_idle()

    def _start_waiting_jobs(self, worker: WorkerRecord) -> None:
        """A replacement is ready: it joins the pool and runs the jobs that waited for it."""
        self._book.make_ready(worker)
        for job in list(worker.jobs.values()):
            self._book.by_shard[worker.shard] -= 1
            self._book.count -= 1
            self._send_job(worker, job)
        worker.state = State.BUSY
        if len(worker.jobs) + worker.lent >= self._slots:
            self._book.stacks[worker.shard].remove(worker)
        if self._roster.closing:
            self._book.stop_accepting(worker)  # it retires once its jobs are done
            return
        self._refill()
        if worker.accepting and len(worker.jobs) < self._slots:
            self._roster.notify_idle()

    def _on_done(self, worker: WorkerRecord, message: dict[str, Any]) -> None:
        aid = message.get("aid")
        job = worker.jobs.get(aid) if isinstance(aid, int) else None
        if job is None:
            return  # a late answer for an attempt already timed out, cancelled or abandoned
        outcome: Outcome | None
        if job.aid in worker.stopping:  # a cancel frame was sent: this confirms it
            error = worker.stopping.pop(job.aid)
            self._running.pop(job.aid, None)
            outcome = None if error is None else Outcome(job.aid, False, None, error, worker.pid)
        else:
            del self._running[job.aid]
            worker.runs += 1
            outcome = outcome_of(job.aid, message, worker.pid)
        limit = self._config.max_tasks_per_worker
        drain = (
            self._roster.closing
            or worker.dedicated
            or (limit is not None and worker.runs >= limit)
            or self._too_big(worker)
        )
        if drain:
            self._book.stop_accepting(worker)  # before the job ends: its slot is not free to count
        self._end_job(worker, job)
        if drain:
            self._refill()  # drain, then retire; a replacement starts now
        freed = worker.accepting
        if freed:
            self._book.slot_freed(worker)
        if not worker.jobs and worker.state is State.BUSY:
            if worker.accepting:
                worker.state = State.IDLE
                assert self._roster.loop is not None
                worker.idle_since = self._roster.loop.time()
            else:
                self._retire(worker)
        self._roster.wake_stop()
        if outcome is not None:
            self._roster.emit(outcome)
        if freed:
            self._roster.notify_idle()

    def _too_big(self, worker: WorkerRecord) -> bool:
        """Whether a worker grew past ``max_worker_rss`` (a leak in task code, a cache)."""
        limit = self._config.max_worker_rss
        if not limit or rss(worker.task_pid or worker.pid) <= limit:
            return False
        log.info("recycling worker %d: its RSS passed %d MiB", worker.pid, limit >> 20)
        return True

    def _on_log_frame(self, worker: WorkerRecord, message: dict[str, Any]) -> None:
        aid, stream, data = message.get("aid"), message.get("stream"), message.get("data")
        if (
            self._roster.on_log is None
            or not isinstance(aid, int)
            or aid not in worker.jobs
            or aid in worker.stopping
            or stream not in ("stdout", "stderr")
            or not isinstance(data, str)
        ):
            return  # for an attempt already reported, or nonsense
        try:
            self._roster.on_log(aid, stream, data)
        except Exception:
            log.exception("on_log failed for attempt %d", aid)

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

    def _on_ready_timeout(self, worker: WorkerRecord) -> None:
        worker.ready_timer = None
        if worker.state is State.STARTING:
            within = f"within {START_TIMEOUT:g}s{self._roster.hint()}"
            worker.death_note = f"worker {worker.pid} did not send ready {within}"
            signal_group(worker, signal.SIGKILL)

    def _on_broken(self, worker: WorkerRecord, reason: str) -> None:
        """The worker wrote bytes that are not a frame: it cannot be trusted with anything."""
        log.error("worker %d broke the frame protocol: %s", worker.pid, reason)
        worker.death_note = f"worker {worker.pid} broke the frame protocol: {reason}"
        signal_group(worker, signal.SIGKILL)

    def _on_eof(self, worker: WorkerRecord) -> None:
        """The worker closed its socket: it is exiting, or useless if it is not."""
        if worker.state is State.DEAD:
            return
        if worker.state is State.IDLE:
            log.warning("idle worker %d closed its frame socket; replacing it", worker.pid)
            self._book.stop_accepting(worker)
            worker.state = State.KILLING
            self._refill()
        elif worker.accepting:
            self._book.stop_accepting(worker)  # its jobs are reported when it exits
            self._refill()
        if worker.kill_timer is None:
            assert self._roster.loop is not None
            worker.kill_timer = self._roster.loop.call_later(
                self._config.kill_grace, signal_group, worker, signal.SIGKILL
            )

    def _on_exit(self, worker: WorkerRecord) -> None:
        """The process is gone (and reaped): clean up after it, report, replace it."""
        if worker.state is State.DEAD:
            return
        process = worker.process
        returncode = process.get_returncode() if process is not None else worker.returncode
        signal_group(worker, signal.SIGKILL)  # whatever it forked dies with it
        if self._config.stack_dir is not None and worker.pid > 0:
            with contextlib.suppress(OSError):
                name = f"stack-{worker.task_pid or worker.pid}.txt"
                os.unlink(os.path.join(self._config.stack_dir, name))
        previous = worker.state
        worker.state = State.DEAD
        self._release(worker)
        how = describe_exit(returncode)
        outcomes: list[Outcome] = []
        if worker.jobs:
            note = worker.death_note or f"worker {worker.pid} {how} while running the task"
            died = self._limit_error(worker, returncode) or error_dict(
                ErrorKind.WORKER_DIED, "WorkerDied", note
            )
            outcomes = self._take_jobs(worker, {}, died, report=True)
            self._roster.wake_stop()
        if worker.group is not None:
            worker.group.remove()
            worker.group = None
        if worker.dedicated:
            self._return_slot(worker)
        elif previous is State.STARTING and not self._roster.closing:
            note = (
                worker.death_note
                or f"worker {worker.pid} {how} before it was ready{self._roster.hint()}"
            )
            waiter = self._roster.start_waiter
            if waiter is not None:
                if not waiter.done():
                    waiter.set_exception(RuntimeError(f"worker pool failed to start: {note}"))
            else:
                self._failures += 1
                log.error("%s", note)
        elif previous is State.IDLE:
            log.warning("idle worker %d %s; replacing it", worker.pid, how)
        if not worker.exited.done():
            worker.exited.set_result(None)
        if self._orphans is not None:
            self._orphans.sweep()  # what it left behind is ours now: kill and reap it
        self._refill()
        for outcome in outcomes:
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

    def _release(self, worker: WorkerRecord) -> None:
        """Drop every timer, transport and list entry of a worker that is gone."""
        for timer in (*worker.timers.values(), worker.kill_timer, worker.ready_timer):
            cancel_timer(timer)
        worker.timers.clear()
        worker.kill_timer = worker.ready_timer = None
        self._book.stop_accepting(worker)
        self._workers.discard(worker)
        if worker.channel is not None:
            worker.channel.close()
        if worker.process is not None:
            worker.process.close()

    # -- callbacks to the daemon ---------------------------------------------------------------


def _worker_env(config: PoolConfig) -> dict[str, str]:
    """A minimal environment (``workerenv.py``), never this process's whole one, plus the
    pool's own variables."""
    env = minimal_environment(
        os.environ,
        user=config.limits.user,
        socket_path=config.socket_path,
        passed=config.env_pass,
        extra=config.env,
    )
    env[PARENT_PID_ENV] = str(os.getpid())
    env[PATHS_ENV] = os.pathsep.join(config.paths)
    if config.stack_dir is not None:
        env[STACK_DIR_ENV] = config.stack_dir
    python_path = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    if _PACKAGE_ROOT not in python_path:
        env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT, *python_path])
    return env
