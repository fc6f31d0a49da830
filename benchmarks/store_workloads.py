"""W1, W1 bulk, W2 and W3 on SQLite and on PostgreSQL, one daemon each, interleaved rep by rep.

    python benchmarks/store_workloads.py [--reps 3] [--n 20000] [--n1 20000] [--n3 500]
        [--store-url postgresql://...] [--base CHECKOUT] [--json FILE]

Issue 16's "the same workloads W1, W1 bulk, W2 and W3 on PostgreSQL (one daemon) and on
SQLite, same run". Each rep starts, for each store in turn, a new daemon (durability full,
``[workers] min_workers = max_workers = 2``, a fresh home) and runs in it the workloads of
``bench_daemon.py``'s ``one_rep``, in the same order:

  W1       ``--n1`` blocking ``Client.submit`` calls from one client, each a no-op due an hour
           later (so W1 measures the acknowledged submit, not the drain); submits/s
  W1 bulk  ``--n`` no-ops by ``submit_many`` of 100, all due at one instant 3 s after the first
           (a rep whose submits outlast that margin is redone with 10 s, then 30 s); submits/s
  W2       the drain of those ``--n`` by the 2 workers: tasks/s from the due time to the last
           finish, read from the store's own rows (``started_at``, ``finished_at``)
  W3       20 warm-up tasks, 1 s idle, then ``--n3`` tasks submitted one at a time at 200/s
           into idle workers; submit -> start in the worker (p50/p99 ms, nearest rank)

SQLite: the home's file. PostgreSQL: a fresh schema per rep of the tests' private cluster
(``tests/pgcluster.py``: Unix socket, no TCP, ``fsync=on``, ``synchronous_commit=on``), or of
``--store-url``. A daemon on PostgreSQL runs in cluster mode even alone (leased partitions,
fenced write batches, the inbox; docs/scale-out.md) and holds no partition for its first
lease rounds, so nothing is timed until it holds all 64 (``ab_w2.wait_served``; the wait is
printed). ``--base CHECKOUT`` adds a third daemon per rep on PostgreSQL, started from another
checkout (e.g. ``git worktree add /tmp/base <rev>``), for a before/after in the same run.

Prints medians and each rep; asserts nothing. ``--json`` writes the raw reps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask.client import Client  # noqa: E402
from benchmarks.ab_w2 import WORKERS_2, _finished, daemon_of, wait_served  # noqa: E402
from benchmarks.store_w2 import fresh_schema  # noqa: E402

#: (key, label, format) of each figure, in the order printed.
FIGURES = [
    ("w1_per_s", "W1 submits/s", "{:,.0f}"),
    ("w1_bulk_per_s", "W1 bulk submits/s", "{:,.0f}"),
    ("w2_per_s", "W2 drain tasks/s", "{:,.0f}"),
    ("w2_first_last_per_s", "W2 first->last tasks/s", "{:,.0f}"),
    ("w3_p50_ms", "W3 p50 ms", "{:,.1f}"),
    ("w3_p99_ms", "W3 p99 ms", "{:,.1f}"),
    ("served_wait_s", "wait for partitions s", "{:,.1f}"),
]


def _percentile(sorted_values: list[float], share: float) -> float:
    """Nearest rank, as bench_daemon.py and the peer harness compute it."""
    return sorted_values[max(0, int(len(sorted_values) * share + 0.999999) - 1)]


def _first_start(home: Path, store_url: str | None, since: float) -> float:
    """The earliest ``started_at`` after ``since`` of a succeeded task (W2's first dispatch)."""
    sql = "SELECT min(started_at) FROM tasks WHERE state = 'succeeded' AND started_at > "
    if store_url is None:
        db = sqlite3.connect(f"file:{home}/asynctask.db?mode=ro", uri=True)
        try:
            return float(db.execute(sql + "?", (since,)).fetchone()[0])
        finally:
            db.close()
    import asyncio

    import asyncpg

    async def read() -> float:
        conn = await asyncpg.connect(store_url)
        try:
            return float(await conn.fetchval(sql + "$1", since))
        finally:
            await conn.close()

    return asyncio.run(read())


def one(root: str, n: int, n1: int, n3: int, store_url: str | None = None) -> dict[str, float]:
    """Every workload on one new daemon of checkout ``root``: on its home's SQLite file, or
    with ``store_url`` on that (empty) PostgreSQL schema."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="asynctask-stores-") as tmp:
        home = Path(tmp) / "home"
        store = f'[store]\nurl = "{store_url}"\n' if store_url else ""
        with daemon_of(root, home, WORKERS_2 + store) as (_, client):
            out["served_wait_s"] = wait_served(store_url) if store_url else 0.0
            # W1: one call per task, due an hour later.
            far = time.time() + 3600
            began = time.perf_counter()
            for _ in range(n1):
                client.submit("benchmarks.tasks:noop", run_at=far)
            out["w1_per_s"] = n1 / (time.perf_counter() - began)
            # W1 bulk, then W2: their drain from the due time.
            for margin in (3.0, 10.0, 30.0):
                before, _ = _finished(home, store_url)
                due = time.time() + margin
                began = time.perf_counter()
                for _ in range(n // 100):
                    client.submit_many(
                        {"func": "benchmarks.tasks:noop", "run_at": due} for _ in range(100)
                    )
                out["w1_bulk_per_s"] = n / (time.perf_counter() - began)
                if time.time() < due:
                    break
                _wait_done(home, store_url, before + n)  # the margin was too short: again
            _, last = _wait_done(home, store_url, before + n)
            out["w2_per_s"] = n / (last - due)
            out["w2_first_last_per_s"] = n / (last - _first_start(home, store_url, due - margin))
            out["w2_margin_s"] = margin
            # W3: 20 warm-up tasks, 1 s idle, then n3 at 200/s into idle workers.
            _w3(client, out, n3)
    return out


def _wait_done(home: Path, store_url: str | None, n: int) -> tuple[int, float]:
    deadline = time.time() + 300
    while time.time() < deadline:
        done, last = _finished(home, store_url)
        if done >= n:
            return done, last
        time.sleep(0.1)
    raise SystemExit(f"{n} tasks did not finish within 300 s")


def _w3(client: Client, out: dict[str, float], n3: int) -> None:
    for handle in [client.submit("benchmarks.tasks:stamp") for _ in range(20)]:
        handle.result(timeout=60)
    time.sleep(1.0)
    handles = []
    interval = 1 / 200
    next_at = time.perf_counter()
    for _ in range(n3):
        while time.perf_counter() < next_at:
            pass
        next_at += interval
        t_submit = time.time()
        handles.append((t_submit, client.submit("benchmarks.tasks:stamp")))
    lat = sorted((handle.result(timeout=60) - t_submit) * 1000 for t_submit, handle in handles)
    out["w3_p50_ms"] = _percentile(lat, 0.50)
    out["w3_p99_ms"] = _percentile(lat, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=20_000, help="W1 bulk and W2 tasks")
    parser.add_argument("--n1", type=int, default=20_000, help="W1 single submits")
    parser.add_argument("--n3", type=int, default=500, help="W3 tasks")
    parser.add_argument("--store-url", help="a PostgreSQL database (default: a private cluster)")
    parser.add_argument("--base", help="another checkout, run on PostgreSQL too")
    parser.add_argument("--json", type=Path, help="write the raw reps here")
    args = parser.parse_args()
    cluster = None
    url = args.store_url
    if url is None:
        from tests import pgcluster

        cluster = pgcluster.cluster()
        url = cluster.url()
    runs: list[tuple[str, str, bool]] = [("sqlite", str(ROOT), False)]
    runs.append(("postgresql", str(ROOT), True))
    if args.base:
        runs.append(("postgresql-base", str(Path(args.base).resolve()), True))
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in runs}
    began = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    try:
        for rep in range(args.reps):
            for name, root, on_pg in runs:
                store = None
                if on_pg:
                    schema = f"bench_stores_{os.getpid()}_{rep}_{name.replace('-', '_')}"
                    store = fresh_schema(url, schema)
                figures = one(root, args.n, args.n1, args.n3, store)
                results[name].append(figures)
                print(f"rep {rep + 1} {name}: " + _row(figures), flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    print(
        f"\n{began} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"N W1/W1 bulk+W2/W3 = {args.n1}/{args.n}/{args.n3}, reps {args.reps}; "
        "median (each rep)"
    )
    print("| store | " + " | ".join(label for _, label, _ in FIGURES) + " |")
    print("|---" * (len(FIGURES) + 1) + "|")
    for name, reps in results.items():
        cells = []
        for key, _, fmt in FIGURES:
            values = [r[key] for r in reps]
            each = ", ".join(fmt.format(v) for v in values)
            cells.append(f"{fmt.format(statistics.median(values))} ({each})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"started": began, "args": vars(args) | {"json": str(args.json)}, "reps": results},
                indent=1,
            )
        )


def _row(figures: dict[str, float]) -> str:
    return "  ".join(f"{label} {fmt.format(figures[key])}" for key, label, fmt in FIGURES)


if __name__ == "__main__":
    main()
