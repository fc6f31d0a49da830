"""Resource limits for sandboxed workers: rlimits inside the worker, cgroups around it.

Two mechanisms, because neither is enough on its own:

* **rlimits** (``apply_rlimits``) work for any user on any kernel, but each caps one process,
  and they count the wrong thing for memory: ``RLIMIT_AS`` is address space, not RAM. glibc
  reserves 64 MiB of address space per thread arena and every thread stack counts in full, so a
  worker running sync tasks on threads reaches an ``RLIMIT_AS`` far below its real use
  (``MALLOC_ARENA_MAX=2`` in the worker's environment narrows the gap). Breaching it raises
  ``MemoryError`` in the task, which is at least a clean, attributable failure.
* **cgroups** (``cgroups.py``) count what a worker and everything it forks really use, and
  they are the only thing that contains a fork bomb when the daemon runs as root (the kernel
  ignores ``RLIMIT_NPROC`` for root). The daemon sets them around the worker; this module is
  what the worker sets on itself.

``RLIMIT_CPU`` counts the whole life of a process: a worker reused across attempts carries its
CPU time over, so the pool starts a worker of its own for an attempt with a CPU limit.
``classify_exit`` is here because it reads an exit status against these rlimits.

This module is stdlib plus ``asynctask.resources``, because the worker child imports it at
start-up.
"""

from __future__ import annotations

import math
import os
import resource
import signal
from typing import Final

from asynctask.resources import Limits

__all__ = [
    "Limits",
    "apply_rlimits",
    "classify_exit",
    "isolate",
]

# --- rlimits, set by the worker on itself -----------------------------------------------------


def apply_rlimits(limits: Limits, *, address_space: bool = True) -> None:
    """Sandbox the calling process; the worker child calls it first, before any task code.

    Soft = hard everywhere but CPU, so task code cannot raise its own soft limit back up, and
    hard limits only ever go down: an unprivileged process could not raise them anyway, and a
    limit the daemon itself runs under must keep holding its workers.

    ``address_space=False`` leaves ``RLIMIT_AS`` alone, for a worker whose memory cgroup already
    holds it: the cgroup counts real memory, while ``RLIMIT_AS`` would fail a threaded task on
    address space it only reserved.

    What each limit does to the task:

    * memory: allocations past ``RLIMIT_AS`` fail, i.e. ``MemoryError`` in Python code.
    * cpu: ``SIGXCPU`` at ``ceil(cpu)`` seconds, which kills the process (no core dump: core is 0);
      if task code catches or ignores it, the kernel sends ``SIGKILL`` a second later (hard =
      soft + 1). Whole seconds only: the kernel checks CPU rlimits once per second of CPU time.
    * open_files: ``open()`` and ``socket()`` fail with ``EMFILE``.
    * processes: ``RLIMIT_NPROC`` counts every process of the real user ID, not this worker's
      descendants, and the kernel ignores it for root (and any process with
      ``CAP_SYS_RESOURCE``/``CAP_SYS_ADMIN``). As root only the pids cgroup contains a fork bomb.
    * file_size: CPython ignores ``SIGXFSZ`` from start-up, so a write past ``RLIMIT_FSIZE``
      raises ``OSError(EFBIG)`` instead of killing the worker. Non-Python programs the task
      starts get ``SIGXFSZ`` at its default (``subprocess`` restores it) and die of it.
    """
    _lower(resource.RLIMIT_CORE, 0, 0)
    if limits.memory is not None and address_space:
        _lower(resource.RLIMIT_AS, limits.memory, limits.memory)
    if limits.cpu is not None:
        seconds = math.ceil(limits.cpu)
        _lower(resource.RLIMIT_CPU, seconds, seconds + 1)
    if limits.open_files is not None:
        _lower(resource.RLIMIT_NOFILE, limits.open_files, limits.open_files)
    if limits.processes is not None:
        _lower(resource.RLIMIT_NPROC, limits.processes, limits.processes)
    if limits.file_size is not None:
        _lower(resource.RLIMIT_FSIZE, limits.file_size, limits.file_size)


