"""cgroups around each worker: what a worker and everything it forks really use.

They are the only thing that contains a fork bomb when the daemon runs as root (the kernel
ignores ``RLIMIT_NPROC`` for root), and the only memory count that is RAM, not address space
(``limits.py`` explains why rlimits alone fall short). They need a writable hierarchy, so
``detect_cgroups`` probes once at start-up and the daemon logs ``CgroupSupport.description``.

How the pool uses this (one cgroup per worker, and a worker serves one limit profile,
``Limits.key``)::

    support = detect_cgroups()                      # once; never raises
    group = support.create(f"w{n}", limits)         # None: rlimits alone
    proc = start_worker()                           # whose first act is apply_rlimits(limits)
    group.add(proc.pid)                             # before it gets any work
    ...                                             # it exits
    why = "memory_limit" if group.oom_killed() else classify_exit(rc, limits, group.cpu_seconds())
    group.remove()

``add`` happens after the worker has started, so memory it allocated before that stays charged
to the daemon's group; that is only the interpreter's start-up, and everything the worker forks
once it is in the group is in the group too.

Groups live under the cgroup the daemon itself runs in (``<hierarchy>/<own group>/asynctask/
<name>``), not at the top of the hierarchy: the daemon's own limits keep holding its workers, and
a daemon started inside a container or a systemd service stays inside what it was given.

Only the daemon uses this module; the worker child never imports it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal

from asynctask.resources import MIN_MEMORY, Limits

__all__ = [
    "Cgroup",
    "CgroupSupport",
    "detect_cgroups",
    "sweep_stale",
    "worker_group_name",
]

Controller = Literal["memory", "cpu", "pids"]
_CONTROLLERS: Final[tuple[Controller, ...]] = ("memory", "cpu", "pids")
# CPU time is accounted, never throttled (CPU seconds are an rlimit): under v1 that is the
# cpuacct hierarchy, under v2 ``cpu.stat``, which every v2 group has without any controller.
_V1_HIERARCHY: Final[dict[Controller, str]] = {"memory": "memory", "cpu": "cpuacct", "pids": "pids"}
_V2_ENABLE: Final[dict[Controller, str | None]] = {"memory": "memory", "cpu": None, "pids": "pids"}
_PARENT: Final = "asynctask"
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_REMOVE_WITHIN: Final = 1.0


@dataclass(frozen=True, slots=True)
class _Mount:
    point: str
    root: str
    fstype: str
    options: frozenset[str]


@dataclass(frozen=True, slots=True)
class CgroupSupport:
    """What ``detect_cgroups`` found usable; ``create`` makes a worker's group from it.

    ``cpu`` means CPU-time accounting (``Cgroup.cpu_seconds``), not a quota. ``parents`` maps
    each usable controller to the directory its worker groups go in (one per v1 hierarchy, the
    same one for all under v2).
    """

    version: Literal["v1", "v2", "none"]
    memory: bool
    cpu: bool
    pids: bool
    description: str
    parents: tuple[tuple[Controller, str], ...] = ()

    def create(self, name: str, limits: Limits) -> Cgroup | None:
        """A group for one worker, limits written; ``None`` when no usable controller applies.

        ``ValueError`` for an unsafe ``name``: it becomes a directory name. ``OSError`` when the
        kernel refuses the group after a successful probe (the partial group is removed first):
        the caller logs it and runs that worker on rlimits alone. A leftover group of the same
        name (from a daemon that crashed) is emptied and replaced.
        """
        check_group_name(name)
        if self.version == "none":
            return None
        parents = dict(self.parents)
        wanted = {
            "memory": limits.memory is not None,
            "cpu": limits.cpu is not None,
            "pids": limits.processes is not None,
        }
        dirs = {
            c: os.path.join(parents[c], name) for c in _CONTROLLERS if wanted[c] and c in parents
        }
        if not dirs:
            return None
        group = Cgroup(self.version, name, dirs)
        try:
            group._build(limits)
        except OSError:
            group.remove()
            raise
        return group


def check_group_name(name: str) -> None:
    """``ValueError`` unless ``name`` is one plain path component (``.`` and ``..`` are not)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name.strip(".") == "":
        raise ValueError(f"cgroup name must match [A-Za-z0-9_.-]{{1,64}} and not be dots: {name!r}")


