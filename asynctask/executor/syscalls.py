"""Thin ``ctypes`` wrappers over the Linux calls the sandbox makes (``mount``,
``mount_setattr``, ``prctl``, ``capset``) and their constants.

Python 3.11's ``os`` has none of them. They live apart from ``sandbox.py`` so that the sandbox
reads as the order of its steps, and the error handling of each call (``SandboxError`` with
the errno and what was being done) is written once.

This module is stdlib only (``ctypes``), because the worker child imports it at start-up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Any, Final

CLONE_NEWNS: Final = 0x00020000
CLONE_NEWIPC: Final = 0x08000000
CLONE_NEWPID: Final = 0x20000000
CLONE_NEWUSER: Final = 0x10000000
CLONE_NEWNET: Final = 0x40000000
MS_RDONLY: Final = 1
MS_NOSUID: Final = 2
MS_NODEV: Final = 4
MS_NOEXEC: Final = 8
MS_REMOUNT: Final = 32
MS_BIND: Final = 4096
MS_REC: Final = 16384
MS_PRIVATE: Final = 1 << 18
AT_FDCWD: Final = -100
AT_RECURSIVE: Final = 0x8000
MOUNT_ATTR_RDONLY: Final = 0x1
SYS_MOUNT_SETATTR: Final = 442  # the same number on every architecture but alpha
PR_SET_PDEATHSIG: Final = 1
PR_SET_DUMPABLE: Final = 4
PR_CAPBSET_DROP: Final = 24
PR_SET_NO_NEW_PRIVS: Final = 38
PR_CAP_AMBIENT: Final = 47
PR_CAP_AMBIENT_CLEAR_ALL: Final = 4
LINUX_CAPABILITY_VERSION_3: Final = 0x20080522
ENOSYS: Final = 38


class SandboxError(OSError):
    """The sandbox could not be entered; the worker reports it and exits unstarted (the worker
    never runs a task with less isolation than the daemon announced)."""


_libc: Any = None


def lib() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def check(result: int, doing: str) -> None:
    if result != 0:
        errno_value = ctypes.get_errno()
        raise SandboxError(errno_value, f"{doing}: {os.strerror(errno_value)}")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    result = lib().mount(
        None if source is None else source.encode(),
        target.encode(),
        None if fstype is None else fstype.encode(),
        ctypes.c_ulong(flags),
        None if data is None else data.encode(),
    )
    check(result, f"mount {fstype or source} on {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def set_readonly(path: str, readonly: bool) -> None:
    """``mount_setattr(path, AT_RECURSIVE)``: the mount at ``path`` and every mount below it;
    a kernel without the syscall gets remounts instead."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY if readonly else 0, 0 if readonly else MOUNT_ATTR_RDONLY)
    result = lib().syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR),
        ctypes.c_int(AT_FDCWD),
        path.encode(),
        ctypes.c_uint(AT_RECURSIVE),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if result == 0:
        return
    if ctypes.get_errno() != ENOSYS:
        check(int(result), f"mount_setattr {path} {'read-only' if readonly else 'writable'}")
    for point in _mounts_under(path):
        flags = MS_BIND | MS_REMOUNT | (MS_RDONLY if readonly else 0)
        with contextlib.suppress(SandboxError):  # a mount another one covers: not reachable
            mount(None, point, None, flags | _mount_flags(point), None)


def _mounts_under(path: str) -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as lines:
        for line in lines:
            point = _unescape(line.split()[4])
            if point == path or point.startswith(path.rstrip("/") + "/"):
                points.append(point)
    return points


def _mount_flags(point: str) -> int:
    """The nosuid/nodev/noexec a remount must keep (the kernel refuses to clear locked ones)."""
    try:
        found = os.statvfs(point).f_flag
    except OSError:
        return 0
    flags = 0
    for st_flag, ms_flag in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV)):
        if found & st_flag:
            flags |= ms_flag
    if found & getattr(os, "ST_NOEXEC", 8):
        flags |= MS_NOEXEC
    return flags


def _unescape(field_text: str) -> str:
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_text)


def prctl(option: int, arg: int, doing: str) -> None:
    check(
        lib().prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0),
                     ctypes.c_ulong(0), ctypes.c_ulong(0)),
        doing,
    )  # fmt: skip


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as file:
            return int(file.read())
    except (OSError, ValueError):
        return 63


def drop_bounding_set() -> None:
    """Empty the bounding set (needs ``CAP_SETPCAP``, so before any uid change) and the
    ambient set: nothing executed later can get a capability from a file or from being root."""
    for cap in range(_last_cap() + 1):
        result = lib().prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0)
        if result != 0 and ctypes.get_errno() not in (22,):  # EINVAL: no such capability
            check(int(result), f"dropping capability {cap} from the bounding set")
    with contextlib.suppress(SandboxError):  # before Linux 4.3 there is no ambient set
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, "clearing the ambient capabilities")


def drop_capabilities() -> None:
    """Empty effective, permitted and inheritable sets, then ``no_new_privs``."""
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    check(lib().capset(ctypes.byref(header), data), "capset to no capabilities")
    prctl(PR_SET_NO_NEW_PRIVS, 1, "setting no_new_privs")


def capabilities() -> int:
    """The effective set of this process (``CapEff`` in ``/proc/self/status``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0