_CLONE_NEWNS: Final = 0x00020000
_CLONE_NEWUSER: Final = 0x10000000
_CLONE_NEWNET: Final = 0x40000000
_MS_NOSUID: Final = 2
_MS_NODEV: Final = 4
_MS_REC: Final = 16384
_MS_PRIVATE: Final = 1 << 18


def isolate(limits: Limits) -> None:
    """The hardening of ``limits``, applied by the worker to itself after ``apply_rlimits``:
    ``OSError`` if the machine does not allow it, and the worker then refuses to start -
    a worker that was asked for no network must never run with one.

    * ``network=False``: a network namespace of its own (no interfaces up, not even loopback).
    * ``private_tmp``: a mount namespace whose mounts do not propagate back, with an empty
      tmpfs on /tmp.
    * ``user``: setgroups/setgid/setuid to that account, last (it needs root for the rest).

    As root the namespaces need nothing else; as another user a user namespace comes first
    (mapping the user to itself), which gives the capabilities the rest needs inside it.
    Python 3.11 has no ``os.unshare``, hence ``ctypes``.
    """
    if not limits.isolated:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    flags = (_CLONE_NEWNET if limits.network is False else 0) | (
        _CLONE_NEWNS if limits.private_tmp else 0
    )
    if flags:
        uid, gid = os.getuid(), os.getgid()
        if os.geteuid() != 0:
            flags |= _CLONE_NEWUSER
        if libc.unshare(flags) != 0:
            _fail(ctypes.get_errno(), "unshare")
        if flags & _CLONE_NEWUSER:
            _write_file("/proc/self/setgroups", "deny")
            _write_file("/proc/self/uid_map", f"{uid} {uid} 1")
            _write_file("/proc/self/gid_map", f"{gid} {gid} 1")
    if limits.private_tmp:
        if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            _fail(ctypes.get_errno(), "making / private")
        options = b"mode=1777,size=25%"
        if libc.mount(b"tmpfs", b"/tmp", b"tmpfs", _MS_NOSUID | _MS_NODEV, options) != 0:
            _fail(ctypes.get_errno(), "mounting a private /tmp")
    if limits.user is not None:
        import pwd

        try:
            entry = (
                pwd.getpwuid(int(limits.user)) if limits.user.isdigit()
                else pwd.getpwnam(limits.user)
            )  # fmt: skip
        except KeyError:
            raise OSError(f"no such user {limits.user!r}") from None
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)


def _fail(errno_value: int, doing: str) -> None:
    raise OSError(errno_value, f"{doing}: {os.strerror(errno_value)}")


def _write_file(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _lower(which: int, soft: int, hard: int) -> None:
    _, current = resource.getrlimit(which)
    if current != resource.RLIM_INFINITY:
        hard = min(hard, current)
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))


def classify_exit(
    returncode: int | None, limits: Limits, cpu_seconds_used: float | None = None
) -> str | None:
    """Which limit ended a worker, judged from its exit status alone; ``None``: none of them.

    ``returncode`` is as ``subprocess`` and ``asyncio`` give it: ``-N`` for death by signal N.
    ``SIGXCPU`` and ``SIGXFSZ`` come only from rlimits, so they decide alone. ``SIGKILL`` is
    ambiguous (the OOM killer, the pool's own timeout kill, an operator), so it counts as the
    CPU limit only when the CPU time used, e.g. ``Cgroup.cpu_seconds()``, reached the limit.
    Hence the order callers follow: a kill the pool made itself is not asked about, and
    ``Cgroup.oom_killed()`` is checked first (it says ``memory_limit``).
    """
    if returncode is None or returncode >= 0:
        return None
    signum = -returncode
    if signum == signal.SIGXCPU:
        return "cpu_limit"
    if signum == signal.SIGXFSZ:
        return "file_size_limit"
    if (
        signum == signal.SIGKILL
        and limits.cpu is not None
        and cpu_seconds_used is not None
        and cpu_seconds_used >= limits.cpu
    ):
        return "cpu_limit"
    return None