class Cgroup:
    """One worker's group: a directory per v1 hierarchy, or one directory under v2.

    Made by ``CgroupSupport.create``. Read ``oom_killed``, ``memory_peak`` and ``cpu_seconds``
    before ``remove``: the counters go with the directories.
    """

    __slots__ = ("_dirs", "_failcnt_base", "name", "version")

    def __init__(self, version: Literal["v1", "v2"], name: str, dirs: dict[Controller, str]):
        self.version = version
        self.name = name
        self._dirs = dirs
        self._failcnt_base = 0

    def __repr__(self) -> str:
        return f"<Cgroup {self.name} {self.version}: {', '.join(self._dirs)}>"

    def __enter__(self) -> Cgroup:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    @property
    def directories(self) -> list[str]:
        """Each directory once (under v2 every controller shares one)."""
        return list(dict.fromkeys(self._dirs.values()))

    def _build(self, limits: Limits) -> None:
        for controller, path in self._dirs.items():
            _ensure_parent(self.version, os.path.dirname(path), controller)
        for path in self.directories:
            try:
                os.mkdir(path)
            except FileExistsError:
                _empty_and_remove(path, time.monotonic() + _REMOVE_WITHIN)
                os.mkdir(path)
        memory_dir = self._dirs.get("memory")
        if memory_dir is not None and limits.memory is not None:
            if self.version == "v1":
                _write(memory_dir, "memory.limit_in_bytes", limits.memory)
                # Without memsw the group would spill into swap instead of meeting its limit;
                # absent when the kernel does not account swap, then swappiness 0 is the
                # best we can do.
                if os.path.exists(os.path.join(memory_dir, "memory.memsw.limit_in_bytes")):
                    _write(memory_dir, "memory.memsw.limit_in_bytes", limits.memory)
                else:
                    _write_quietly(memory_dir, "memory.swappiness", 0)
                self._failcnt_base = _read_int(memory_dir, "memory.failcnt") or 0
            else:
                _write(memory_dir, "memory.max", limits.memory)
                _write_quietly(memory_dir, "memory.swap.max", 0)
                # One OOM kill takes the whole group, so no half of a worker limps on.
                _write_quietly(memory_dir, "memory.oom.group", 1)
        pids_dir = self._dirs.get("pids")
        if pids_dir is not None and limits.processes is not None:
            _write(pids_dir, "pids.max", limits.processes)

    def add(self, pid: int) -> None:
        """Move ``pid`` (all its threads) into every directory; ``OSError`` if it is gone."""
        for path in self.directories:
            _write(path, "cgroup.procs", pid)

    def pids(self) -> set[int]:
        """The processes in the group now (empty once removed)."""
        found: set[int] = set()
        for path in self.directories:
            found.update(_procs(path))
        return found

    def oom_killed(self) -> bool:
        """Whether the kernel killed something here for want of memory.

        v1 kernels before 4.13 have no ``oom_kill`` count; hitting the limit (``failcnt`` above
        its value at creation) is the nearest sign, though reclaim may have avoided the kill.
        """
        path = self._dirs.get("memory")
        if path is None:
            return False
        if self.version == "v2":
            return _read_keyed(path, "memory.events").get("oom_kill", 0) > 0
        control = _read_keyed(path, "memory.oom_control")
        if "oom_kill" in control:
            return control["oom_kill"] > 0
        failcnt = _read_int(path, "memory.failcnt")
        return failcnt is not None and failcnt > self._failcnt_base

    def memory_peak(self) -> int | None:
        """Most memory the group held at once, in bytes; ``None`` if the kernel does not say."""
        path = self._dirs.get("memory")
        if path is None:
            return None
        return _read_int(
            path, "memory.peak" if self.version == "v2" else "memory.max_usage_in_bytes"
        )

    def cpu_seconds(self) -> float | None:
        """CPU time used by everything in the group so far, children included."""
        if self.version == "v2":
            path = next(iter(self._dirs.values()))
            usec = _read_keyed(path, "cpu.stat").get("usage_usec")
            return None if usec is None else usec / 1e6
        path_v1 = self._dirs.get("cpu")
        nanoseconds = None if path_v1 is None else _read_int(path_v1, "cpuacct.usage")
        return None if nanoseconds is None else nanoseconds / 1e9

    def remove(self) -> bool:
        """Kill whatever is left inside and delete the directories; never raises.

        Returns whether every directory is gone. A group holding processes cannot be removed,
        and dying processes leave it a moment after ``SIGKILL``, hence the retries (within about
        a second). The kill goes to the group's own list, so a worker's forgotten grandchildren
        die with it.
        """
        deadline = time.monotonic() + _REMOVE_WITHIN
        return all([_empty_and_remove(path, deadline) for path in self.directories])


