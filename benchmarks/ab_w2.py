"""A/B of two checkouts on W1 bulk and the W2 drain, interleaved rep by rep.

    python benchmarks/ab_w2.py /path/to/base-checkout /path/to/new-checkout [--reps 3]

(e.g. ``git worktree add /tmp/base <rev>``). Each rep starts a daemon from each checkout in
turn (durability full, ``min_workers = max_workers = 2``), submits 20,000 no-op tasks by
``submit_many`` of 100, all due 3 s later, and times the drain from the stored start and finish
times; on PostgreSQL only once the daemon holds its partitions (``wait_served``). Interleaving
keeps a noisy machine's drift out of the comparison; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask.client import Client  # noqa: E402
from asynctask.errors import DaemonUnavailable  # noqa: E402

#: Two workers, no more: with ``max_workers`` left at its default (8) the pool grows while work
#: waits, and a W2 run before 2026-12-07 17:00 UTC drained on up to 8 workers.
WORKERS_2 = "[workers]\nmin_workers = 2\nmax_workers = 2\n"


@contextlib.contextmanager
def daemon_of(
    root: str, home: Path, config: str = "", *, durability: str = "full"
) -> Iterator[tuple[int, Client]]:
    """A daemon started from checkout ``root`` on ``home`` (``durability``, warnings only,
    ``config`` appended), once it answers: (its pid, a client). Terminated on exit."""
    home.mkdir()
    (home / "asynctask.toml").write_text(
        f'[daemon]\ndurability = "{durability}"\nlog_level = "warning"\n{config}'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "asynctask", "daemon", "--home", str(home)],
        cwd=root,
        env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = Client(home / "asynctask.sock", connect_timeout=0.5)
        for _ in range(600):
            try:
                client.ping()
                break
            except DaemonUnavailable:
                time.sleep(0.05)
        yield proc.pid, client
    finally:
        proc.terminate()
        proc.wait(30)


def one(root: str, n: int, store_url: str | None = None) -> tuple[float, float]:
    """(bulk submits per second, W2 tasks per second) of the daemon in checkout ``root``, on
    its home's SQLite file or, with ``store_url``, on that PostgreSQL schema (empty, since the
    drain is counted from its rows; ``store_w2.py``)."""
    with tempfile.TemporaryDirectory(prefix="asynctask-ab-") as tmp:
        home = Path(tmp) / "home"
        store = f'[store]\nurl = "{store_url}"\n' if store_url else ""
        with daemon_of(root, home, WORKERS_2 + store) as (_, client):
            if store_url:
                wait_served(store_url)
            due = time.time() + 3
            began = time.perf_counter()
            for _ in range(n // 100):
                client.submit_many(
                    {"func": "benchmarks.tasks:noop", "run_at": due} for _ in range(100)
                )
            bulk = n / (time.perf_counter() - began)
            deadline = time.time() + 300
            while time.time() < deadline:
                done, last = _finished(home, store_url)
                if done == n:
                    return bulk, n / (last - due)
                time.sleep(0.2)
            raise SystemExit(f"{root}: {n} tasks did not finish within 300 s")


#: Partitions held by a live lease (one daemon on a fresh schema: all are its own).
_SERVED = "SELECT count(*) FROM partitions WHERE owner IS NOT NULL AND expires_at > $1"


def wait_served(store_url: str, partitions: int = 64, timeout: float = 60.0) -> float:
    """Until the daemon on ``store_url`` (alone on that schema) holds all ``partitions``:
    seconds waited. A daemon on PostgreSQL runs in cluster mode even alone, and serves no
    partition for its first one or two lease rounds; a submit before that goes through the
    inbox (docs/scale-out.md). A checkout without cluster mode (no ``inbox`` table): 0."""
    import asyncio

    import asyncpg

    async def wait() -> float:
        began = time.monotonic()
        conn = await asyncpg.connect(store_url)
        try:
            while True:
                if await conn.fetchval("SELECT to_regclass('inbox') IS NULL"):
                    return 0.0
                if await conn.fetchval(_SERVED, time.time()) >= partitions:
                    return time.monotonic() - began
                if time.monotonic() - began > timeout:
                    raise SystemExit(f"the daemon did not take its partitions in {timeout:g} s")
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    return asyncio.run(wait())


_FINISHED = "SELECT count(*), max(finished_at) FROM tasks WHERE state = 'succeeded'"


def _finished(home: Path, store_url: str | None) -> tuple[int, float]:
    """(tasks succeeded, the last finish time), read from the store itself."""
    if store_url is None:
        db = sqlite3.connect(f"file:{home}/asynctask.db?mode=ro", uri=True)
        try:
            done, last = db.execute(_FINISHED).fetchone()
        finally:
            db.close()
        return int(done), float(last or 0.0)
    import asyncio

    import asyncpg

    async def read() -> tuple[int, float]:
        conn = await asyncpg.connect(store_url)
        try:
            done, last = await conn.fetchrow(_FINISHED)
        finally:
            await conn.close()
        return int(done), float(last or 0.0)

    return asyncio.run(read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base")
    parser.add_argument("new")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"base": [], "new": []}
    for _ in range(args.reps):
        for name, root in (("base", args.base), ("new", args.new)):
            results[name].append(one(root, args.n))
    for name, reps in results.items():
        bulk = [b for b, _ in reps]
        drain = [w for _, w in reps]
        reps_bulk = ", ".join(f"{b:,.0f}" for b in bulk)
        reps_drain = ", ".join(f"{w:,.0f}" for w in drain)
        print(
            f"{name}: bulk {statistics.median(bulk):,.0f}/s ({reps_bulk})"
            f"  W2 {statistics.median(drain):,.0f}/s ({reps_drain})"
        )


if __name__ == "__main__":
    main()
