"""History queries and retention at scale; prints figures, asserts nothing.

    .venv/bin/python benchmarks/bench_history.py [--rows 1000000] [--runs 7] [--quick]
        [--insert-rows 100000] [--purge-rows 200000]

1. Seeds ``--rows`` finished tasks straight into a migrated store (``executemany`` of the
   store's own INSERT and row encoding, 50,000 rows per transaction): 4 tenants (60/30/9/1 %),
   3 queues, 5 functions spread unevenly over the tenants (one rare in a big tenant, one
   common elsewhere and rare in the smallest), 4 final states (90/6/3/1 %), labels on a
   fraction, ``created_at`` spread over 7 days.
2. Times ``Store.list_tasks`` (limit 100, the CLI default) for each single filter and several
   combinations: the median of ``--runs`` warm runs, and of 3 cold ones (a new store, the
   database file dropped from the page cache with ``posix_fadvise``). Each row also names the
   index ``store/plan.py`` chose and whether SQLite walks it in page order ("walk") or sorts
   its rows ("sort"), from ``EXPLAIN QUERY PLAN``.
3. Insert cost of the history indexes: ``--insert-rows`` single-row submits through the group
   commit writer (100 concurrent callers, durability full) into the schema as it is and into
   the same schema with the index set before migration 6.
4. Retention under load: a daemon whose database holds ``--purge-rows`` finished tasks older
   than ``history_days`` (so it purges them as soon as it starts) runs no-op tasks submitted one
   at a time at 200/s; submit->start (in the worker) p50/p99 while the purge runs, then the
   same once it is done, and how long the purge took.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask.client import Client  # noqa: E402
from asynctask.model import TaskState  # noqa: E402
from asynctask.store import InsertTask, Store, TaskFilter, TaskRow, schema  # noqa: E402
from asynctask.store.codec import row_params  # noqa: E402
from asynctask.store.plan import NARROW_LABEL_ROWS, choose  # noqa: E402
from asynctask.store.query import label_probe_sql, list_sql, prefix_probe_sql  # noqa: E402
from benchmarks.bench_daemon import start_daemon, stop_daemon  # noqa: E402

S = TaskState
DAY = 86400.0
HOUR = 3600.0
END = time.time()
START = END - 7 * DAY
TENANTS = (("big", 60.0), ("mid", 30.0), ("small", 9.0), ("tiny", 1.0))
FUNCTIONS = {
    "big": (("app:send_email", 60.0), ("app:resize", 30.0), ("app:report", 9.9), ("app:rare", 0.1)),
    "mid": (("app:report", 70.0), ("app:resize", 30.0)),
    "small": (("app:sync", 90.0), ("app:send_email", 10.0)),
    "tiny": (("app:sync", 99.9), ("app:report", 0.1)),
}
STATES = ((S.SUCCEEDED, 90.0), (S.FAILED, 6.0), (S.CANCELLED, 3.0), (S.EXPIRED, 1.0))
#: The index set before migration 6, for the insert-cost comparison.
OLD_INDEXES = (
    "CREATE INDEX tasks_state_seq ON tasks (state, seq)",
    "CREATE INDEX tasks_tenant_seq ON tasks (tenant, seq)",
    "CREATE INDEX tasks_tenant_queue_seq ON tasks (tenant, queue, seq)",
    "CREATE INDEX tasks_function_seq ON tasks (function, seq)",
)
NEW_INDEXES = (
    "tasks_state_created",
    "tasks_tenant_state_created",
    "tasks_tenant_queue_created",
    "tasks_function_created",
    "tasks_tenant_function_created",
)


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([name for name, _ in table], [weight for _, weight in table])[0]


def history(count: int, start: float, end: float, seed: int = 1) -> Iterator[TaskRow]:
    """``count`` finished tasks, oldest first, created evenly from ``start`` to ``end``."""
    rng = random.Random(seed)
    states = tuple((state.value, weight) for state, weight in STATES)
    for seq in range(1, count + 1):
        tenant = _pick(rng, TENANTS)
        function = _pick(rng, FUNCTIONS[tenant])
        draw = rng.random()
        queue = tenant if draw < 0.8 else ("reports" if draw < 0.95 else "exclusive")
        labels = {}
        if rng.random() < 0.2:
            labels["batch"] = "nightly"
        if rng.random() < 0.3:
            labels["env"] = "prod"
        if rng.random() < 0.001:
            labels["customer"] = "c-42"
        created = start + (end - start) * seq / count
        yield TaskRow(
            seq=seq,
            tenant=tenant,
            id=f"{function.split(':')[1]}-{seq:08d}",
            function=function,
            queue=queue,
            priority=5,
            state=S(_pick(rng, states)),
            payload=b"\x92\x91\x01\x80",
            options={"retries": 3},
            labels=labels,
            attempts=1,
            result=b"\xc0",
            error=None,
            created_at=created,
            due_at=None,
            started_at=created + 0.01,
            finished_at=created + 0.02,
        )


def seed(path: Path, rows: Iterator[TaskRow]) -> int:
    """Write ``rows`` into a migrated store at ``path``; returns how many."""

    async def create() -> None:
        await (await Store.open(path, "normal")).close()

    asyncio.run(create())
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    count = 0
    while True:
        batch = [row_params(row) for row in itertools.islice(rows, 50_000)]
        if not batch:
            break
        db.execute("BEGIN")
        db.executemany(schema.INSERT, batch)
        db.execute("COMMIT")
        count += len(batch)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return count


QUERIES: dict[str, TaskFilter] = {
    "(none)": TaskFilter(),
    "--state failed": TaskFilter(states=(S.FAILED,)),
    "--state expired": TaskFilter(states=(S.EXPIRED,)),
    "--state failed,cancelled": TaskFilter(states=(S.FAILED, S.CANCELLED)),
    "--tenant big": TaskFilter(tenants=("big",)),
    "--tenant tiny": TaskFilter(tenants=("tiny",)),
    "--queue reports": TaskFilter(queue="reports"),
    "--queue nope (no match)": TaskFilter(queue="nope"),
    "--function app:rare": TaskFilter(function="app:rare"),
    "--function app:send_email": TaskFilter(function="app:send_email"),
    "--prefix report-0099": TaskFilter(id_prefix="report-0099"),
    "--prefix rare-": TaskFilter(id_prefix="rare-"),
    "--prefix zzz (no match)": TaskFilter(id_prefix="zzz"),
    "--label batch=nightly": TaskFilter(labels={"batch": "nightly"}),
    "--label customer=c-42 (0.1 %)": TaskFilter(labels={"customer": "c-42"}),
    "--label x=y (no match)": TaskFilter(labels={"x": "y"}),
    "--since 1h": TaskFilter(since=END - HOUR),
    "--since 6d": TaskFilter(since=END - 6 * DAY),
    "--until 1h": TaskFilter(until=END - HOUR),
    "--until 6d": TaskFilter(until=END - 6 * DAY),
    "--since 4d --until 3d": TaskFilter(since=END - 4 * DAY, until=END - 3 * DAY),
    "--tenant big --state failed": TaskFilter(tenants=("big",), states=(S.FAILED,)),
    "--tenant tiny --state expired": TaskFilter(tenants=("tiny",), states=(S.EXPIRED,)),
    "--tenant big --function app:rare": TaskFilter(tenants=("big",), function="app:rare"),
    "--tenant tiny --function app:report": TaskFilter(tenants=("tiny",), function="app:report"),
    "--tenant mid --function app:sync (none)": TaskFilter(tenants=("mid",), function="app:sync"),
    "--tenant big --queue reports": TaskFilter(tenants=("big",), queue="reports"),
    "--tenant tiny --prefix report-": TaskFilter(tenants=("tiny",), id_prefix="report-"),
    "--tenant big --prefix send_email-": TaskFilter(tenants=("big",), id_prefix="send_email-"),
    "--tenant mid --label batch=nightly": TaskFilter(tenants=("mid",), labels={"batch": "nightly"}),
    "--tenant big --label customer=c-42": TaskFilter(tenants=("big",), labels={"customer": "c-42"}),
    "--state failed --since 6d": TaskFilter(states=(S.FAILED,), since=END - 6 * DAY),
    "--state failed --until 6d": TaskFilter(states=(S.FAILED,), until=END - 6 * DAY),
    "--state expired --since 4d --until 3d": TaskFilter(
        states=(S.EXPIRED,), since=END - 4 * DAY, until=END - 3 * DAY
    ),
    "--tenant tiny --until 6d": TaskFilter(tenants=("tiny",), until=END - 6 * DAY),
    "--tenant big,mid --state failed,expired": TaskFilter(
        tenants=("big", "mid"), states=(S.FAILED, S.EXPIRED)
    ),
    "--tenant big --function app:report --state failed --label": TaskFilter(
        tenants=("big",), function="app:report", states=(S.FAILED,), labels={"batch": "nightly"}
    ),
    "page 5,000 deep (--cursor)": TaskFilter(before=(START + 3.5 * DAY, 500_000)),
    "--tenant tiny, page at 3.5 d (--cursor)": TaskFilter(
        tenants=("tiny",), before=(START + 3.5 * DAY, 500_000)
    ),
}


def _drop_from_page_cache(path: Path) -> None:
    for name in (path, Path(f"{path}-wal")):
        if name.exists():
            fd = os.open(name, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def plan_shape(path: Path, f: TaskFilter) -> str:
    """ "walk" when every walk of ``tasks`` yields page order, "sort" when one is sorted."""
    conn = sqlite3.connect(path)
    try:
        if f.tenants is None and (f.queue is not None or f.id_prefix) and f.function is None:
            named = replace(f, tenants=tuple(name for name, _ in TENANTS))  # as the store does
            probe = prefix_probe_sql(named)
            narrow = probe is not None and conn.execute(*probe).fetchone()[0] < 2_000
            f = named if f.queue is not None or narrow else f
        probe = prefix_probe_sql(f)
        narrow = probe is not None and conn.execute(*probe).fetchone()[0] < 2_000
        label = None
        if f.labels and f.trace_id is None:  # the rarest label under the bound, as the store
            counts = [
                (conn.execute(*label_probe_sql(k, v)).fetchone()[0], (k, v))
                for k, v in f.labels.items()
            ]
            rare = min(counts)
            label = rare[1] if rare[0] < NARROW_LABEL_ROWS else None
        sql, params = list_sql(f, 100, narrow, label)
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    finally:
        conn.close()
    siblings: dict[int, list[str]] = defaultdict(list)
    for _, parent, _, detail in rows:
        siblings[parent].append(detail)
    for group in siblings.values():
        walks = any(d.startswith(("SEARCH tasks", "SCAN tasks")) for d in group)
        if walks and any("TEMP B-TREE" in d for d in group):
            return f"sort ({choose(f, narrow, label).index})"
    return f"walk ({choose(f, narrow, label).index})"


async def time_queries(path: Path, runs: int, size: int) -> None:
    print(f"\nlist_tasks, limit 100, over {size / 2**20:,.0f} MiB of database")
    print(f"{'filter':58} {'cold ms':>8} {'warm ms':>8} {'rows':>5}  plan")
    store = await Store.open(path, "normal")
    try:
        for name, f in QUERIES.items():
            cold = []
            for _ in range(3):
                await store.close()
                _drop_from_page_cache(path)
                store = await Store.open(path, "normal")
                began = time.perf_counter()
                await store.list_tasks(f, 100)
                cold.append((time.perf_counter() - began) * 1000)
            warm = []
            for _ in range(runs):
                began = time.perf_counter()
                got = await store.list_tasks(f, 100)
                warm.append((time.perf_counter() - began) * 1000)
            print(
                f"{name:58} {statistics.median(cold):8.2f} {statistics.median(warm):8.2f} "
                f"{len(got):5d}  {plan_shape(path, f)}"
            )
    finally:
        await store.close()


async def insert_cost(directory: Path, rows: int) -> None:
    print(f"\ninsert cost: {rows:,} single-row submits, 100 callers, durability full (median of 3)")
    for label, old in (("index set before migration 6", True), ("history indexes (now)", False)):
        rates = []
        for rep in range(3):
            path = directory / f"insert-{int(old)}-{rep}.db"
            await (await Store.open(path)).close()
            if old:
                conn = sqlite3.connect(path, isolation_level=None)
                for name in NEW_INDEXES:
                    conn.execute(f"DROP INDEX {name}")
                for statement in OLD_INDEXES:
                    conn.execute(statement)
                conn.close()
            store = await Store.open(path)
            seqs = itertools.count(1)
            source = history(rows, START, END, seed=rep)
            began = time.perf_counter()

            async def caller(
                store: Store = store, source: Iterator[TaskRow] = source, seqs: Any = seqs
            ) -> None:
                for row in source:
                    row.seq = next(seqs)
                    await store.put(InsertTask(row))

            await asyncio.gather(*(caller() for _ in range(100)))
            rates.append(rows / (time.perf_counter() - began))
            await store.close()
        print(f"  {label:32} {statistics.median(rates):9,.0f} rows/s  (reps: "
              + ", ".join(f"{r:,.0f}" for r in rates) + ")")  # fmt: skip


def _latencies(client: Client, stop: object, rate: float = 200.0) -> list[float]:
    """Submit no-op ``stamp`` tasks one at a time at ``rate``/s until ``stop()``; each task's
    submit->start in the worker, in ms."""
    handles = []
    interval = 1 / rate
    next_at = time.perf_counter()
    while not stop():  # type: ignore[operator]
        while time.perf_counter() < next_at:
            time.sleep(0.0002)
        next_at += interval
        submitted = time.time()
        handles.append((submitted, client.submit("benchmarks.tasks:stamp")))
    return sorted((handle.result(timeout=120) - t) * 1000 for t, handle in handles)


def _p(values: list[float], share: float) -> float:
    return values[max(0, int(len(values) * share + 0.999999) - 1)]


def purge_latency(directory: Path, rows: int) -> None:
    print(f"\nretention: purge {rows:,} old finished tasks while submitting 200 tasks/s")
    home = directory / "purge-home"
    home.mkdir()
    count = seed(home / "asynctask.db", history(rows, END - 30 * DAY, END - 20 * DAY))
    db_path = home / "asynctask.db"

    def stored() -> int:
        """The seeded tasks left (the run's own submits are newer than the cutoff)."""
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            query = "SELECT count(*) FROM tasks WHERE created_at < ?"
            return int(conn.execute(query, (END - 10 * DAY,)).fetchone()[0])
        finally:
            conn.close()

    extra = "[workers]\nmin_workers = 2\nmax_workers = 2\n"
    (home / "asynctask.toml").write_text(
        '[daemon]\ndurability = "full"\nlog_level = "warning"\nhistory_days = 7\n' + extra
    )
    began = time.perf_counter()
    proc = start_daemon(home, "full", existing=True)
    try:
        client = Client(home / "asynctask.sock")
        left = [count]
        checked = [time.perf_counter()]

        def purging() -> bool:
            # Once a second: counting 200,000 rows at every submit kept a reader on the
            # database all the time, which starves WAL checkpoints and slowed the purge 20x.
            if time.perf_counter() - checked[0] >= 1.0:
                checked[0] = time.perf_counter()
                left[0] = stored()
            return left[0] == 0

        during = _latencies(client, purging)
        purge_s = time.perf_counter() - began
        quiet_until = time.perf_counter() + max(2.5, len(during) / 200)
        after = _latencies(client, lambda: time.perf_counter() > quiet_until)
    finally:
        stop_daemon(proc)
    print(f"  purge of {count:,} tasks: done {purge_s:.1f} s after the daemon started")
    for label, values in (("during the purge", during), ("after it", after)):
        print(
            f"  submit->start {label:17} n={len(values):5d}  p50 {_p(values, 0.5):6.2f} ms  "
            f"p99 {_p(values, 0.99):6.2f} ms  max {values[-1]:7.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--insert-rows", type=int, default=100_000)
    parser.add_argument("--purge-rows", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, smaller sections")
    parser.add_argument(
        "--sections",
        default="queries,insert,purge",
        help="Comma-separated: queries, insert, purge (default: all).",
    )
    args = parser.parse_args()
    if args.quick:
        args.rows, args.insert_rows, args.purge_rows = 100_000, 20_000, 20_000
    print(
        f"bench_history: {platform.node()} {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-history-", dir=ROOT) as tmp:
        directory = Path(tmp)
        path = directory / "history.db"
        sections = set(args.sections.split(","))
        if "queries" in sections:
            began = time.perf_counter()
            count = seed(path, history(args.rows, START, END))
            print(f"seeded {count:,} finished tasks in {time.perf_counter() - began:.1f} s")
            asyncio.run(time_queries(path, args.runs, path.stat().st_size))
            path.unlink()
        if "insert" in sections:
            asyncio.run(insert_cost(directory, args.insert_rows))
        if "purge" in sections:
            purge_latency(directory, args.purge_rows)


if __name__ == "__main__":
    main()
