"""``Placer``: a job placed on a worker other than a plain free slot, and sent to its worker.

An attempt whose limits differ from the pool's default (or that has a CPU limit, which counts a
process's whole life) runs in a worker started for it alone, which borrows a slot of a pool
worker (``lend``), so the pool's capacity stays the same. A job of a tenant with no free worker
of its own, when the only free slots are on another tenant's idle worker, has that worker
replaced by one started for its tenant (``replace``): capacity moves between tenants, workers
never do. Either way the job waits for its worker to be ready.

A job is sent once its gate (the daemon's write of the attempt's start) resolves; its timeout
and CPU watch start when it is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asynctask.executor.workers import (
    CPU_POLL,
    Job,
    Roster,
    WorkerRecord,
    log,
    run_frame,
)
from asynctask.resources import Limits

if TYPE_CHECKING:
    from asynctask.executor.scaling import Scaler
    from asynctask.executor.slotbook import SlotBook
    from asynctask.executor.stopping import Stopper


class Placer:
    """Dedicated and replacement workers for jobs, and sending jobs; see the module docstring."""

    def __init__(self, roster: Roster, book: SlotBook) -> None:
        self._roster = roster
        self._book = book
        self._config = roster.config
        self._workers = roster.workers
        self._running = roster.running
        self._slots = roster.config.concurrency
        self._scaler: Scaler  # wire()
        self._stopper: Stopper  # wire()

    def wire(self, scaler: Scaler, stopper: Stopper) -> None:
        """The other parts it calls, given once all of them exist (some call it too)."""
        self._scaler = scaler
        self._stopper = stopper

    def lend(self, lender: WorkerRecord, job: Job, limits: Limits, tenant: str) -> None:
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
        self._scaler.spawn_soon(own)

    def replace(self, idle: WorkerRecord, job: Job, tenant: str) -> None:
        """Retire another tenant's idle worker and start one for ``tenant`` in its place, with
        ``job`` waiting for it: capacity moves between tenants, workers never do."""
        assert self._roster.loop is not None
        log.debug(
            "replacing idle worker %d of tenant %r for tenant %r", idle.pid, idle.tenant, tenant
        )
        self._stopper.retire(idle)  # its free slots leave the count; the new one's join when ready
        fresh = WorkerRecord(self._roster.loop.create_future(), idle.shard, self._config.limits)
        fresh.tenant = tenant
        self._workers.add(fresh)
        fresh.jobs[job.aid] = job
        self._running[job.aid] = fresh
        self._scaler.spawn_soon(fresh)

    def send_job(self, worker: WorkerRecord, job: Job, frame: bytes | None = None) -> None:
        gate = job.gate
        if gate is not None and not gate.done():
            gate.add_done_callback(lambda _: self.send_gated(worker, job, frame))
            return
        self.send_now(worker, job, frame)

    def send_gated(self, worker: WorkerRecord, job: Job, frame: bytes | None) -> None:
        """The gate opened: send, unless the job was cancelled or its worker died meanwhile."""
        assert job.gate is not None
        if job.gate.cancelled() or job.gate.exception() is not None:
            return
        if worker.jobs.get(job.aid) is not job or worker.channel is None:
            return
        if job.aid in worker.stopping or self._running.get(job.aid) is not worker:
            return
        self.send_now(worker, job, frame)

    def send_now(self, worker: WorkerRecord, job: Job, frame: bytes | None) -> None:
        assert self._roster.loop is not None
        assert worker.channel is not None
        if frame is None:
            frame = run_frame(job)
        if job.timeout is not None:
            worker.timers[job.aid] = self._roster.loop.call_later(
                job.timeout, self._stopper.on_timeout, worker, job
            )
        if worker.limits.cpu is not None:
            self._roster.loop.call_later(CPU_POLL, self._stopper.watch_cpu, worker, job)
        worker.channel.write(frame)

    def needs_own_worker(self, limits: Limits) -> bool:
        """Limits other than the pool's run in a worker started with them, never by loosening
        or tightening a shared one; so does any CPU limit, which counts a process's life."""
        return limits != self._config.limits or limits.cpu is not None

    def return_slot(self, worker: WorkerRecord) -> None:
        """A dedicated worker is done: its lender's slot is free again (if it still takes work)."""
        lender = worker.lender
        if lender is None:
            return
        worker.lender = None
        lender.lent -= 1
        if lender.accepting:
            self._book.slot_freed(lender)
            self._roster.notify_idle()
