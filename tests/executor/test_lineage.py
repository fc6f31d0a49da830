"""``worker_of``: which worker a peer pid belongs to, walked over a fake process table."""

from __future__ import annotations

import os
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from asynctask.executor.lineage import MAX_DEPTH, Stat, parse_stat, read_proc_stat, worker_of


def table(parents: dict[int, int], groups: dict[int, int] | None = None):  # type: ignore[no-untyped-def]
    """A ``read_stat`` over ``pid -> ppid`` (each process its own session unless ``groups``
    puts it in another) that counts its reads."""
    reads: list[int] = []

    def read(pid: int) -> Stat | None:
        reads.append(pid)
        if pid not in parents:
            return None
        session = (groups or {}).get(pid, pid)
        return Stat(parents[pid], session, session)

    read.reads = reads  # type: ignore[attr-defined]
    return read


def test_the_worker_itself_and_its_descendants() -> None:
    read = table({100: 1, 200: 100, 300: 200, 400: 1})
    workers = {100: "a"}
    assert worker_of(100, workers, read) == 100
    assert worker_of(200, workers, read) == 100
    assert worker_of(300, workers, read) == 100
    assert worker_of(400, workers, read) is None  # a sibling under init


def test_an_orphan_in_the_workers_session_belongs_to_it() -> None:
    read = table({100: 1, 500: 1}, groups={500: 100})  # double-forked, reparented to init
    assert worker_of(500, {100: "a"}, read) == 100
    assert worker_of(500, {101: "a"}, read) is None


def test_unknown_pids_and_no_workers() -> None:
    read = table({200: 100})
    assert worker_of(0, {100: "a"}, read) is None  # SO_PEERCRED gave no pid
    assert worker_of(-1, {100: "a"}, read) is None
    assert worker_of(999, {100: "a"}, read) is None  # gone before the walk
    assert worker_of(200, {}, read) is None
    assert read.reads == [999]  # type: ignore[attr-defined]  # no workers: nothing read


def test_session_and_group_zero_or_one_never_match() -> None:
    read = table({200: 0}, groups={200: 0})
    assert worker_of(200, {0: "x", 1: "y"}, read) is None


def test_a_cycle_ends_the_walk() -> None:
    read = table({10: 11, 11: 12, 12: 10})
    assert worker_of(10, {99: "a"}, read) is None
    assert sorted(read.reads) == [10, 11, 12]  # type: ignore[attr-defined]


def test_the_depth_bound() -> None:
    chain = {pid: pid - 1 for pid in range(1001, 1001 + 3 * MAX_DEPTH)}  # 1000 is the worker
    read = table(chain)
    assert worker_of(1000 + MAX_DEPTH - 1, {1000: "a"}, read) == 1000
    assert worker_of(1000 + MAX_DEPTH + 1, {1000: "a"}, read) is None
    assert worker_of(1000 + 3, {1000: "a"}, read, max_depth=2) is None


@given(
    st.dictionaries(st.integers(2, 40), st.integers(0, 40), max_size=40),
    st.sets(st.integers(2, 40), max_size=5),
    st.integers(0, 45),
)
def test_any_table_ends_and_finds_only_an_ancestor(
    parents: dict[int, int], workers: set[int], pid: int
) -> None:
    read = table(parents)
    found = worker_of(pid, dict.fromkeys(workers), read)
    assert len(read.reads) <= MAX_DEPTH  # type: ignore[attr-defined]
    ancestors = [pid]
    while ancestors[-1] in parents and len(ancestors) <= MAX_DEPTH:
        if ancestors[-1] in workers:
            break
        ancestors.append(parents[ancestors[-1]])
    expected = next((p for p in ancestors if p in workers), None)
    if pid > 0 and workers:
        assert found == expected


def test_parse_stat_with_spaces_and_parentheses_in_the_name() -> None:
    assert parse_stat(b"42 (a b) c)) R 7 8 9 0 -1 4194304") == Stat(7, 8, 9)
    assert parse_stat(b"42 (x) S 1 42 42 0") == Stat(1, 42, 42)
    assert parse_stat(b"42 ()) 1 2 3) Z 0 0 0 0") == Stat(0, 0, 0)


def test_real_processes() -> None:
    me = read_proc_stat(os.getpid())
    assert me is not None
    assert me.ppid == os.getppid()
    assert me.session == os.getsid(0)
    assert me.pgrp == os.getpgrp()
    assert read_proc_stat(2**22 + 1) is None  # above pid_max: never exists
    # A name with spaces and parentheses, as a hostile task would pick to confuse the parser.
    code = "import sys; open('/proc/self/comm', 'w').write(') 1 1 1 ('); print(); sys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        child.stdout.readline()  # renamed
        with open(f"/proc/{child.pid}/comm") as comm:
            assert comm.read() == ") 1 1 1 (\n"
        assert read_proc_stat(child.pid) == Stat(os.getpid(), me.pgrp, me.session)
        assert worker_of(child.pid, {os.getpid(): "a"}) == os.getpid()
        assert worker_of(os.getpid(), {child.pid: "a"}) is None
    finally:
        child.communicate(b"")
