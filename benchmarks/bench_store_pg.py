"""Group-commit throughput of the PostgreSQL store next to the SQLite one, same machine, same run.

Prints figures and asserts nothing (ARCHITECTURE.md: benchmarks print, tests assert).

    .venv/bin/python benchmarks/bench_store_pg.py [--rows 20000] [--callers 1 64 1000]
        [--url postgresql://...]

Each caller puts one ``InsertTask`` (``bench_store.make_row``), awaits its commit and puts the
next, as a client's submit does; then each row gets one ``UpdateTask`` the same way (a state
change). Both stores at durability ``full``: SQLite ``synchronous=FULL``, PostgreSQL
``synchronous_commit=on`` with ``fsync=on``. Without ``--url`` the PostgreSQL side is a private
cluster started as the tests start theirs (``tests/pgcluster.py``: Unix socket, no TCP), so the
figures include a local socket round trip, not a network one.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask.model import TaskState  # noqa: E402
from asynctask.store import InsertTask, Store, TaskStore, UpdateTask  # noqa: E402
from asynctask.store.postgres import PostgresStore  # noqa: E402
from benchmarks.bench_store import make_row  # noqa: E402

Opener = Callable[[], Awaitable[TaskStore]]


async def _drive(store: TaskStore, callers: int, rows: int, first_seq: int) -> tuple[float, float]:
    """(inserts/s, updates/s) with ``callers`` concurrent callers, ``rows`` ops each phase."""
    seqs = itertools.count(first_seq)
    per_caller = rows // callers
    mine = [[next(seqs) for _ in range(per_caller)] for _ in range(callers)]

    async def insert(seq_list: list[int]) -> None:
        for seq in seq_list:
            await store.put(InsertTask(make_row(seq)))

    async def update(seq_list: list[int]) -> None:
        for seq in seq_list:
            await store.put(
                UpdateTask(seq=seq, state=TaskState.RUNNING, attempts=1, started_at=1.0)
            )

    started = time.perf_counter()
    await asyncio.gather(*(insert(s) for s in mine))
    inserts = per_caller * callers / (time.perf_counter() - started)
    started = time.perf_counter()
    await asyncio.gather(*(update(s) for s in mine))
    updates = per_caller * callers / (time.perf_counter() - started)
    return inserts, updates


async def _run(kind: str, open_: Opener, callers: list[int], rows: int) -> None:
    store = await open_()
    try:
        first = 1
        for count in callers:
            n = min(rows, 2_000) if count == 1 else rows
            before = store.transactions
            inserts, updates = await _drive(store, count, n, first)
            first += n
            per_tx = (2 * (n // count) * count) / max(1, store.transactions - before)
            print(
                f"{kind:8} callers={count:5}  inserts {inserts:9,.0f}/s  updates {updates:9,.0f}/s"
                f"  ops/transaction {per_tx:7.1f}"
            )
    finally:
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 64, 1000])
    parser.add_argument("--url", help="a PostgreSQL URL; default: a private cluster")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        await _run(
            "sqlite",
            lambda: Store.open(Path(directory) / "tasks.db"),
            args.callers,
            args.rows,
        )
    cluster = None
    url = args.url
    if url is None:
        from tests import pgcluster

        cluster = pgcluster.cluster()
        url = await pgcluster.url_for(Path("bench_store_pg"))  # names its schema
    try:
        await _run("postgres", lambda: PostgresStore.open(url), args.callers, args.rows)
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
