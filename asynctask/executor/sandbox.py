"""The worker sandbox: a worker that is not the daemon, entered before any task code runs.

Theory of operation
-------------------
Every worker runs with the daemon's authority unless it gives it up. The daemon decides how
(``asynctask/isolation.py`` probes at start-up and logs the choice) and hands each worker a spec
in ``ASYNCTASK_SANDBOX`` (JSON, ``Spec``); ``child.main`` calls ``enter`` right after its
rlimits. ``enter`` returns only in the process that will run tasks.

The outcomes it must give: a task cannot open the home (database, WAL, logs), signal or ptrace
the daemon or another worker, read their ``/proc/<pid>/environ``, write system files, or write
cgroup files. Dropping root's capabilities is not enough for that: a process whose uid is still
0 owns every root-owned file (DAC needs no capability for the owner), may signal every uid-0
process, and may write ``/proc/sys``, ``/proc/sysrq-trigger`` and block devices owned by root.
So the view of the system changes too. The steps, in this order, and why that order:

1. **Before any namespace** (the "outer" process, the one the pool started): with
   ``network = false``, every bound path socket in ``/proc/net/unix``, read while still in the
   host's network namespace.
2. ``unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC [| CLONE_NEWNET] [| CLONE_NEWUSER])``
   (IPC: System V shared memory and queues of the host's uid-0 processes would be the worker's
   to read and write too). A user namespace only when the daemon is not root (it maps the uid
   to itself and gives the capabilities the mounts need, inside it only). Then
   ``mount("/", MS_REC | MS_PRIVATE)``: nothing we mount propagates back to the host. Then an
   ``O_PATH`` descriptor on what will be hidden but must stay reachable: the daemon's socket,
   the safe device nodes (``null``, ``zero``, ``full``, ``random``, ``urandom``, ``tty``),
   ``/dev/pts`` and ``/dev/shm``. After the unshare, not before: a bind mount's source must be
   a mount of the caller's namespace.
3. **Mounts** (still with every capability):

   * ``/tmp``, ``/var/tmp`` and ``/dev/shm`` are bind-mounted onto themselves, so that they are
     mounts of their own whose read-only flag can be cleared again (last bullet); they stay the
     host's directories (shared with the host and other workers, as before). ``private_tmp``
     mounts an empty tmpfs on ``/tmp`` instead.
   * Each hidden directory (the home) gets an empty tmpfs over it; the daemon's socket, when it
     lives there, is bind-mounted back at its own path from the descriptor of step 1, so a task
     can still be a client of its daemon (the daemon decides what it may do). Nothing else of
     the home is reachable by path; descriptors the worker needs (its log, its stack file) were
     opened before.
   * ``/dev`` becomes a small tmpfs holding only the safe devices of step 1 (bind mounts) and the
     usual symlinks (``fd``, ``stdin``, ``ptmx``...). The host's ``/dev`` holds the disk: as uid
     0 a worker could read the database off ``/dev/vda``, capabilities or not, and a read-only
     mount does not stop writes to a device node.
   * ``network = false``: ``/dev/null`` is bind-mounted over every path socket found in step 1,
     and the daemon's socket is not bound back. Why that and not Landlock: ``connect()`` to a path
     socket needs write permission on the socket's inode, not on its mount, so a read-only tree
     does not stop it, and Landlock's scoping (ABI 6) covers abstract sockets only - which the
     new network namespace already separates. What this does not cover: a path socket created
     after the worker started (in ``/tmp``, say); such a socket must be connectable by the
     worker's uid too, which rules out the daemon's (0600, and in the hidden home).
   * ``mount_setattr("/", AT_RECURSIVE, MOUNT_ATTR_RDONLY)`` (syscall 442), then the flag
     cleared again on the writable directories. A kernel without ``mount_setattr`` (before
     5.12) gets the same by remounting every mount of ``/proc/self/mountinfo`` read-only.
     ``/sys`` (so ``/sys/fs/cgroup/**/cgroup.procs``), ``/proc/sys`` and ``/etc`` are read-only
     from here on.
4. ``fork``. The child is pid 1 of the new pid namespace, a small **init**: it forks the worker
   (pid 2) and then only reaps, forwards ``SIGTERM``/``SIGINT``/``SIGHUP``/``SIGQUIT``/``SIGUSR2``
   to the worker, and when the worker ends writes its wait status to a pipe and exits. The
   kernel then kills whatever else lives in the namespace: a double-forked ``setsid`` grandchild
   dies with its worker even without a cgroup. The worker is not pid 1 itself because pid 1
   ignores every signal it has no handler for, ``SIGKILL`` from itself included, and the kernel's
   ``SIGXCPU`` (the CPU limit): a task's ``os.kill(os.getpid(), SIGKILL)`` would do nothing.
   The outer process waits for init, forwards the same signals to it, and ends the way the
   worker ended (the same exit code, or the same signal), so the pool's ``classify_exit`` sees
   ``SIGXCPU`` as before. Both give up their capabilities too and become non-dumpable.
5. **In the worker** (pid 2): ``readlink("/proc/self")`` on the host's ``/proc``, still mounted,
   gives the worker's host pid, which it reports in its ``ready`` frame (the pool uses it for
   ``inspect``, stacks and RSS). Then a fresh ``/proc`` for the new pid namespace (read-only:
   ``/proc/sys`` and ``/proc/sysrq-trigger`` are owner-writable for uid 0): the daemon and every
   other worker are not in it, so they cannot be named, signalled, ptraced or read.
6. **Privileges**, last, because everything before needs them: every capability dropped from the
   bounding set (``PR_CAPBSET_DROP`` up to ``cap_last_cap``), the ambient set cleared, then
   ``setgroups``/``setresgid``/``setresuid`` when the spec or the ``user`` limit names a uid,
   then ``capset`` with empty sets and ``PR_SET_NO_NEW_PRIVS``: nothing the task executes can
   gain a capability back (a setuid binary included). Then every inherited descriptor but the
   worker's own is closed.

**Without namespaces** (the daemon's probe found none usable, ``Spec.namespaces`` false): no
fork, no mounts; step 6, then Landlock where the kernel has it (``landlock.py``), which gives
the same outcomes by access rules but for path Unix sockets.

A task could still create a user namespace of its own and hold capabilities inside it; they do
not reach anything above: the mounts it inherited are locked (it cannot unmount the tmpfs over
the home, nor make a read-only mount writable again), and the daemon is not in its pid namespace.

Cost (2 cores, measured 2026-12-07): a worker is ready in 62 ms instead of 49 (median of 40
starts; importing ``ctypes`` is 5 ms of it, the namespaces and mounts 3-5 ms, the two forks
the rest), and holds about 4 MiB more (PSS): the outer process and init are forks sharing the
worker's pages, with about 1 MiB of their own each.

This module is stdlib only (``ctypes``), because the worker child imports it at start-up.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from asynctask.executor.syscalls import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    ENOSYS,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    PR_SET_DUMPABLE,
    PR_SET_PDEATHSIG,
    SandboxError,
    capabilities,
    check,
    drop_bounding_set,
    drop_capabilities,
    lib,
    mount,
    prctl,
    set_readonly,
)

__all__ = ["SANDBOX_ENV", "SandboxError", "Spec", "enter", "listening_socket_paths"]

#: The worker's sandbox spec, JSON of ``Spec.to_json()``; absent: no sandbox (the pool alone).
SANDBOX_ENV: Final = "ASYNCTASK_SANDBOX"


#: Directories that stay writable (and shared with the host): what tasks use as scratch space.
WRITABLE: Final = ("/tmp", "/var/tmp", "/dev/shm")
_DEVICES: Final = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_DIRS: Final = ("pts", "shm")
_DEV_LINKS: Final = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)
#: Signals init and the outer process pass on to the worker (killpg reaches all three anyway;
#: these matter when only one of them is signalled). SIGUSR1 goes to the worker's host pid.
_FORWARDED: Final = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR2,
)


@dataclass(frozen=True, slots=True)
class Spec:
    """What ``enter`` builds; the daemon's ``isolation.Isolation.spec`` makes it.

    ``hide``: directories replaced by an empty tmpfs (the home). ``socket``: the daemon's socket,
    bound back inside a hidden directory (not with ``network = false``). ``uid``/``gid``: run as
    that user (per-tenant uid mode); ``None``: keep the daemon's uid without capabilities.
    """

    hide: tuple[str, ...] = ()
    socket: str | None = None
    uid: int | None = None
    gid: int | None = None
    writable: tuple[str, ...] = WRITABLE
    #: False where the machine allows no namespaces: capabilities dropped and no_new_privs
    #: only (the daemon logs that tasks can then reach what its uid owns).
    namespaces: bool = True

    def to_json(self) -> str:
        return json.dumps(
            {
                "hide": list(self.hide),
                "socket": self.socket,
                "uid": self.uid,
                "gid": self.gid,
                "writable": list(self.writable),
                "namespaces": self.namespaces,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Spec:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError(f"the sandbox spec must be a JSON object, not {text!r}")
        uid, gid = raw.get("uid"), raw.get("gid")
        for name, value in (("uid", uid), ("gid", gid)):
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"sandbox {name} must be a uid number, not {value!r}")
        return cls(
            hide=tuple(str(p) for p in raw.get("hide") or ()),
            socket=raw.get("socket") or None,
            uid=uid,
            gid=gid if gid is not None else uid,
            writable=tuple(str(p) for p in raw.get("writable") or WRITABLE),
            namespaces=raw.get("namespaces", True) is not False,
        )


@dataclass(slots=True)
class Entered:
    """What the worker learns from ``enter``: its pid as the daemon sees it."""

    host_pid: int
    landlock: int = 0  # the Landlock ABI restricting it (without namespaces only)


# --- what to hide, found before the namespaces --------------------------------------------------


def listening_socket_paths(table: str = "/proc/net/unix") -> list[str]:
    """Every bound path (not abstract) Unix socket in the calling network namespace."""
    paths = []
    try:
        with open(table, encoding="utf-8", errors="surrogateescape") as lines:
            next(lines, None)
            for line in lines:
                parts = line.rstrip("\n").split(None, 7)
                if len(parts) == 8 and parts[7].startswith("/"):
                    paths.append(parts[7])
    except OSError:
        pass
    return sorted(set(paths))


def _open_path(path: str, directory: bool = False) -> int | None:
    flags = os.O_PATH | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0)
    try:
        return os.open(path, flags)
    except OSError:
        return None


def _under(path: str, directory: str) -> bool:
    directory = directory.rstrip("/") or "/"
    return path == directory or path.startswith(directory + "/")


# --- entering it --------------------------------------------------------------------------------


def enter(
    spec: Spec,
    *,
    network: bool = True,
    private_tmp: bool = False,
    user: str | None = None,
    keep_fds: Iterable[int] = (),
    before_drop: Callable[[int], Iterable[int]] | None = None,
) -> Entered:
    """Enter the sandbox (see the module docstring); returns in the worker process only.

    ``network``/``private_tmp``/``user`` are the worker's ``Limits`` hardening. ``keep_fds``
    are the worker's own descriptors (its frame socket, say); every other inherited one is
    closed. ``before_drop(host_pid)`` runs in the worker while it still has its privileges (to
    open its stack file) and returns more descriptors to keep. ``SandboxError`` when any step
    fails before the fork; after it, init and the outer process only wait and report, and a
    failure in the worker ends it with the reason on stderr.
    """
    if not sys.platform.startswith("linux"):
        raise SandboxError(ENOSYS, "the worker sandbox needs Linux")
    uid, gid = spec.uid, spec.gid
    if user is not None:
        uid, gid = _resolve_user(user)
    root = os.geteuid() == 0
    if not spec.namespaces:
        return _without_namespaces(spec, set(keep_fds), uid, gid, before_drop)
    sockets = [] if network else listening_socket_paths()
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | (0 if network else CLONE_NEWNET)
    if not root:
        flags |= CLONE_NEWUSER
    real_uid, real_gid = os.getuid(), os.getgid()
    check(lib().unshare(ctypes.c_int(flags)), "unshare")
    if not root:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{real_uid} {real_uid} 1")
        _write("/proc/self/gid_map", f"{real_gid} {real_gid} 1")
    mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    # Opened in the new mount namespace: a bind mount's source must be one of its mounts.
    socket_fd = None
    if network and spec.socket and any(_under(spec.socket, d) for d in spec.hide):
        socket_fd = _open_path(spec.socket)  # absent: the daemon is not listening (yet)
    dev_fds = {name: _open_path(f"/dev/{name}") for name in _DEVICES}
    dev_dirs = {name: _open_path(f"/dev/{name}", directory=True) for name in _DEV_DIRS}
    writable = [os.path.realpath(p) for p in spec.writable if os.path.isdir(p)]
    writable = list(dict.fromkeys(writable))
    for path in writable:
        if not _under(path, "/dev"):  # /dev/shm comes back in the new /dev
            mount(path, path, None, MS_BIND | MS_REC, None)
    if private_tmp:
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=25%")
    # Under a private /tmp the home is not there to hide (nor its socket to show).
    hidden = [p for p in (os.path.realpath(p) for p in spec.hide) if os.path.isdir(p)]
    for path in hidden:
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k")
    if socket_fd is not None and spec.socket is not None and hidden:
        _bind_file(socket_fd, spec.socket)
    _minimal_dev(dev_fds, dev_dirs)
    for path in sockets:
        if not any(_under(path, d) for d in hidden):
            with contextlib.suppress(OSError):  # gone since the table was read, or a dangler
                mount("/dev/null", path, None, MS_BIND, None)
    set_readonly("/", True)
    for path in writable:
        if not _under(path, "/dev") or path == "/dev/shm":
            set_readonly(path, False)
    for path in hidden:  # a hidden home under /tmp must not be writable either
        set_readonly(path, True)
    for fd in [*dev_fds.values(), *dev_dirs.values(), socket_fd]:
        if fd is not None:
            os.close(fd)
    _reenter_cwd(hidden)
    keep = {0, 1, 2, *keep_fds}
    return _fork_init(keep, uid, gid, before_drop)


def _reenter_cwd(hidden: list[str]) -> None:
    """Enter the working directory again, by its path, through the new mounts.

    The process's working directory is still the directory it was before the mounts, on the
    mount below them: under ``/tmp`` that is the read-only root file system, not the writable
    bind mount (a relative write failed with EROFS where the same absolute path worked), and in
    a hidden home it would be the home itself, readable by relative paths past the tmpfs that
    hides it. A directory that is hidden now, or gone, leaves the worker in ``/``."""
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "/"
    if any(_under(cwd, path) for path in hidden):
        cwd = "/"
    try:
        os.chdir(cwd)
    except OSError:
        os.chdir("/")


def _without_namespaces(
    spec: Spec,
    keep: set[int],
    uid: int | None,
    gid: int | None,
    before_drop: Callable[[int], Iterable[int]] | None,
) -> Entered:
    """What is left without namespaces: no capabilities, no_new_privs, Landlock where the
    kernel has it (``landlock.py``: the same outcomes by access rules), no inherited fds."""
    from asynctask.executor import landlock

    pid = os.getpid()
    keep |= {0, 1, 2}
    if before_drop is not None:
        keep.update(before_drop(pid))
    if os.geteuid() == 0:
        drop_bounding_set()
    if uid is not None:
        os.setgroups([])
        os.setresgid(*(3 * [gid if gid is not None else uid]))
        os.setresuid(uid, uid, uid)
    drop_capabilities()
    version = landlock.restrict(spec.hide, spec.writable)
    _close_all_but(keep)
    return Entered(pid, version)


def _resolve_user(user: str) -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise SandboxError(22, f"no such user {user!r}") from None
    return entry.pw_uid, entry.pw_gid


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _bind_file(fd: int, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND, None)


def _minimal_dev(devices: dict[str, int | None], dirs: dict[str, int | None]) -> None:
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for name, fd in devices.items():
        if fd is not None:
            _bind_file(fd, f"/dev/{name}")
    for name, fd in dirs.items():
        if fd is not None:
            os.mkdir(f"/dev/{name}", 0o755)
            mount(f"/proc/self/fd/{fd}", f"/dev/{name}", None, MS_BIND | MS_REC, None)
    for name, target in _DEV_LINKS:
        with contextlib.suppress(FileExistsError):
            os.symlink(target, f"/dev/{name}")


def _fork_init(
    keep: set[int],
    uid: int | None,
    gid: int | None,
    before_drop: Callable[[int], Iterable[int]] | None,
) -> Entered:
    read_end, write_end = os.pipe()
    init = os.fork()
    if init:
        os.close(write_end)
        _outer(init, read_end)  # never returns
    os.close(read_end)
    _die_with_parent()
    worker = os.fork()
    if worker:
        _init(worker, write_end, keep)  # never returns
    os.close(write_end)
    _die_with_parent()
    try:
        host_pid = int(os.readlink("/proc/self"))  # the host's /proc, still mounted here
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, None)
        if before_drop is not None:
            keep.update(before_drop(host_pid))
        drop_bounding_set()
        if uid is not None:
            os.setgroups([])
            os.setresgid(*(3 * [gid if gid is not None else uid]))
            os.setresuid(uid, uid, uid)
            _die_with_parent()  # a uid change clears the parent-death signal
        drop_capabilities()
        _close_all_but(keep)
    except BaseException as exc:
        print(f"asynctask worker: cannot enter the sandbox: {exc}", file=sys.stderr, flush=True)
        os._exit(2)
    return Entered(host_pid)


def _die_with_parent() -> None:
    lib().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _unprivileged() -> None:
    """init and the outer process: no capabilities, and not ptrace-able by the task."""
    drop_bounding_set()
    drop_capabilities()
    prctl(PR_SET_DUMPABLE, 0, "making the process non-dumpable")


def _forward_to(pid: int) -> None:
    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)

    for signum in _FORWARDED:
        signal.signal(signum, forward)


def _init(worker: int, status_pipe: int, keep: set[int]) -> None:
    """pid 1: reap everything, pass signals on, report the worker's end, exit."""
    try:
        _forward_to(worker)
        _close_all_but({0, 1, 2, status_pipe})
        _unprivileged()
        status = 0
        while True:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid == worker:
                break
        os.write(status_pipe, struct.pack("=i", status))
    except BaseException:
        os._exit(70)
    os._exit(0)  # the kernel now kills whatever is left in the namespace


