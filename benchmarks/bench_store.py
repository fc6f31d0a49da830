"""Group-commit throughput of the SQLite store: many concurrent callers, each awaiting its put.

Prints figures and asserts nothing (ARCHITECTURE.md: benchmarks print, tests assert).

    .venv/bin/python benchmarks/bench_store.py [--rows 100000] [--callers 1000 100 1]
        [--durability full] [--live 1000000]

Each caller puts one ``InsertTask`` (a ~200-byte row), awaits its commit, and puts the next, as
a client's submit does; with C callers up to C ops wait for each commit, which is what group
commit turns into one transaction. ``--live N`` also times ``load_live`` over N live rows.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time

from asynctask.model import TaskState
from asynctask.store import InsertTask, Store, TaskRow


def make_row(seq: int, state: TaskState = TaskState.QUEUED) -> TaskRow:
    return TaskRow(
        seq=seq,
        tenant=f"tenant-{seq % 7}",
        id=f"01HZX{seq:021d}",
        function="app.tasks:send_email",
        queue="default",
        priority=5,
        state=state,
        payload=os.urandom(64),
        options={"retries": 3, "timeout": 600.0},
        labels={"kind": "email"} if seq % 3 == 0 else {},
        attempts=0,
        result=None,
        error=None,
        created_at=time.time(),
        due_at=None,
        started_at=None,
        finished_at=None,
    )


async def run_inserts(path: str, rows: int, callers: int, durability: str) -> None:
    store = await Store.open(path, durability)  # type: ignore[arg-type]
    seqs = itertools.count(await store.max_seq() + 1)
    per_caller = rows // callers
    latencies: list[float] = []

    async def caller() -> None:
        for _ in range(per_caller):
            began = time.perf_counter()
            # seq from one counter at put time, as the daemon assigns it at submit: inserts
            # append to the table (interleaved per-caller ranges would scatter them over it)
            await store.put(InsertTask(make_row(next(seqs))))
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - began
    total = per_caller * callers
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(
        f"{durability:6} callers={callers:5d} rows={total:7d}  {total / elapsed:9,.0f} rows/s  "
        f"transactions={store.transactions:6d} ({total / store.transactions:7.1f} ops/txn)  "
        f"put->commit p50 {p50:.2f} ms p99 {p99:.2f} ms"
    )
    await store.close()


async def run_load_live(path: str, rows: int) -> None:
    store = await Store.open(path, "normal")
    batch = 5_000
    for first in range(1, rows + 1, batch):
        for seq in range(first, min(first + batch, rows + 1)):
            store.put(InsertTask(make_row(seq)))
        await store.flush()
    began = time.perf_counter()
    live = await store.load_live()
    elapsed = time.perf_counter() - began
    print(f"load_live: {len(live):,} rows in {elapsed:.2f} s ({len(live) / elapsed:,.0f} rows/s)")
    await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--callers", type=int, nargs="*", default=[1000, 100, 10])
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    parser.add_argument("--live", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-", dir=os.getcwd()) as tmp:
        for callers in args.callers:
            path = os.path.join(tmp, f"inserts-{callers}.db")
            await run_inserts(path, args.rows, callers, args.durability)
        if args.live:
            await run_load_live(os.path.join(tmp, "live.db"), args.live)


if __name__ == "__main__":
    asyncio.run(main())
