"""``Stopper``: attempts taken away from their workers - cancelled, timed out, over their CPU
limit - and workers killed or retired.

Every job leaves ``BUSY`` through exactly one path, and every path that ends a job early comes
through here, so "one ``Outcome`` per attempt" is kept in one place: ``take_jobs`` forgets the
jobs of a worker that is going away and returns what is owed for them. A worker running several
attempts (``concurrency`` > 1) is asked to stop just one (a ``cancel`` frame) and killed only if
it does not within ``kill_grace``; a worker running one is killed (``killpg``: SIGTERM, then
SIGKILL after the grace), because a task cannot be interrupted from outside its process.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

from asynctask import protocol
from asynctask.executor.limits import classify_exit
from asynctask.executor.reaper import tree_cpu_seconds
from asynctask.executor.workers import (
    BYSTANDER,
    CPU_POLL,
    Job,
    Outcome,
    Roster,
    State,
    WorkerRecord,
    cancel_timer,
    log,
    mib,
    signal_group,
)
from asynctask.model import ErrorKind, error_dict

if TYPE_CHECKING:
    from asynctask.executor.scaling import Scaler
    from asynctask.executor.slotbook import SlotBook


class Stopper:
    """Ends attempts early and ends workers; see the module docstring."""

    def __init__(self, roster: Roster, book: SlotBook) -> None:
        self._roster = roster
        self._book = book
        self._config = roster.config
        self._running = roster.running
        self._slots = roster.config.concurrency
        self._scaler: Scaler  # wire()

    def wire(self, scaler: Scaler) -> None:
        """The other parts it calls, given once all of them exist (some call it too)."""
        self._scaler = scaler

    def watch_cpu(self, worker: WorkerRecord, job: Job) -> None:
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
            self._roster.loop.call_later(CPU_POLL, self.watch_cpu, worker, job)
            return
        message = f"the attempt used up its CPU limit of {limit:g}s (its child processes too)"
        error = error_dict(ErrorKind.CPU_LIMIT, "CpuLimit", message)
        for outcome in self.abandon(worker, {job.aid: error}, report=True):
            self._roster.emit(outcome)

    def cancel(self, aid: int) -> bool:
        """Stop the attempt ``aid``: ask its worker when it runs other attempts too, else kill
        the worker; ``False`` if it is not running.

        Its ``Outcome`` (kind ``exception``, type ``Cancelled``) is reported from the event loop
        soon after, never from inside this call, so the caller's own bookkeeping is not
        re-entered. A replacement worker is started at once.
        """
        worker = self._running.get(aid)
        if worker is None:
            return False
        assert self._roster.loop is not None
        error = error_dict(ErrorKind.EXCEPTION, "Cancelled", "the attempt was cancelled")
        if self.shares_worker(worker, aid):
            del self._running[aid]
            self.stop_one(worker, worker.jobs[aid], None)
            outcomes = [Outcome(aid, False, None, error, worker.pid)]
        else:
            outcomes = self.abandon(worker, {aid: error}, report=True)
        for outcome in outcomes:
            self._roster.loop.call_soon(self._roster.emit, outcome)
        return True

    def limit_error(self, worker: WorkerRecord, returncode: int | None) -> dict[str, Any] | None:
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

    def retime(self, aid: int, timeout: float | None, started: bool) -> None:
        """``WorkerPool.retime``: the timeout of a running job, re-armed for ``timeout``
        seconds from when the job was sent. Its timer says when; a job without one is re-armed
        from now only if ``started`` (its worker said so), since it may not be sent yet (its
        gate is closed, its worker not ready), and ``send_now`` arms its timer then."""
        worker = self._running.get(aid)
        job = worker.jobs.get(aid) if worker is not None else None
        if worker is None or job is None or aid in worker.stopping:
            return
        loop = self._roster.loop
        assert loop is not None
        old = worker.timers.get(aid)
        if old is not None and job.timeout is not None:
            sent = old.when() - job.timeout
        elif started:
            sent = loop.time()
        else:
            return
        if old is not None:
            old.cancel()
            del worker.timers[aid]
        if timeout is not None:
            worker.timers[aid] = loop.call_at(sent + timeout, self.on_timeout, worker, job, timeout)

    def on_timeout(self, worker: WorkerRecord, job: Job, seconds: float | None = None) -> None:
        if worker.jobs.get(job.aid) is not job or job.aid in worker.stopping:
            return
        worker.timers.pop(job.aid, None)
        timeout = seconds if seconds is not None else job.timeout
        message = f"attempt exceeded its timeout of {timeout:g}s"
        error = error_dict(ErrorKind.TIMEOUT, "TimeoutError", message)
        if self.shares_worker(worker, job.aid):
            self.stop_one(worker, job, error)  # reported when it stops, or with the worker
            return
        for outcome in self.abandon(worker, {job.aid: error}, report=True):
            self._roster.emit(outcome)

    def on_stop_overdue(self, worker: WorkerRecord, job: Job) -> None:
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
        for outcome in self.abandon(worker, {}, report=True):
            self._roster.emit(outcome)

    def shares_worker(self, worker: WorkerRecord, aid: int) -> bool:
        """Whether stopping ``aid`` must spare other attempts on its worker (ask, not kill)."""
        return self._slots > 1 and any(other != aid for other in worker.jobs)

    def stop_one(self, worker: WorkerRecord, job: Job, error: dict[str, Any] | None) -> None:
        """Ask a shared worker to stop one job; kill the worker if it has not within the grace.
        ``error`` is reported when it stops (``None``: the caller reported it already)."""
        assert self._roster.loop is not None
        worker.stopping[job.aid] = error
        cancel_timer(worker.timers.pop(job.aid, None))
        worker.timers[job.aid] = self._roster.loop.call_later(
            self._config.kill_grace, self.on_stop_overdue, worker, job
        )
        if worker.channel is not None and not worker.channel.is_closing():
            worker.channel.write(protocol.encode_frame({"op": "cancel", "aid": job.aid}))

    def abandon(
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
        outcomes = self.take_jobs(worker, errors, bystander, report=report)
        self.kill(worker)
        self._scaler.refill()
        self._roster.wake_stop()
        return outcomes

    def take_jobs(
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
            self.end_job(worker, job)
            self._running.pop(aid, None)
            if report and error is not None:
                outcomes.append(Outcome(aid, False, None, error, worker.pid))
        worker.stopping.clear()
        return outcomes

    def end_job(self, worker: WorkerRecord, job: Job) -> None:
        del worker.jobs[job.aid]
        worker.stopping.pop(job.aid, None)
        cancel_timer(worker.timers.pop(job.aid, None))

    def kill(self, worker: WorkerRecord) -> None:
        """SIGTERM the worker's process group now, SIGKILL it after ``kill_grace``."""
        assert self._roster.loop is not None
        self._book.stop_accepting(worker)
        worker.state = State.KILLING
        signal_group(worker, signal.SIGTERM)
        cancel_timer(worker.kill_timer)
        worker.kill_timer = self._roster.loop.call_later(
            self._config.kill_grace, signal_group, worker, signal.SIGKILL
        )

    def retire(self, worker: WorkerRecord) -> None:
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
