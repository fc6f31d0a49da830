"""The worker's start-up, before its first frame: what it sets on itself while it still can.

The order matters and ``child.main`` keeps it: die with the daemon (``PR_SET_PDEATHSIG``), put
the task paths on ``sys.path``, then rlimits, then the sandbox (``sandbox.py``) or, without one,
the limits' own hardening - last, because either may give up root, which the earlier steps need.
The stack-dump file (``asynctask inspect``) is opened in between, while the daemon's run
directory is still reachable.

Like ``child.py``, this module imports only the stdlib at start-up (an import-linter contract);
limits and the sandbox are imported only by a worker that has them.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Final

PARENT_PID_ENV: Final = "ASYNCTASK_PARENT_PID"
PATHS_ENV: Final = "ASYNCTASK_PATHS"
#: The worker's limit profile, JSON of ``Limits.to_wire()`` (+ ``address_space``): applied to
#: itself first thing, before any task code can run.
LIMITS_ENV: Final = "ASYNCTASK_LIMITS"
#: Where ``SIGUSR1`` makes the worker dump its threads' stacks (``asynctask inspect``).
STACK_DIR_ENV: Final = "ASYNCTASK_STACK_DIR"
#: The worker sandbox (``executor/sandbox.py``), JSON; entered right after the rlimits.
SANDBOX_ENV: Final = "ASYNCTASK_SANDBOX"
#: Set by a sandboxed worker for its tasks: its pid as the daemon (and ``inspect``) know it;
#: in the sandbox's pid namespace ``os.getpid()`` is 2.
WORKER_PID_ENV: Final = "ASYNCTASK_WORKER_PID"

_PR_SET_PDEATHSIG: Final = 1
_SIGKILL: Final = 9


def die_with_parent() -> bool:
    """Ask Linux to SIGKILL us when the daemon dies; ``False`` if it already has.

    Without this a worker outlives a ``kill -9`` of the daemon and keeps running a task that
    the restarted daemon will run again. The ``getppid`` check closes the race where the daemon
    died between forking us and the ``prctl``.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes  # Linux only

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no usable libc: go on without
            pass
    expected = os.environ.get(PARENT_PID_ENV)
    return not (expected and expected.isdigit() and os.getppid() != int(expected))


def apply_limits(frame_fd: int) -> str | None:
    """rlimits from ``LIMITS_ENV``, then the sandbox of ``SANDBOX_ENV`` (or, without one, the
    limits' own hardening); the reason it cannot, which ends the worker unstarted."""
    raw = os.environ.get(LIMITS_ENV)
    spec_text = os.environ.get(SANDBOX_ENV)
    if not raw and not spec_text:
        dump_stacks_on_sigusr1()
        return None
    import json

    from asynctask.executor.limits import apply_rlimits, isolate
    from asynctask.resources import Limits

    try:
        wire = json.loads(raw or "{}")
        address_space = bool(wire.pop("address_space", True))
        limits = Limits.from_wire(wire)
        apply_rlimits(limits, address_space=address_space)
        if not spec_text:
            dump_stacks_on_sigusr1()  # opens its file in the daemon's run dir while it can
            isolate(limits)  # last: it may give up root
            return None
        _enter_sandbox(spec_text, limits, frame_fd)
    except (ValueError, TypeError, OSError) as exc:
        return f"cannot apply its limits {raw} and sandbox {spec_text}: {exc}"
    return None


def _enter_sandbox(spec_text: str, limits: Any, frame_fd: int) -> None:
    """``executor/sandbox.py``; returns in the process that runs tasks, as its host pid is
    known, and with the stack file opened from a descriptor taken before the home was hidden."""
    from asynctask.executor import sandbox

    global _HOST_PID
    directory = os.environ.get(STACK_DIR_ENV)
    dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY) if directory else None

    def before_drop(host_pid: int) -> list[int]:
        return [] if dir_fd is None else dump_stacks_on_sigusr1(host_pid, dir_fd)

    entered = sandbox.enter(
        sandbox.Spec.from_json(spec_text),
        network=limits.network is not False,
        private_tmp=bool(limits.private_tmp),
        user=limits.user,
        keep_fds=[frame_fd],
        before_drop=before_drop,
    )
    _HOST_PID = entered.host_pid
    os.environ[WORKER_PID_ENV] = str(entered.host_pid)


_HOST_PID: int | None = None


def in_own_pid_namespace() -> bool:
    """Whether the sandbox put this worker in a pid namespace of its own (its pid there differs
    from the host's, and its parent is that namespace's init): only then is ``kill(-1)`` the
    attempt's leftovers and nothing else."""
    return _HOST_PID is not None and os.getpid() != _HOST_PID and os.getppid() == 1


def reported_pid() -> int:
    """The pid the daemon knows this process by: inside the sandbox's pid namespace
    ``os.getpid()`` is 2."""
    return _HOST_PID if _HOST_PID is not None else os.getpid()


def dump_stacks_on_sigusr1(pid: int | None = None, dir_fd: int | None = None) -> list[int]:
    """``asynctask inspect``: SIGUSR1 appends every thread's stack to the daemon's file for this
    worker. faulthandler writes from a C signal handler, so the task runs on undisturbed.
    Returns the file's descriptor, which the worker keeps."""
    directory = os.environ.get(STACK_DIR_ENV)
    if not directory:
        return []
    import faulthandler
    import signal

    name = f"stack-{os.getpid() if pid is None else pid}.txt"
    try:
        # Kept open for the worker's life: faulthandler holds the descriptor, not the object.
        # Private, and never through a symlink: the run dir is the daemon's (home.py).
        nofollow = os.O_NOFOLLOW | os.O_CLOEXEC
        append = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK  # a FIFO: no block
        own_dir = dir_fd is None
        if dir_fd is None:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | nofollow)
        try:
            fd = os.open(name, append | nofollow, 0o600, dir_fd=dir_fd)
        finally:
            if own_dir:
                os.close(dir_fd)
        stack_file = open(fd, "ab", buffering=0)  # noqa: SIM115
        faulthandler.register(signal.SIGUSR1, file=stack_file, all_threads=True, chain=False)
        _KEEP.append(stack_file)
    except OSError as exc:
        print(f"asynctask worker {os.getpid()}: no stack dumps: {exc}", file=sys.stderr)
        return []
    return [fd]


_KEEP: list[Any] = []


def extend_sys_path() -> None:
    """Configured paths, then the working directory, ahead of everything else on sys.path."""
    extra = [entry for entry in os.environ.get(PATHS_ENV, "").split(os.pathsep) if entry]
    front = [*extra, os.getcwd()]
    sys.path[:] = front + [entry for entry in sys.path if entry not in front and entry != ""]


def in_sandbox() -> bool:
    """Whether this process entered the sandbox, which forked it: its host pid is known."""
    return _HOST_PID is not None