def _empty_and_remove(path: str, deadline: float) -> bool:
    while True:
        try:
            if os.path.exists(os.path.join(path, "cgroup.kill")):
                _write(path, "cgroup.kill", 1)  # v2, Linux 5.14: atomic, even against forks
            else:
                for pid in _procs(path):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def worker_group_name(daemon_pid: int, worker_pid: int) -> str:
    """The group of one worker, named after its daemon too: daemons on one machine share the
    ``asynctask`` parent, and ``sweep_stale`` must only touch groups of daemons that are gone."""
    return f"d{daemon_pid}-w{worker_pid}"


_WORKER_GROUP_RE: Final = re.compile(r"d(\d+)-w\d+")


def sweep_stale(support: CgroupSupport) -> int:
    """Remove worker groups left by daemons that died without cleaning up (``kill -9``);
    returns how many. A group whose daemon still runs is left alone."""
    removed = 0
    deadline = time.monotonic() + _REMOVE_WITHIN
    for _, parent in support.parents:
        try:
            entries = os.listdir(parent)
        except OSError:
            continue
        for entry in entries:
            match = _WORKER_GROUP_RE.fullmatch(entry)
            if match is None or _alive(int(match.group(1))):
                continue
            if _empty_and_remove(os.path.join(parent, entry), deadline):
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- detection ---------------------------------------------------------------------------------


def detect_cgroups(
    root: str = "/sys/fs/cgroup", *, force_rlimits_only: bool = False, proc_self: str = "/proc/self"
) -> CgroupSupport:
    """Which cgroup controllers this daemon can really use; never raises.

    "Usable" is decided by doing it: create ``asynctask-probe-<pid>`` where worker groups will
    go, write its limit files, remove it. Permissions, read-only mounts, undelegated v2
    subtrees and container quirks all show up as an ``OSError`` there, and any ``OSError``
    makes that controller unusable. Hierarchies are found in ``<proc_self>/mountinfo`` (only
    those mounted under ``root``) rather than guessed from directory names, which differ between
    distributions (``cpu,cpuacct`` joint or apart). When v1 hierarchies exist they are used, as
    a controller bound to v1 cannot be used in the v2 tree at the same time.
    """
    if force_rlimits_only:
        return _none("rlimits only: cgroups turned off by configuration (force_rlimits_only)")
    try:
        return _detect(root, proc_self)
    except Exception as exc:  # a surprise here must not stop the daemon from starting
        return _none(f"rlimits only: cgroup detection failed ({_explain(exc)})")


