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
worker's cgroup (or, without one, its process tree in ``/proc``) every ``workers.CPU_POLL`` seconds.

A worker moves through these states (``workers.State``)::

    STARTING --ready--> IDLE --run()--> BUSY --done--> IDLE (or RETIRING when recycled/stopping)
    BUSY --timeout/cancel()/stop()--> KILLING          IDLE --stop()/recycle--> RETIRING
    any --process exited--> DEAD (then a replacement is started, unless the pool is stopping)

Every job leaves ``BUSY`` through exactly one of: a ``done`` frame, the timeout, ``cancel``, the
process exiting, or ``stop`` giving up on it - and only ``stop`` reports no ``Outcome``.

Shards. The workers are split into ``config.shards`` shards for shuffle sharding of tenants. The
pool only places workers in shards and honours the caller's choice: ``run(job, shard)`` takes an
idle worker of that shard or raises. Which tenant may use which shard is the scheduler's business
(``core/sharding.py``, ``core/scheduler.py``), not the pool's. Every new worker - at ``start()``
and every replacement - goes to the shard with the fewest workers that count towards ``size``
(lowest index on ties), so a worker that dies, is killed or is recycled is replaced in the shard
that lost it: a tenant confined to a set of shards keeps that set's capacity, and a poison tenant
that kills the workers of its shards cannot drift the pool's workers away from anyone else's.
Idle workers are kept in one stack per shard, so choosing one costs O(shards) at most.

The parts
---------
The pool is a facade over parts it owns, each owning one thing; they share the registries of
``workers.Roster`` and call each other directly (``wire``), not through the pool:

* ``workers.py``: the records (``PoolConfig``, ``Job``, ``Outcome``, one ``WorkerRecord`` per
  process) and the ``Roster``.
* ``slotbook.py``: free slots per shard and the counts ``idle`` reads.
* ``spawner.py``: starting workers (the fork server, or an interpreter), confining them.
* ``intake.py``: the workers' frames, EOFs and exits.
* ``placement.py``: dedicated and replacement workers for a job, and sending jobs.
* ``stopping.py``: cancel, timeouts, CPU limits, killing and retiring workers.
* ``scaling.py``: the pool's size - growing, shrinking, refilling, backing off, reloading.

``run`` stays here, in one method, because the daemon calls it for every attempt.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from asynctask.core.slots import Placement, WarmSlots, place
from asynctask.executor.intake import Intake
from asynctask.executor.placement import Placer
from asynctask.executor.reaper import become_subreaper
from asynctask.executor.scaling import Scaler
from asynctask.executor.slotbook import SlotBook
from asynctask.executor.spawner import Spawner
from asynctask.executor.stopping import Stopper
from asynctask.executor.workers import (
    Job,
    Outcome,
    PoolConfig,
    Roster,
    State,
    log,
    run_frame,
)

# PoolConfig, Job and Outcome are the daemon's words for the pool: imported from here.
__all__ = ["Job", "Outcome", "PoolConfig", "WorkerPool"]


