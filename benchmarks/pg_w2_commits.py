"""Where the W2 drain's time goes on PostgreSQL: the writer's transactions per task.

    python benchmarks/pg_w2_commits.py [--root CHECKOUT] [--n 4000] [--durability full|normal]

One daemon of checkout ``--root`` (default: this one) on a fresh schema of the tests' private
PostgreSQL cluster (2 workers), ``--n`` no-ops by ``submit_many`` of 100 due 3 s later, and,
over the drain only: tasks/s, the daemon's write transactions and ops committed (``ping``'s
``store`` counters, when the checkout has them), and the server's commits
(``pg_stat_database``). It also times a bare client's write transaction on the same server
(``BEGIN; UPDATE; COMMIT``, then with two more round trips, as a fenced batch makes), so a
slow drain can be told apart from a slow server. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from benchmarks.ab_w2 import WORKERS_2, _finished, daemon_of, wait_served  # noqa: E402
from benchmarks.store_w2 import fresh_schema  # noqa: E402


def server_commits(url: str) -> int:
    async def read() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(
                await conn.fetchval(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                )
            )
        finally:
            await conn.close()

    return asyncio.run(read())


def client_transaction_ms(url: str, reps: int = 200) -> tuple[float, float]:
    """Mean ms of ``BEGIN; UPDATE one row; COMMIT`` from a bare client, and of the same with
    two more round trips in it (a ``SELECT ... FOR KEY SHARE`` and a plain ``SELECT``)."""

    async def run() -> tuple[float, float]:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE bench_lat (k int PRIMARY KEY, v int)")
            await conn.execute("INSERT INTO bench_lat VALUES (1, 0)")
            out = []
            for more in (False, True):
                began = time.perf_counter()
                for i in range(reps):
                    async with conn.transaction():
                        if more:
                            await conn.fetch("SELECT k FROM bench_lat WHERE k = 1 FOR KEY SHARE")
                            await conn.fetch("SELECT k FROM bench_lat WHERE k = ANY($1)", [1])
                        await conn.execute("UPDATE bench_lat SET v = $1 WHERE k = 1", i)
                out.append((time.perf_counter() - began) / reps * 1000)
            await conn.execute("DROP TABLE bench_lat")
            return out[0], out[1]
        finally:
            await conn.close()

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose daemon runs")
    parser.add_argument("--n", type=int, default=4_000)
    parser.add_argument("--durability", default="full", choices=["full", "normal"])
    parser.add_argument("--store-url", help="a PostgreSQL database (default: a private cluster)")
    args = parser.parse_args()
    cluster = None
    url = args.store_url
    if url is None:
        from tests import pgcluster

        cluster = pgcluster.cluster()
        url = cluster.url()
    try:
        store_url = fresh_schema(url, f"bench_commits_{os.getpid()}")
        plain, more = client_transaction_ms(store_url)
        print(
            f"a bare client's write transaction: {plain:.2f} ms; "
            f"with 2 more round trips: {more:.2f} ms"
        )
        config = WORKERS_2 + f'[store]\nurl = "{store_url}"\n'
        with tempfile.TemporaryDirectory(prefix="asynctask-commits-") as tmp:
            home = Path(tmp) / "home"
            with daemon_of(args.root, home, config, durability=args.durability) as (_, client):
                wait_served(store_url)
                due = time.time() + 3
                for _ in range(args.n // 100):
                    client.submit_many(
                        {"func": "benchmarks.tasks:noop", "run_at": due} for _ in range(100)
                    )
                while time.time() < due:
                    time.sleep(0.005)
                before = client.ping().get("store", {})
                commits = server_commits(store_url)
                while True:
                    done, last = _finished(home, store_url)
                    if done >= args.n:
                        break
                    time.sleep(0.05)
                after = client.ping().get("store", {})
                commits = server_commits(store_url) - commits
        wall = last - due
        line = f"W2 {args.n / wall:,.0f} tasks/s ({wall:.2f} s); server commits {commits:,}"
        if "transactions" in after:
            tx = after["transactions"] - before["transactions"]
            ops = after["ops_committed"] - before["ops_committed"]
            line += (
                f"; the daemon's write transactions {tx:,}: {tx / args.n:.2f} per task, "
                f"{ops / max(tx, 1):.1f} ops each, one every {wall / max(tx, 1) * 1000:.2f} ms"
            )
        print(line)
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
