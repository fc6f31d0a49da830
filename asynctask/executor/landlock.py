"""Landlock for workers that get no namespaces (``sandbox.py``'s fallback): the same outcomes by
access rules the kernel checks, where the machine allows no namespaces but Landlock.

Theory of operation
-------------------
Landlock (Linux 5.13+) lets an unprivileged process restrict itself, for good, with a ruleset:
the access rights the ruleset *handles* are denied except beneath the paths a rule allows them
for. Rules only allow, so "everything but the home" is written as: reading (files, directories,
execution) allowed beneath every entry of ``/`` that does not hold a hidden directory, and,
for an entry that does, beneath each of its own entries in turn, down to the hidden directory,
which gets no rule (``roots_except``). Writing is allowed beneath the writable directories
(``/tmp``, ``/var/tmp``, ``/dev/shm``) and on the harmless devices (``/dev/null``...) only:
``/etc``, ``/usr``, ``/sys/fs/cgroup/**`` and the home are read-only or unreachable. A home
inside a writable directory (a test's, under ``/tmp``) splits it the same way: tasks can then
write beneath its other entries, but not create entries in the directories that lead to the
home, nor list them.

Processes outside the worker's Landlock domain (the daemon, other workers) are out of reach too:
Landlock denies ``ptrace`` of them from its first version (which also guards
``/proc/<pid>/environ`` and ``/proc/<pid>/mem``), and ABI 6 scopes signals and abstract Unix
sockets to the domain (``LANDLOCK_SCOPE_SIGNAL``, ``LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET``).
Connecting to a path Unix socket is not something Landlock controls (up to ABI 7).

``restrict_self`` needs ``no_new_privs`` (``syscalls.drop_capabilities`` sets it) and comes
last. Every access right the running kernel knows (its ABI) is handled; unknown ones would make
the kernel refuse the whole ruleset.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from typing import Any, Final

_SYS_CREATE_RULESET: Final = 444
_SYS_ADD_RULE: Final = 445
_SYS_RESTRICT_SELF: Final = 446
_CREATE_RULESET_VERSION: Final = 1
_RULE_PATH_BENEATH: Final = 1

_EXECUTE: Final = 1 << 0
_WRITE_FILE: Final = 1 << 1
_READ_FILE: Final = 1 << 2
_READ_DIR: Final = 1 << 3
_TRUNCATE: Final = 1 << 14
_IOCTL_DEV: Final = 1 << 15
#: Every filesystem right of each ABI: 1 has bits 0-12, 2 adds REFER, 3 TRUNCATE, 5 IOCTL_DEV.
_FS_BITS: Final = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16}
_SCOPE_ABSTRACT_UNIX_SOCKET: Final = 1 << 0
_SCOPE_SIGNAL: Final = 1 << 1

READ: Final = _EXECUTE | _READ_FILE | _READ_DIR
_FILE_RIGHTS: Final = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV
DEVICES: Final = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or it is turned off)."""
    result = _libc().syscall(
        ctypes.c_long(_SYS_CREATE_RULESET), None, ctypes.c_size_t(0),
        ctypes.c_uint32(_CREATE_RULESET_VERSION),
    )  # fmt: skip
    return max(int(result), 0)


def roots_except(hidden: Iterable[str], top: str = "/") -> list[str]:
    """Paths whose rules together cover everything beneath ``top`` but ``hidden``."""
    hidden = [os.path.realpath(path) for path in hidden]

    def holds(path: str) -> bool:
        return any(h == path or h.startswith(path.rstrip("/") + "/") for h in hidden)

    roots: list[str] = []
    pending = [top]
    while pending:
        directory = pending.pop()
        if directory in hidden:
            continue
        if not holds(directory):
            roots.append(directory)
            continue
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():  # its target has rules of its own, or is hidden
                continue
            if entry.is_dir(follow_symlinks=False) and holds(entry.path):
                pending.append(entry.path)
            else:
                roots.append(entry.path)
    return sorted(roots)


def restrict(hidden: Iterable[str], writable: Iterable[str]) -> int:
    """Restrict this process (see the module docstring); returns the ABI used, 0 if none.

    ``OSError`` when the kernel has Landlock but refuses the ruleset: the caller must not go on
    with less than it announced."""
    version = abi()
    if version < 1:
        return 0
    hidden, writable = tuple(hidden), tuple(writable)
    libc = _libc()
    handled = (1 << _FS_BITS.get(version, 16)) - 1
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if version >= 6 else 0
    attr = _RulesetAttr(handled, 0, scoped)
    size = 24 if version >= 6 else 16 if version >= 4 else 8
    ruleset = int(libc.syscall(ctypes.c_long(_SYS_CREATE_RULESET), ctypes.byref(attr),
                               ctypes.c_size_t(size), ctypes.c_uint32(0)))  # fmt: skip
    if ruleset < 0:
        _fail("creating a Landlock ruleset")
    try:
        for path in roots_except(hidden):
            _allow(libc, ruleset, path, READ, handled)
        for directory in writable:
            for path in roots_except(hidden, directory):
                _allow(libc, ruleset, path, handled, handled)
        for path in DEVICES:
            _allow(libc, ruleset, path, _FILE_RIGHTS & ~_EXECUTE, handled)
        _allow(libc, ruleset, "/dev/pts", _FILE_RIGHTS & ~_EXECUTE | _READ_DIR, handled)
        if libc.syscall(ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_int(ruleset),
                        ctypes.c_uint32(0)) != 0:  # fmt: skip
            _fail("entering the Landlock domain")
    finally:
        os.close(ruleset)
    return version


def _allow(libc: Any, ruleset: int, path: str, access: int, handled: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not on this machine (or gone since it was listed)
    try:
        if not os.path.isdir(path):
            access &= _FILE_RIGHTS  # a file takes file rights only
        rule = _PathBeneath(access & handled, fd)
        if libc.syscall(ctypes.c_long(_SYS_ADD_RULE), ctypes.c_int(ruleset),
                        ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule),
                        ctypes.c_uint32(0)) != 0:  # fmt: skip
            _fail(f"a Landlock rule for {path}")
    finally:
        os.close(fd)


def _fail(doing: str) -> None:
    errno_value = ctypes.get_errno()
    raise OSError(errno_value, f"{doing}: {os.strerror(errno_value)}")