class WorkerPool:
    """A fixed number of worker processes kept ready; see the module docstring."""

    def __init__(
        self,
        config: PoolConfig,
        on_outcome: Callable[[Outcome], None],
        on_idle: Callable[[], None],
        on_log: Callable[[int, str, str], None] | None = None,
        on_declare: Callable[[int, Any], None] | None = None,
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
        roster = self._roster = Roster(config, on_outcome, on_idle, on_log, on_declare)
        book = self._book = SlotBook(roster)
        self._workers = roster.workers
        self._running = roster.running
        self._slots = config.concurrency
        # ``run``'s hot path reads these lists (never rebound) without going through the book.
        self._stacks = book.stacks
        self._by_shard = book.by_shard
        self._spawner = Spawner(roster, book)
        self._intake = Intake(roster, book)
        self._placer = Placer(roster, book)
        self._stopper = Stopper(roster, book)
        self._scaler = Scaler(roster, book)
        self._spawner.wire(self._intake)
        self._intake.wire(self._spawner, self._stopper, self._scaler, self._placer)
        self._placer.wire(self._scaler, self._stopper)
        self._stopper.wire(self._scaler)
        self._scaler.wire(self._spawner, self._stopper, self._placer)

    def __repr__(self) -> str:
        shards = f" idle_by_shard={self.idle_by_shard()}" if len(self._stacks) > 1 else ""
        return (
            f"<WorkerPool size={self._scaler.size} idle={self.idle} busy={self.busy} "
            f"starting={self._scaler.starting}{shards}>"
        )

    @property
    def idle(self) -> int:
        """Jobs ``run`` can start right now (in any shard): free slots of accepting workers,
        which is idle workers when each runs one attempt at a time."""
        return self._book.count

    def idle_by_shard(self) -> list[int]:
        """``idle`` per shard, indexed by shard (``config.shards`` long)."""
        return self._book.idle_by_shard()

    def warm_slots(self) -> WarmSlots:
        """Free slots by the tenant whose worker they are on (``core.slots.WarmSlots``)."""
        return self._book.warm_slots()

    def spawn_stats(self) -> dict[str, float]:
        """Workers started so far and their spawn-to-ready time (ms, over the newest 4,096):
        the price of moving a slot between tenants (``ping``, ``benchmarks/bench_tenants.py``)."""
        return self._spawner.spawn_stats()

    @property
    def starting(self) -> int:
        return self._scaler.starting

    @property
    def size(self) -> int:
        """Workers that count towards ``config.workers``: starting, or ready and accepting.

        Workers being killed, retired or drained for recycling are not counted: their
        replacements already are.
        """
        return self._scaler.size

    @property
    def busy(self) -> int:
        return len(self._running)

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

    def retime(self, aid: int, timeout: float | None, *, started: bool = False) -> None:
        """Give the running attempt ``aid`` another wall-clock timeout, counted from when it
        was sent to its worker: its function declared one in code, which the daemon learned
        only once a worker imported it. ``started``: its worker has said it runs it (without
        a timeout so far, the new one counts from now)."""
        self._stopper.retime(aid, timeout, started)

    def shard_of(self, aid: int) -> int | None:
        """The shard of the worker running ``aid``, if it runs."""
        worker = self._running.get(aid)
        return worker.shard if worker is not None else None

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

    def can_run(self, shard: int | None = None) -> bool:
        """Whether ``run`` would find an idle worker (in ``shard``) now."""
        if shard is None:
            return any(self._stacks)
        return 0 <= shard < len(self._stacks) and bool(self._stacks[shard])

    def run(self, job: Job, shard: int | None = None) -> None:
        """Hand ``job`` to a worker with a free slot now; ``RuntimeError`` if none has one.

        The shard is ``shard`` (``RuntimeError`` if it has no free slot, ``ValueError`` if
        there is no such shard), else the one with the most free slots (lowest index on ties),
        which leaves the scarce shards' workers to callers that need them. Within it,
        ``core.slots.place`` chooses by the job's tenant: the tenant's own warmest worker, else
        a fresh one, else another tenant's idle worker is replaced by one started for this
        tenant (the job waits for it to be ready). A refused call changes nothing.
        """
        if shard is not None and not 0 <= shard < len(self._stacks):
            raise ValueError(f"no shard {shard}: the pool has shards 0 to {len(self._stacks) - 1}")
        if self._roster.closing:
            raise RuntimeError("the worker pool is stopping and takes no new jobs")
        if job.aid in self._running:
            raise RuntimeError(f"attempt {job.aid} is already running")
        tenant = str(job.context.get("tenant", ""))
        chosen = shard
        placement: Placement | None = None
        if chosen is None:
            chosen, placement = self._book.best_shard(tenant)
        stack = self._stacks[chosen]
        if not stack:
            where = "" if shard is None else f" in shard {shard}"
            raise RuntimeError(f"no idle worker{where} for attempt {job.aid}: {self!r}")
        assert self._roster.loop is not None
        # Encode before touching any state: a context msgpack cannot encode raises right here.
        frame = run_frame(job)
        if job.limits is not None and self._placer.needs_own_worker(job.limits):
            self._placer.lend(stack[-1], job, job.limits, tenant)
            return
        if placement is None:
            placement = place(tenant, stack, fresh_ok=self._book.fresh_ok)
        if placement is None:  # every free slot is on another tenant's busy worker
            self._placer.lend(stack[-1], job, self._config.limits, tenant)
            return
        worker = stack[placement.index]
        if placement.replace:
            self._placer.replace(worker, job, tenant)
            return
        channel = worker.channel
        assert channel is not None
        self._by_shard[chosen] -= 1
        self._book.count -= 1
        worker.tenant = tenant
        worker.state = State.BUSY
        worker.jobs[job.aid] = job
        if len(worker.jobs) + worker.lent >= self._slots:
            del stack[placement.index]
        self._running[job.aid] = worker
        self._placer.send_job(worker, job, frame)

    @property
    def max_size(self) -> int:
        return self._scaler.max_size

    @property
    def target(self) -> int:
        """The size the pool is kept at now (``workers`` up to ``max_workers``)."""
        return self._scaler.target

    def grow(self, wanted: int) -> int:
        """Start up to ``wanted`` more workers, within ``max_workers``; how many it starts.

        The daemon calls it when work waits and every slot is taken (``scaling.py``)."""
        return self._scaler.grow(wanted)

    def reload(self) -> int:
        """Replace the workers so the next attempts import task code anew (``asynctask
        reload``, SIGHUP); how many were asked to go (``Scaler.reload``)."""
        return self._scaler.reload()

    def cancel(self, aid: int) -> bool:
        """Stop the attempt ``aid``; ``False`` if it is not running.

        Its ``Outcome`` (kind ``exception``, type ``Cancelled``) is reported from the event loop
        soon after, never from inside this call, so the caller's own bookkeeping is not
        re-entered. A killed worker's replacement is started at once (``Stopper.cancel``).
        """
        return self._stopper.cancel(aid)

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
        if self._scaler.scale_timer is not None:
            self._scaler.scale_timer.cancel()
            self._scaler.scale_timer = None
        if self._scaler.backoff is not None:
            self._scaler.backoff.cancel()
            self._scaler.backoff = None
        for worker in list(self._workers):
            if worker.state is State.IDLE:
                self._stopper.retire(worker)
            elif worker.state is State.STARTING and not worker.jobs:
                self._stopper.kill(worker)  # a dedicated one starting for a job may finish it
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
            self._stopper.abandon(worker, {}, report=False)
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
