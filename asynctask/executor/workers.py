"""The pool's records: its configuration, the attempts it runs and how they ended, one record
per worker process, and the ``Roster`` every part of the pool shares.

The pool is split by what each part owns (``pool.py`` lists them), and they all read and write
the same few registries - which workers exist, which attempt runs on which worker, whether the
pool is stopping. Those live here, in plain records, so that no part needs another part only to
reach them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from asynctask import protocol
from asynctask.executor.cgroups import Cgroup, CgroupSupport
from asynctask.model import ErrorKind, error_dict
from asynctask.resources import Limits

log = logging.getLogger("asynctask.executor")

#: Seconds between reads of the CPU time of an attempt with a CPU limit, children included.
CPU_POLL: Final = 0.25

NO_LIMITS: Final = Limits()


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """How to start workers; the daemon builds it from the ``[workers]`` configuration."""

    workers: int = 2  # pre-started at start(), kept at this size
    shards: int = 1  # workers are spread evenly over this many shards (1 to max(workers, 1))
    python: str = sys.executable
    cwd: str | None = None  # workers' working directory (the daemon's if None)
    paths: tuple[str, ...] = ()  # extra sys.path entries for task modules
    output_path: str | None = None  # append workers' fd 1/2 output here (None: inherit)
    max_output: int = 1024 * 1024  # bytes of it kept per worker (``output.py``)
    kill_grace: float = 2.0  # seconds between SIGTERM and SIGKILL
    max_tasks_per_worker: int | None = None  # recycle a worker after N attempts
    max_worker_rss: int = 0  # recycle a worker whose RSS is above this after an attempt; 0: never
    concurrency: int = 1  # attempts one worker runs at once (child.ConcurrentWorker if > 1)
    stack_dir: str | None = None  # workers dump stacks here on SIGUSR1 (``inspect``)
    max_workers: int | None = None  # autoscaling ceiling (None: ``workers``, no scaling)
    idle_timeout: float = 60.0  # a worker above ``workers`` idle this long is retired
    memory_budget: int = 0  # bytes all workers together may hold before growth stops; 0: none
    limits: Limits = NO_LIMITS  # the default limit profile: every pre-started worker's
    cgroups: CgroupSupport | None = None  # per-worker groups where usable (``detect_cgroups``)
    fork_server: bool = True  # fork workers from a zygote (``zygote.py``) instead of exec'ing
    socket_path: str | None = None  # the daemon's socket, told to workers (ASYNCTASK_SOCKET)
    env_pass: tuple[str, ...] = ()  # names copied from this process's environment to workers'
    env: Mapping[str, str] = field(default_factory=dict)  # set in workers' environment
    #: Task code's ``logging`` records from this level go to the attempt's log
    #: (``capture.py``); "off": Python's own default (warnings to stderr).
    log_level: str = "info"
    #: Make this process a child subreaper and kill every child of it that is not a worker
    #: when a worker exits (``reaper.py``): only for a process whose children are all the
    #: pool's, as the daemon's are.
    reap_orphans: bool = False
    #: The worker sandbox (``executor/sandbox.py``): the JSON spec for a worker of a tenant
    #: (``None`` while workers are not bound to one). ``None``: workers are not sandboxed.
    sandbox: Callable[[str | None], str] | None = None
    #: Workers get their identity (a tenant's uid) when they start, so a pre-started worker,
    #: bound to no tenant, is replaced rather than bound by its first attempt.
    bind_at_start: bool = False


@dataclass(frozen=True, slots=True)
class Job:
    """One attempt to run; ``aid`` is the daemon's key for it, unique while it runs."""

    aid: int
    func: str
    payload: bytes
    context: dict[str, Any]  # {"id", "tenant", "attempt", "labels"}
    timeout: float | None  # wall-clock seconds
    limits: Limits | None = None  # None: the pool's default profile
    #: The job is placed at once (its slot is taken) but sent to its worker only once this
    #: resolves: the daemon's write of the attempt's start. Cancelled: never sent (the daemon
    #: is stopping; ``stop`` returns its aid as unfinished).
    gate: asyncio.Future[None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended: ``result`` (packed) when ``ok``, else ``error`` (``error_dict``)."""

    aid: int
    ok: bool
    result: bytes | None
    error: dict[str, Any] | None
    pid: int  # the worker that ran it
    #: ``time.monotonic()`` in the worker as it took the attempt up (None: it never said, e.g.
    #: killed); CLOCK_MONOTONIC is one clock for every process, so the daemon can place it.
    started: float | None = None


class State(Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    RETIRING = "retiring"  # sent "exit"; SIGKILL after the grace if it lingers
    KILLING = "killing"  # its process group got SIGTERM; SIGKILL after the grace
    DEAD = "dead"


#: Error kind of an attempt that shared a worker with one that had to be killed.
BYSTANDER: Final = ErrorKind.INTERRUPTED


class WorkerRecord:
    """The pool's record of one worker process: plain data, so every part of the pool can read
    and change it without asking another part (the logic is theirs)."""

    __slots__ = (
        "accepting",
        "channel",
        "death_note",
        "dedicated",
        "exited",
        "group",
        "idle_since",
        "jobs",
        "kill_timer",
        "lender",
        "lent",
        "limits",
        "pid",
        "process",
        "ready_timer",
        "returncode",
        "runs",
        "shard",
        "spawned_at",
        "state",
        "stopping",
        "task_pid",
        "tenant",
        "timers",
        "was_ready",
    )

    def __init__(self, exited: asyncio.Future[None], shard: int, limits: Limits) -> None:
        self.state = State.STARTING
        self.limits = limits  # its profile, applied when it starts; fixed for its life
        self.group: Cgroup | None = None
        # A dedicated worker is started for one job whose limits differ from the pool's
        # default (or that has a CPU limit: RLIMIT_CPU counts a process's whole life). It
        # borrows a slot of ``lender``, a pool worker, so the pool's capacity stays the same.
        self.dedicated = False
        self.idle_since = 0.0  # loop time it last became idle (for scaling down)
        self.lender: WorkerRecord | None = None
        self.lent = 0  # slots of this worker lent to dedicated workers
        self.shard = shard  # fixed for the worker's life; chosen by ``Spawner.new_worker``
        self.pid = 0
        # The process that runs tasks, as its ``ready`` frame says: in a sandbox it is not
        # ``pid`` (the process the pool started) but a child in a pid namespace of its own.
        self.task_pid = 0
        self.process: asyncio.SubprocessTransport | None = None
        self.channel: asyncio.Transport | None = None
        self.jobs: dict[int, Job] = {}  # running on it, reported to nobody yet
        self.timers: dict[int, asyncio.TimerHandle] = {}  # per job: its timeout or stop grace
        # Jobs sent a ``cancel`` frame, with the error to report when it is confirmed (None:
        # already reported). Only with concurrency > 1; otherwise the worker is killed.
        self.stopping: dict[int, dict[str, Any] | None] = {}
        self.accepting = False  # ready, and takes new jobs while it has a free slot
        self.kill_timer: asyncio.TimerHandle | None = None
        self.ready_timer: asyncio.TimerHandle | None = None
        self.runs = 0
        self.returncode: int | None = None  # as the fork server reported it (forked workers)
        self.spawned_at = 0.0  # loop time its process was asked for (spawn-to-ready figures)
        # The tenant it serves for its whole life: set by its first attempt (or at its start,
        # when it replaces another tenant's worker); never changed (``core/slots.py``).
        self.tenant: str | None = None
        self.was_ready = False
        self.death_note: str | None = None  # overrides "exited with code N" in reports
        self.exited = exited

    @property
    def busy(self) -> int:
        """Slots taken: attempts on it and slots lent (``core.slots.SlotHolder``)."""
        return len(self.jobs) + self.lent

    def __repr__(self) -> str:
        return (
            f"<Worker pid={self.pid} {self.state.value} shard={self.shard} tenant={self.tenant} "
            f"jobs={len(self.jobs)} runs={self.runs}>"
        )


class Roster:
    """What every part of the pool reads: the registries, the loop, the stop flags, and the
    daemon's callbacks, each wrapped so a bug in the daemon cannot leave the pool half done."""

    def __init__(
        self,
        config: PoolConfig,
        on_outcome: Callable[[Outcome], None],
        on_idle: Callable[[], None],
        on_log: Callable[[int, str, str], None] | None,
        on_declare: Callable[[int, Any], None] | None = None,
    ) -> None:
        self.config = config
        self.on_outcome = on_outcome
        self.on_idle = on_idle
        self.on_log = on_log  # (aid, "stdout" | "stderr", text) as the attempt writes it
        #: (aid, options): the worker imported the attempt's function, which declares these
        #: ``@asynctask.task`` options (unchecked: the daemon checks them).
        self.on_declare = on_declare
        self.loop: asyncio.AbstractEventLoop | None = None
        self.workers: set[WorkerRecord] = set()  # every worker whose process is not yet reaped
        self.running: dict[int, WorkerRecord] = {}  # aid -> the worker it runs on
        self.started = False  # start() succeeded: replacements are automatic from now on
        self.closing = False
        self.start_waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None

    def emit(self, outcome: Outcome) -> None:
        # A bug in the daemon's callback must not leave the pool's bookkeeping half done.
        try:
            self.on_outcome(outcome)
        except Exception:
            log.exception("on_outcome failed for attempt %d", outcome.aid)

    def notify_idle(self) -> None:
        if self.closing:
            return
        try:
            self.on_idle()
        except Exception:
            log.exception("on_idle failed")

    def wake_stop(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def hint(self) -> str:
        where = self.config.output_path
        return f" (its output is in {where})" if where else " (its stderr is the daemon's)"


def grandchild(pid: int, ancestor: int) -> bool:
    """Whether ``pid`` is a child's child of ``ancestor`` (the sandbox's worker of the process
    the pool started): a pid a worker reports is believed only then."""
    for _ in range(2):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return pid == ancestor


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def mib(size: int | None) -> str:
    return "?" if size is None else f"{size / 1048576:g} MiB"


def run_frame(job: Job) -> bytes:
    return protocol.encode_frame(
        {"op": "run", "aid": job.aid, "func": job.func, "payload": job.payload, "ctx": job.context}
    )


def outcome_of(aid: int, message: dict[str, Any], pid: int) -> Outcome:
    """An ``Outcome`` from a ``done`` frame, tolerating a worker that sent nonsense."""
    result = message.get("result")
    started = message.get("t0")
    if not isinstance(started, float):
        started = None
    if message.get("ok") is True and isinstance(result, bytes):
        return Outcome(aid, True, result, None, pid, started)
    error = message.get("error")
    if not isinstance(error, dict) or "kind" not in error:
        error = error_dict(
            ErrorKind.EXCEPTION, "ProtocolError", f"worker {pid} sent a malformed done frame"
        )
    return Outcome(aid, False, None, error, pid, started)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "exited"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"died with signal {name}"
    return f"exited with code {returncode}"


def state_of(worker: WorkerRecord) -> State:
    """The state, read anew: callbacks may have changed it while the caller awaited."""
    return worker.state


def cancel_timer(timer: asyncio.TimerHandle | None) -> None:
    if timer is not None:
        timer.cancel()


def signal_group(worker: WorkerRecord, signum: signal.Signals) -> None:
    """The group id is the worker's pid (start_new_session). While a group member lives the id
    cannot be reused, so this never hits a stranger unless the group is already empty."""
    if worker.pid <= 0:
        return
    try:
        os.killpg(worker.pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError as exc:  # pragma: no cover - not our process any more
        log.warning("cannot signal the process group of worker %d: %s", worker.pid, exc)
