"""W1 bulk and the W2 drain on SQLite and on PostgreSQL, one daemon, interleaved rep by rep.

    python benchmarks/store_w2.py [--reps 3] [--n 20000] [--store-url postgresql://...]

Each rep runs ``ab_w2.one`` (durability full, 2 workers, 20,000 no-op tasks by
``submit_many`` of 100, all due 3 s later, the drain timed from the stored times) once on the
home's SQLite file and once on a fresh PostgreSQL schema (issue 16's "same workloads on
PostgreSQL and on SQLite, same run"). Without ``--store-url`` it starts the tests' private
cluster (``tests/pgcluster.py``: a Unix socket, no TCP, ``fsync=on``, ``synchronous_commit=on``)
and stops it at the end. On PostgreSQL nothing is timed until the daemon holds its partitions
(``ab_w2.wait_served``). Prints medians and each rep; asserts nothing. ``store_workloads.py``
runs W1, W3 and a base checkout too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from benchmarks.ab_w2 import one  # noqa: E402


def fresh_schema(url: str, name: str) -> str:
    """``url`` with ``search_path`` set to a new, empty schema ``name`` (dropped first)."""

    async def make() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            await conn.execute(f"CREATE SCHEMA {name}")
        finally:
            await conn.close()

    asyncio.run(make())
    return f"{url}{'&' if '?' in url else '?'}search_path={quote(name, safe='')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--store-url", help="a PostgreSQL database (default: a private cluster)")
    args = parser.parse_args()
    cluster = None
    url = args.store_url
    if url is None:
        from tests import pgcluster

        cluster = pgcluster.cluster()
        url = cluster.url()
    results: dict[str, list[tuple[float, float]]] = {"sqlite": [], "postgresql": []}
    try:
        for rep in range(args.reps):
            results["sqlite"].append(one(str(ROOT), args.n))
            schema = f"bench_w2_{os.getpid()}_{rep}"
            results["postgresql"].append(one(str(ROOT), args.n, fresh_schema(url, schema)))
    finally:
        if cluster is not None:
            cluster.stop()
    for name, reps in results.items():
        bulk = [b for b, _ in reps]
        drain = [w for _, w in reps]
        print(
            f"{name}: W1 bulk {statistics.median(bulk):,.0f}/s "
            f"({', '.join(f'{b:,.0f}' for b in bulk)})  "
            f"W2 {statistics.median(drain):,.0f}/s ({', '.join(f'{w:,.0f}' for w in drain)})"
        )


if __name__ == "__main__":
    main()