def _outer(init: int, status_pipe: int) -> None:
    """The process the pool started: wait for init and end as the worker ended."""
    try:
        _forward_to(init)
        _close_all_but({0, 1, 2, status_pipe})
        with contextlib.suppress(SandboxError):
            _unprivileged()
        while True:
            try:
                _, status = os.waitpid(init, 0)
                break
            except ChildProcessError:
                status = 0
                break
        reported = os.read(status_pipe, 4)
        if len(reported) == 4:
            (status,) = struct.unpack("=i", reported)
    except BaseException:
        os._exit(70)
    _end_like(status)


def _end_like(status: int) -> None:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler
            signal.signal(signum, signal.SIG_DFL)
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)  # a signal whose default is to be ignored
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 70)


def _close_all_but(keep: set[int]) -> None:
    try:
        fds = [int(entry) for entry in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def spec_from_env() -> Spec | None:
    raw = os.environ.get(SANDBOX_ENV)
    return Spec.from_json(raw) if raw else None


def probe() -> int:
    """``python -m asynctask.executor.sandbox``: enter the sandbox of ``ASYNCTASK_SANDBOX`` and
    report what a worker would see; the daemon runs it once at start-up."""
    spec = spec_from_env() or Spec()
    try:
        entered = enter(spec)
    except OSError as exc:
        print(f"cannot enter the sandbox: {exc}", flush=True)
        return 1
    print(json.dumps({"host_pid": entered.host_pid, "pid": os.getpid(), "caps": capabilities(),
                      "uid": os.getuid(), "landlock": entered.landlock}), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(probe())