def _detect(root: str, proc_self: str) -> CgroupSupport:
    try:
        mounts = [m for m in _read_mounts(os.path.join(proc_self, "mountinfo")) if _under(m, root)]
        own = _read_own_groups(os.path.join(proc_self, "cgroup"))
    except (OSError, ValueError) as exc:
        return _none(f"rlimits only: cannot read this process's cgroups ({_explain(exc)})")
    hierarchies: dict[Controller, _Mount] = {}
    for mount in mounts:  # the first mount of a hierarchy; later ones are bind mounts of it
        for controller in _CONTROLLERS:
            if mount.fstype == "cgroup" and _V1_HIERARCHY[controller] in mount.options:
                hierarchies.setdefault(controller, mount)
    version: Literal["v1", "v2"]
    parents: dict[Controller, str] = {}
    reasons: dict[Controller, str] = {}
    if any(m.fstype == "cgroup" and m.options & set(_V1_HIERARCHY.values()) for m in mounts):
        version = "v1"
        for controller in _CONTROLLERS:
            found = hierarchies.get(controller)
            if found is None:
                reasons[controller] = "not mounted"
                continue
            hierarchy = _V1_HIERARCHY[controller]
            parents[controller] = os.path.join(_own_dir(found, own.get(hierarchy)), _PARENT)
    else:
        unified = [m for m in mounts if m.fstype == "cgroup2"]
        if not unified:
            return _none(f"rlimits only: no cgroup hierarchy mounted under {root}")
        version = "v2"
        own_dir = _own_dir(unified[0], own.get(""))
        try:
            available = _read_text(own_dir, "cgroup.controllers").split()
        except OSError as exc:
            available = []
            reasons = dict.fromkeys(_CONTROLLERS, _explain(exc))
        for controller in _CONTROLLERS:
            needed = _V2_ENABLE[controller]
            if needed is not None and needed not in available and controller not in reasons:
                reasons[controller] = f"not delegated to {own_dir}"
            elif controller not in reasons:
                parents[controller] = os.path.join(own_dir, _PARENT)
    for controller, parent in list(parents.items()):
        try:
            _probe(version, parent, controller)
        except OSError as exc:
            reasons[controller] = _explain(exc)
            del parents[controller]
    return _describe(version, parents, reasons)


def _none(description: str) -> CgroupSupport:
    return CgroupSupport("none", False, False, False, description)


def _describe(
    version: Literal["v1", "v2"], parents: dict[Controller, str], reasons: dict[Controller, str]
) -> CgroupSupport:
    usable = [c for c in _CONTROLLERS if c in parents]
    if not usable:
        first = next(iter(reasons.items()), None)
        detail = f"{first[0]}: {first[1]}" if first else "none found"
        if os.geteuid() != 0:
            detail += "; not root"
        return _none(f"rlimits only: no writable cgroup {version} controllers ({detail})")
    text = f"cgroup {version}: {', '.join(usable)} (rlimits too)"
    missing = [f"{c} ({reasons[c]})" for c in _CONTROLLERS if c in reasons]
    if missing:
        text += f"; unusable: {', '.join(missing)}"
    return CgroupSupport(
        version,
        "memory" in parents,
        "cpu" in parents,
        "pids" in parents,
        text,
        tuple((c, parents[c]) for c in usable),
    )


def _probe(version: Literal["v1", "v2"], parent: str, controller: Controller) -> None:
    created = _ensure_parent(version, parent, controller)
    probe = os.path.join(parent, f"asynctask-probe-{os.getpid()}")
    try:
        try:
            os.mkdir(probe)
        except FileExistsError:  # left by a probe of ours that was killed: same PID, same name
            os.rmdir(probe)
            os.mkdir(probe)
        try:
            if controller == "memory":
                limit_file = "memory.limit_in_bytes" if version == "v1" else "memory.max"
                _write(probe, limit_file, MIN_MEMORY)
            elif controller == "pids":
                _write(probe, "pids.max", 64)
            elif version == "v1":
                _write(probe, "cpuacct.usage", 0)
                _read_text(probe, "cpuacct.usage")
            else:
                _read_text(probe, "cpu.stat")
            # Opened, not written: nothing to move yet, but a read-only grant shows up here.
            os.close(os.open(os.path.join(probe, "cgroup.procs"), os.O_WRONLY))
        finally:
            os.rmdir(probe)
    finally:
        if created:
            # Not kept between probe and use: a daemon that never starts a limited worker
            # leaves nothing behind. ``create`` makes it again.
            with contextlib.suppress(OSError):
                os.rmdir(parent)


