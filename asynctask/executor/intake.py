"""``Intake``: what the workers say - frames on their socketpairs, EOF, process exit - and what
the pool does about it.

The daemon's end of each socketpair is an asyncio ``Protocol`` feeding a ``FrameDecoder``: a
result is handled in the callback that delivered its bytes, with no coroutine per message. Process
exit is a ``SubprocessProtocol.process_exited`` callback (or the fork server's report) for the
same reason; the event loop's child watcher reaps the process, so none is left a zombie.

A late ``done`` frame from a worker already being killed is ignored, which keeps "exactly once"
true; a worker that writes bytes that are not a frame is killed, as nothing it says can be
trusted any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import TYPE_CHECKING, Any, cast

from asynctask import protocol
from asynctask.errors import ProtocolError
from asynctask.executor.workers import (
    Outcome,
    Roster,
    State,
    WorkerRecord,
    cancel_timer,
    describe_exit,
    grandchild,
    log,
    outcome_of,
    rss,
    signal_group,
)
from asynctask.model import ErrorKind, error_dict

if TYPE_CHECKING:
    from asynctask.executor.placement import Placer
    from asynctask.executor.scaling import Scaler
    from asynctask.executor.slotbook import SlotBook
    from asynctask.executor.spawner import Spawner
    from asynctask.executor.stopping import Stopper


class Intake:
    """Handles every event from a worker; see the module docstring."""

    def __init__(self, roster: Roster, book: SlotBook) -> None:
        self._roster = roster
        self._book = book
        self._config = roster.config
        self._running = roster.running
        self._slots = roster.config.concurrency
        self._spawner: Spawner  # wire()
        self._stopper: Stopper  # wire()
        self._scaler: Scaler  # wire()
        self._placer: Placer  # wire()
        # ``on_done`` runs once per attempt: what it calls is bound once, here and in ``wire``.
        self._emit = roster.emit
        self._notify_idle = roster.notify_idle
        self._wake_stop = roster.wake_stop
        self._slot_freed = book.slot_freed

    def wire(self, spawner: Spawner, stopper: Stopper, scaler: Scaler, placer: Placer) -> None:
        """The other parts it calls, given once all of them exist (some call it too)."""
        self._spawner = spawner
        self._stopper = stopper
        self._end_job = stopper.end_job
        self._scaler = scaler
        self._placer = placer

    def on_message(self, worker: WorkerRecord, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "log":
            self.on_log_frame(worker, message)
        elif op == "done":
            self.on_done(worker, message)
        elif op == "declare":
            self.on_declare_frame(worker, message)
        elif op == "ready":
            reported = message.get("pid")
            if (
                worker.state is State.STARTING  # once, before any task code: never a task's
                and type(reported) is int
                and reported != worker.pid
                and grandchild(reported, worker.pid)
            ):
                worker.task_pid = reported  # a sandboxed worker's child, which runs the tasks
                if not self._spawner.confine_task_process(worker):
                    return
            self.on_ready(worker)
        else:
            log.warning("worker %d sent an unknown op %r; ignored", worker.pid, op)

    def on_ready(self, worker: WorkerRecord) -> None:
        if worker.state is not State.STARTING:
            return  # killed (stop, ready timeout) before it got here
        cancel_timer(worker.ready_timer)
        worker.ready_timer = None
        worker.was_ready = True
        self._spawner.record_ready(worker)
        self._scaler.failures = 0
        if worker.dedicated:
            worker.state = State.BUSY
            for job in list(worker.jobs.values()):
                self._placer.send_job(worker, job)
            return
        if worker.jobs:  # it replaced another tenant's worker, and its first job waits for it
            self.start_waiting_jobs(worker)
            return
        if self._roster.closing:
            self._stopper.retire(worker)
            return
        self._book.make_ready(worker)
        waiter = self._roster.start_waiter
        if waiter is not None:
            if not waiter.done() and self._book.count == self._config.workers * self._slots:
                waiter.set_result(None)
            return  # start() is still running: no callbacks before it returns
        self._scaler.refill()
        self._roster.notify_idle()

    def start_waiting_jobs(self, worker: WorkerRecord) -> None:
        """A replacement is ready: it joins the pool and runs the jobs that waited for it."""
        self._book.make_ready(worker)
        for job in list(worker.jobs.values()):
            self._book.by_shard[worker.shard] -= 1
            self._book.count -= 1
            self._placer.send_job(worker, job)
        worker.state = State.BUSY
        if len(worker.jobs) + worker.lent >= self._slots:
            self._book.stacks[worker.shard].remove(worker)
        if self._roster.closing:
            self._book.stop_accepting(worker)  # it retires once its jobs are done
            return
        self._scaler.refill()
        if worker.accepting and len(worker.jobs) < self._slots:
            self._roster.notify_idle()

    def on_done(self, worker: WorkerRecord, message: dict[str, Any]) -> None:
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
            or self.too_big(worker)
        )
        if drain:
            self._book.stop_accepting(worker)  # before the job ends: its slot is not free to count
        self._end_job(worker, job)
        if drain:
            self._scaler.refill()  # drain, then retire; a replacement starts now
        freed = worker.accepting
        if freed:
            self._slot_freed(worker)
        if not worker.jobs and worker.state is State.BUSY:
            if worker.accepting:
                worker.state = State.IDLE
                assert self._roster.loop is not None
                worker.idle_since = self._roster.loop.time()
            else:
                self._stopper.retire(worker)
        self._wake_stop()
        if outcome is not None:
            self._emit(outcome)
        if freed:
            self._notify_idle()

    def too_big(self, worker: WorkerRecord) -> bool:
        """Whether a worker grew past ``max_worker_rss`` (a leak in task code, a cache)."""
        limit = self._config.max_worker_rss
        if not limit or rss(worker.task_pid or worker.pid) <= limit:
            return False
        log.info("recycling worker %d: its RSS passed %d MiB", worker.pid, limit >> 20)
        return True

    def on_log_frame(self, worker: WorkerRecord, message: dict[str, Any]) -> None:
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

    def on_declare_frame(self, worker: WorkerRecord, message: dict[str, Any]) -> None:
        """The worker imported a running attempt's function: pass its declared options on."""
        aid, options = message.get("aid"), message.get("options")
        if (
            self._roster.on_declare is None
            or not isinstance(aid, int)
            or aid not in worker.jobs
            or aid in worker.stopping
        ):
            return  # for an attempt already reported, or nonsense (the daemon checks options)
        try:
            self._roster.on_declare(aid, options)
        except Exception:
            log.exception("on_declare failed for attempt %d", aid)

    def on_broken(self, worker: WorkerRecord, reason: str) -> None:
        """The worker wrote bytes that are not a frame: it cannot be trusted with anything."""
        log.error("worker %d broke the frame protocol: %s", worker.pid, reason)
        worker.death_note = f"worker {worker.pid} broke the frame protocol: {reason}"
        signal_group(worker, signal.SIGKILL)

    def on_eof(self, worker: WorkerRecord) -> None:
        """The worker closed its socket: it is exiting, or useless if it is not."""
        if worker.state is State.DEAD:
            return
        if worker.state is State.IDLE:
            log.warning("idle worker %d closed its frame socket; replacing it", worker.pid)
            self._book.stop_accepting(worker)
            worker.state = State.KILLING
            self._scaler.refill()
        elif worker.accepting:
            self._book.stop_accepting(worker)  # its jobs are reported when it exits
            self._scaler.refill()
        if worker.kill_timer is None:
            assert self._roster.loop is not None
            worker.kill_timer = self._roster.loop.call_later(
                self._config.kill_grace, signal_group, worker, signal.SIGKILL
            )

    def on_exit(self, worker: WorkerRecord) -> None:
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
        self._spawner.release(worker)
        how = describe_exit(returncode)
        outcomes: list[Outcome] = []
        if worker.jobs:
            note = worker.death_note or f"worker {worker.pid} {how} while running the task"
            died = self._stopper.limit_error(worker, returncode) or error_dict(
                ErrorKind.WORKER_DIED, "WorkerDied", note
            )
            outcomes = self._stopper.take_jobs(worker, {}, died, report=True)
            self._roster.wake_stop()
        if worker.group is not None:
            worker.group.remove()
            worker.group = None
        if worker.dedicated:
            self._placer.return_slot(worker)
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
                self._scaler.failures += 1
                log.error("%s", note)
        elif previous is State.IDLE:
            log.warning("idle worker %d %s; replacing it", worker.pid, how)
        if not worker.exited.done():
            worker.exited.set_result(None)
        if self._spawner.orphans is not None:
            self._spawner.orphans.sweep()  # what it left behind is ours now: kill and reap it
        self._scaler.refill()
        for outcome in outcomes:
            self._roster.emit(outcome)


class ProcessProtocol(asyncio.SubprocessProtocol):
    """An interpreter-started worker's process: its exit, to the intake."""

    def __init__(self, intake: Intake, worker: WorkerRecord) -> None:
        self._on_exit = intake.on_exit
        self._worker = worker

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's process transport quacks like asyncio.SubprocessTransport without being one.
        process = cast(asyncio.SubprocessTransport, transport)
        self._worker.process = process
        self._worker.pid = process.get_pid()

    def process_exited(self) -> None:
        self._on_exit(self._worker)


class ChannelProtocol(asyncio.Protocol):
    """The daemon's end of one worker's socketpair: bytes in, frames to the intake, whose
    methods are bound here once so a message costs no lookup beyond the call."""

    def __init__(self, intake: Intake, worker: WorkerRecord) -> None:
        self._on_message = intake.on_message
        self._on_broken = intake.on_broken
        self._on_eof = intake.on_eof
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
            self._on_broken(self._worker, exc.message)
            return
        for message in messages:
            self._on_message(self._worker, message)

    def eof_received(self) -> bool | None:
        self._on_eof(self._worker)
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._on_eof(self._worker)
