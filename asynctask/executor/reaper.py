"""Containment: nothing an attempt starts outlives it, with or without a cgroup.

Theory of operation
-------------------
A worker runs in a session and process group of its own, and the pool signals that group; but
a task can leave the group (``setsid``) and its parent (a double fork), and then neither the
group nor the parent-death signal reaches it. Only a cgroup's process list follows every
descendant, and the default profile has no cgroup. So containment rests on the process tree,
kept whole by ``PR_SET_CHILD_SUBREAPER`` (Linux 3.4) at two levels:

* **The worker is a subreaper** (``become_subreaper``, first thing in ``child.main``). An
  orphan anywhere below it is re-parented to the worker, not to init, so "everything the
  attempt started" is exactly the worker's descendants. When an attempt ends - returned,
  raised, or cancelled in a concurrent worker - and no other attempt runs in the worker,
  ``kill_descendants`` SIGKILLs them all and reaps them (one ``waitid`` when the worker has no
  child at all, the usual case, so a no-op task pays about a microsecond).
* **The daemon is a subreaper** (``PoolConfig.reap_orphans``, which the daemon sets). A worker
  that dies - killed by the pool for a timeout, a cancel or ``stop``, by a limit, or by its
  own hand (``os._exit``, a crash) - cannot clean up after itself. Its descendants are then
  re-parented to the daemon, whose only children are otherwise its workers. ``OrphanReaper``
  runs on every worker exit: it SIGKILLs every child of the daemon that is not a known worker
  and reaps it, again and again until none is left (killing one orphan re-parents its own
  children to the daemon too, and the next pass takes them). It also runs once a second, for
  a task that turned its worker's subreaper flag off (its orphans then come to the daemon
  while the worker lives).

Why not kill the worker's tree from the pool before killing the worker: a worker that dies on
its own gives no "before", and a tree read from outside races with forks. After the worker is
gone, nothing new can join the daemon's children except through the orphans being killed, and
a process with SIGKILL pending cannot complete a fork, so the passes converge.

Reaping: uvloop (libuv) and asyncio's child watchers wait for the pids they started, never
``-1``, so the daemon's orphans would stay zombies; ``OrphanReaper`` waits for each one by its
pid itself. It never touches a pid that is not its child, and a child's pid cannot be reused
before its parent reaps it, so it never signals a stranger. The worker reaps its direct
children (the only ones it may) and signals deeper descendants through a pidfd opened and
then checked against the start time read with the tree, for the same reason.

The CPU limit counts children too: ``tree_cpu_seconds`` sums ``utime + stime`` and the reaped
children's ``cutime + cstime`` over a worker and its descendants from ``/proc``, for the pool
to poll when the worker has no cgroup with CPU accounting (``Cgroup.cpu_seconds``).

Residual gaps: ``kill -9`` of the daemon leaves a killed worker's orphans to init (workers
themselves die of their parent-death signal; cgroups, where used, are swept at the next
start). In a concurrent worker (``concurrency`` > 1) a finished attempt's leftovers die only
once no attempt runs in the worker. Without a cgroup, a process that runs and is reaped by a
parent ignoring ``SIGCHLD`` between two CPU polls escapes the CPU count.

This module is stdlib only: the worker child imports it at start-up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # the worker imports this module at start-up, and not asyncio
    import asyncio

_PR_SET_CHILD_SUBREAPER: Final = 36
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: A worker gives its descendants this long to die before it goes on regardless (a process in
#: uninterruptible sleep cannot die until it wakes).
_KILL_WITHIN: Final = 5.0
#: Passes of ``OrphanReaper`` after a worker exit: fast at first, then slower, then it gives up.
_SWEEP_DELAYS: Final = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 1.0, 2.0, 5.0, 10.0)


def become_subreaper() -> bool:
    """Make orphaned descendants of this process re-parent to it; ``False`` where Linux does
    not let it (not Linux, no usable libc): containment then rests on the process group."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):  # pragma: no cover - no usable libc
        return False


def _stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (field 3, the state, is item 0)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    return text.rpartition(b")")[2].decode("ascii", "replace").split()


def children(pid: int) -> list[int]:
    """The children of ``pid`` (zombies included), from every thread's ``children`` file, or a
    scan of ``/proc`` on kernels built without them; ``[]`` when it is gone."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                found.extend(int(child) for child in handle.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended
            return _children_by_scan(pid)  # no CONFIG_PROC_CHILDREN
        except OSError:
            continue
    return found


def _children_by_scan(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and len(fields) > 1 and fields[1] == str(pid):
                found.append(int(entry))
    return found


def descendants(pid: int) -> list[tuple[int, str]]:
    """Every descendant of ``pid`` as (pid, start time), parents before their children."""
    found: list[tuple[int, str]] = []
    queue = [pid]
    seen = {pid}
    while queue:
        parent = queue.pop(0)
        for child in children(parent):
            fields = _stat(child)
            if child in seen or fields is None or len(fields) < 20:
                continue
            seen.add(child)
            found.append((child, fields[19]))
            queue.append(child)
    return found


def _signal_checked(pid: int, start_time: str, signum: signal.Signals) -> None:
    """Signal ``pid`` only if it is still the process that started at ``start_time``: through
    a pidfd, so a pid freed and reused between reading and signalling cannot be hit."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fields = _stat(pid)  # no pidfds (Linux < 5.3): the check narrows the race only
        if fields is not None and len(fields) > 19 and fields[19] == start_time:
            with contextlib.suppress(OSError):
                os.kill(pid, signum)
        return
    try:
        fields = _stat(pid)
        if fields is not None and len(fields) > 19 and fields[19] == start_time:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signum)
    finally:
        os.close(pidfd)