def _ensure_parent(version: Literal["v1", "v2"], parent: str, controller: Controller) -> bool:
    """Make ``parent`` (the daemon's ``asynctask`` group); True if this call created it.

    Under v2 a controller's files exist in a group only if its parent delegates the controller
    (``cgroup.subtree_control``), at every level: the daemon's own group and then ``asynctask``.
    The kernel refuses (``EBUSY``) to delegate from a group that holds processes, other than
    the root: a daemon that is to use v2 must run in a leaf of a delegated subtree (systemd
    ``Delegate=yes``), and we do not move it there behind its operator's back.
    """
    enable = _V2_ENABLE[controller] if version == "v2" else None
    if enable is not None:
        _write(os.path.dirname(parent), "cgroup.subtree_control", f"+{enable}")
    try:
        os.mkdir(parent)
        created = True
    except FileExistsError:
        created = False
    if enable is not None:
        try:
            _write(parent, "cgroup.subtree_control", f"+{enable}")
        except OSError:
            if created:
                with contextlib.suppress(OSError):
                    os.rmdir(parent)
            raise
    return created


def _read_mounts(path: str) -> list[_Mount]:
    """cgroup mounts in mountinfo: ``id parent dev root point opts [tags] - type src superopts``."""
    mounts = []
    with open(path, encoding="utf-8", errors="surrogateescape") as lines:
        for line in lines:
            parts = line.split()
            if "-" not in parts:
                continue
            dash = parts.index("-")
            if dash < 5 or len(parts) < dash + 4 or parts[dash + 1] not in ("cgroup", "cgroup2"):
                continue
            options = frozenset(parts[dash + 3].split(","))
            mounts.append(
                _Mount(_unescape(parts[4]), _unescape(parts[3]), parts[dash + 1], options)
            )
    return mounts


def _read_own_groups(path: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as {v1 controller: path}, with ``""`` for the v2 group."""
    own: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as lines:
        for line in lines:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) != 3:
                continue
            controllers = parts[1].split(",") if parts[1] else [""]
            for controller in controllers:
                own[controller] = parts[2]
    return own


def _own_dir(mount: _Mount, own_path: str | None) -> str:
    """Where, under ``mount``, the group this process is in lives.

    A mount may show only a subtree (``root`` in mountinfo, as in containers without a cgroup
    namespace); paths outside what the mount shows (``/..`` in a namespace) fall back to the
    top of the mount, the nearest group we can see.
    """
    if own_path is None or own_path.endswith(" (deleted)"):
        return mount.point
    base = mount.root.rstrip("/")
    if base and own_path != base and not own_path.startswith(base + "/"):
        return mount.point
    relative = own_path[len(base) :].strip("/")
    if ".." in relative.split("/"):
        return mount.point
    return os.path.join(mount.point, relative) if relative else mount.point


def _under(mount: _Mount, root: str) -> bool:
    root = os.path.abspath(root)
    return os.path.commonpath([os.path.abspath(mount.point), root]) == root


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _explain(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" at {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}"


# --- cgroup files --------------------------------------------------------------------------


def _write(directory: str, name: str, value: int | str) -> None:
    """Write a control file that must exist: no ``O_CREAT``, so a missing one is ``ENOENT``.

    cgroupfs takes each ``write`` as one command, so the value goes in a single call.
    """
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from None
    finally:
        os.close(fd)


def _write_quietly(directory: str, name: str, value: int | str) -> None:
    with contextlib.suppress(OSError):
        _write(directory, name, value)


def _read_text(directory: str, name: str) -> str:
    with open(os.path.join(directory, name), encoding="ascii") as file:
        return file.read()


def _read_int(directory: str, name: str) -> int | None:
    try:
        return int(_read_text(directory, name).strip())
    except (OSError, ValueError):
        return None


def _read_keyed(directory: str, name: str) -> dict[str, int]:
    """A ``key value`` per line file (``memory.events``, ``memory.oom_control``, ``cpu.stat``)."""
    try:
        text = _read_text(directory, name)
    except OSError:
        return {}
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            found[key] = int(value)
    return found


def _procs(path: str) -> Iterator[int]:
    try:
        text = _read_text(path, "cgroup.procs")
    except OSError:
        return iter(())
    return (int(pid) for pid in text.split())
