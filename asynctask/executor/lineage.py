"""Which worker, if any, a process belongs to: the daemon's test for "this client is a task".

A task is a client of its own tenant only (README.md, "Security model"), but it runs as
the daemon's uid, so the peer uid of a connection cannot tell a task from the admin. The peer
pid can: a process belongs to worker W when it is W, when W is among its ancestors (the ``ppid``
chain read from ``/proc/<pid>/stat``), or when it is in W's session or process group. Each
worker is started in a session of its own (``start_new_session``), so the session catches an
orphan whose parent exited and who was reparented to init (a plain double fork); a grandchild
that also called ``setsid`` is caught only by the chain, which holds once workers are child
subreapers (orphans are then reparented to their worker, not to init).

Sound against pid reuse by construction where it matters: the kernel does not hand out a pid
while it still names a session or process group, so a session or group id equal to a live
worker's pid is that worker's. The chain is read once, when the connection is accepted; a peer
that exits and whose pid is reused before that read is a race we accept (its uid still bounds
what it can do).

Pure apart from ``read_stat``, which the daemon leaves at ``/proc`` and tests replace with a
table (``tests/executor/test_lineage.py``: cycles, missing pids, the depth bound).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import NamedTuple

#: Ancestors examined at most; deeper chains (or cycles in a fake table) end the walk.
MAX_DEPTH = 64


class Stat(NamedTuple):
    """The fields of ``/proc/<pid>/stat`` the walk needs."""

    ppid: int
    pgrp: int
    session: int


#: ``read_stat(pid)``: that process's ``Stat``, or None when it does not exist (any more).
StatReader = Callable[[int], Stat | None]


def parse_stat(line: bytes) -> Stat:
    """``/proc/<pid>/stat``'s ppid, pgrp and session (fields 4, 5 and 6).

    Field 2 (``comm``, in parentheses) is the program's name and may hold spaces and
    parentheses of its own, so the fields after it start after the *last* ``)``.
    """
    close = line.rindex(b")")
    _state, ppid, pgrp, session = line[close + 1 :].split(maxsplit=4)[:4]
    return Stat(int(ppid), int(pgrp), int(session))


def read_proc_stat(pid: int) -> Stat | None:
    """The live process's ``Stat`` from ``/proc``; None when it is gone or unreadable.

    Plain ``os`` calls, not ``open()``: about half the cost, and a walk makes several.
    """
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return parse_stat(os.read(fd, 4096))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def worker_of(
    pid: int,
    workers: Mapping[int, object],
    read_stat: StatReader = read_proc_stat,
    max_depth: int = MAX_DEPTH,
) -> int | None:
    """The pid of the worker in ``workers`` that ``pid`` is, descends from, or shares a session
    or process group with; None when it belongs to none (or ``pid`` is 0: unknown)."""
    if not workers:
        return None
    seen: set[int] = set()
    current = pid
    for _ in range(max_depth):
        if current <= 1:  # init (or the kernel's 0) is nobody's worker
            return None
        if current in workers:
            return current
        if current in seen:
            return None
        seen.add(current)
        stat = read_stat(current)
        if stat is None:
            return None
        for group in (stat.session, stat.pgrp):
            if group > 1 and group in workers:
                return group
        current = stat.ppid
    return None