def kill_descendants(within: float = _KILL_WITHIN, *, whole_namespace: bool = False) -> int:
    """In a subreaper: SIGKILL every descendant of this process and reap them; how many there
    were. Returns once none is left, or after ``within`` seconds. Never raises.

    ``whole_namespace``: this process is the worker of a sandbox's pid namespace (pid 2, under
    its init), so everything else in the namespace but init is the attempt's - including an
    orphan that reached init because the task turned our subreaper flag off. ``kill(-1)``
    takes them all at once; init reaps what is not ours."""
    if whole_namespace:
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)
    try:
        # WNOWAIT: only asks. ECHILD, the usual case, means no child and so no descendant.
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return 0
    except OSError:  # pragma: no cover - waitid is Linux's and always there
        pass
    me = os.getpid()
    deadline = time.monotonic() + within
    killed: set[int] = set()
    while True:
        tree = descendants(me)
        for pid, start_time in tree:
            _signal_checked(pid, start_time, signal.SIGKILL)
            killed.add(pid)
        if not _reap_children() or time.monotonic() > deadline:
            return len(killed)
        time.sleep(0.001)


def _reap_children() -> bool:
    """Reap every child that has ended; whether any child is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU time of ``pid`` and every descendant, reaped descendants included; ``None`` if
    ``pid`` is gone. Read parents first: a child reaped in between is then counted at most
    once (in its parent's ``cutime``, or on its own), never twice."""
    fields = _stat(pid)
    if fields is None or len(fields) < 15:
        return None
    ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    queue = [pid]
    seen = {pid}
    while queue:
        parent = queue.pop(0)
        for child in children(parent):
            if child in seen:
                continue
            seen.add(child)
            child_fields = _stat(child)
            if child_fields is not None and len(child_fields) >= 15:
                ticks += sum(int(value) for value in child_fields[11:15])
                queue.append(child)
    return ticks / _CLOCK_TICKS


class OrphanReaper:
    """The daemon's side: kills and reaps its children that are not workers (see above).

    ``workers()`` gives the pids to spare, or ``None`` while a worker is being spawned (its
    pid is not known yet, so no child can be judged a stranger); the pass is then retried.
    Besides the sweep after each worker exit, a pass runs every ``period`` seconds: a task
    may turn its worker's subreaper flag off, and its orphans then come to the daemon while
    the worker lives on.
    """

    def __init__(self, workers: Callable[[], Collection[int] | None], period: float = 1.0):
        self._workers = workers
        self._period = period
        self._timer: asyncio.TimerHandle | None = None  # the next pass of a sweep
        self._ticker: asyncio.TimerHandle | None = None  # the next periodic pass
        self._passes = 0
        self._idle: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"<OrphanReaper {'sweeping' if self._timer is not None else 'idle'}>"

    def start(self) -> None:
        """Start the periodic passes (in the running event loop)."""
        import asyncio

        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().call_later(self._period, self._tick)

    def close(self) -> None:
        """Stop every pass; a sweep under way is abandoned."""
        for timer in (self._timer, self._ticker):
            if timer is not None:
                timer.cancel()
        self._timer = self._ticker = None
        self._done()

    def sweep(self) -> None:
        """A pass now, and more in the background until no orphan is left."""
        self._passes = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pass()

    async def wait(self, timeout: float) -> bool:
        """Wait for the sweeping to end; whether it did within ``timeout`` seconds."""
        if self._timer is None:
            return True
        import asyncio

        if self._idle is None:
            self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def _tick(self) -> None:
        import asyncio

        self._ticker = asyncio.get_running_loop().call_later(self._period, self._tick)
        if self._timer is None:  # else a sweep is under way already
            self.sweep()

    def _pass(self) -> None:
        import asyncio
        import logging

        self._timer = None
        workers = self._workers()
        if workers is None:  # a spawn is under way: judge no child until its pid is known
            self._timer = asyncio.get_running_loop().call_later(_SWEEP_DELAYS[2], self._pass)
            return
        killed, left = reap_strays(workers)
        log = logging.getLogger("asynctask.executor")
        if killed:
            log.info("killed and reaped %d process(es) left behind by workers", killed)
        if left and self._passes < len(_SWEEP_DELAYS):
            delay = _SWEEP_DELAYS[self._passes]
            self._passes += 1
            self._timer = asyncio.get_running_loop().call_later(delay, self._pass)
            return
        if left:
            log.error("%d process(es) left behind by workers did not die after SIGKILL", left)
        self._done()

    def _done(self) -> None:
        if self._idle is not None:
            self._idle.set()
            self._idle = None


def reap_strays(workers: Collection[int]) -> tuple[int, int]:
    """SIGKILL and reap every child of this process whose pid is not in ``workers``: how many
    were reaped, and how many are left (not dead yet, or dead and not reaped yet)."""
    reaped = left = 0
    for pid in children(os.getpid()):
        if pid in workers:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # our child, not yet reaped: its pid is still its own
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue  # not ours after all (a thread's child someone else waits for)
        if done == 0:
            left += 1
        else:
            reaped += 1
    return reaped, left
