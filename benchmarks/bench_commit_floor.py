"""The floor under one-call-per-task submits: what one durable SQLite commit of one task costs.

    python benchmarks/bench_commit_floor.py [--n 3000] [--reps 3]

A producer that waits for each acknowledgement (W1) can go no faster than one commit with its
fsync plus one socket round trip; group commit cannot help it. This times that commit alone, in
this process with no daemon: ``BEGIN IMMEDIATE``, one ``INSERT``, ``COMMIT`` on a WAL database
with ``synchronous=FULL``, for the daemon's own ``tasks`` table (every migration applied, so
every index it keeps) beside a minimal queue table of one index (the shape of Huey's). The
difference is what the daemon's indexes cost each commit. Prints wall time and CPU per commit
(medians of the reps, min-max); asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402

from asynctask.store import schema  # noqa: E402

MINIMAL = (
    "CREATE TABLE task (id INTEGER PRIMARY KEY, queue TEXT, data BLOB, priority REAL)",
    "CREATE INDEX task_priority_id ON task (priority DESC, id ASC)",
)
MINIMAL_INSERT = "INSERT INTO task (queue, data, priority) VALUES (?, ?, ?)"


def _minimal_row(i: int) -> tuple[Any, ...]:
    return ("default", b"x" * 150, 0.0)


def _tasks_insert() -> str:
    columns = schema.COLUMNS
    return f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _task_row(i: int) -> tuple[Any, ...]:
    """A no-op task as a submit stores it (scheduled an hour ahead, as W1's are)."""
    now = time.time()
    row = {
        "seq": i + 1, "tenant": "default", "id": f"01KBXYZ{i:019d}",
        "function": "benchmarks.tasks:noop", "queue": "default", "priority": 0,
        "state": "scheduled", "payload": msgpack.packb([[], {}]),
        "options": msgpack.packb({"retries": 3, "timeout": None}), "labels": "{}",
        "created_at": now, "due_at": now + 3600, "attempts": 0, "started_at": None,
        "finished_at": None, "result": None, "error": None, "errors": None, "held": 0,
        "trace_id": None, "trace": None,
    }  # fmt: skip
    return tuple(row[column] for column in schema.COLUMNS)


def one(
    setup: Sequence[str], insert: str, row: Callable[[int], tuple[Any, ...]], n: int
) -> tuple[float, float]:
    """(wall µs per commit, CPU µs per commit) of ``n`` one-row commits on a fresh file."""
    with tempfile.TemporaryDirectory(prefix="asynctask-floor-") as tmp:
        db = sqlite3.connect(os.path.join(tmp, "floor.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        for statement in setup:
            db.execute(statement)
        before = resource.getrusage(resource.RUSAGE_SELF)
        began = time.perf_counter()
        for i in range(n):
            db.execute("BEGIN IMMEDIATE")
            db.execute(insert, row(i))
            db.execute("COMMIT")
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_SELF)
        db.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return 1e6 * wall / n, 1e6 * cpu / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3_000, help="commits per rep")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    tables = {
        "minimal queue table (1 index)": (MINIMAL, MINIMAL_INSERT, _minimal_row),
        "asynctask tasks table": (
            [step for migration in schema.MIGRATIONS for step in migration],
            _tasks_insert(),
            _task_row,
        ),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in tables}
    for _ in range(args.reps):  # interleaved, so the machine's drift hits both alike
        for name, (setup, insert, row) in tables.items():
            results[name].append(one(setup, insert, row, args.n))
    print(
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, SQLite {sqlite3.sqlite_version}, "
        f"WAL, synchronous=FULL, {args.n} one-row commits x {args.reps} reps"
    )
    print("| table | wall µs per commit | CPU µs per commit | commits/s |")
    print("|---|---|---|---|")
    for name, reps in results.items():
        walls = [wall for wall, _ in reps]
        cpus = [cpu for _, cpu in reps]
        wall = statistics.median(walls)
        print(
            f"| {name} | {wall:,.0f} ({min(walls):,.0f}-{max(walls):,.0f}) "
            f"| {statistics.median(cpus):,.0f} ({min(cpus):,.0f}-{max(cpus):,.0f}) "
            f"| {1e6 / wall:,.0f} |"
        )


if __name__ == "__main__":
    main()
