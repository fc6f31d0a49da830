"""The sandbox's cost: a no-op task end to end with limits off, with pool-wide limits (every
worker in a cgroup with rlimits), and with per-task limits (a worker started per attempt);
plus worker start-up time. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_sandbox.py [--n 2000] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask import Client  # noqa: E402
from asynctask.executor.cgroups import detect_cgroups  # noqa: E402
from asynctask.executor.pool import PoolConfig, WorkerPool  # noqa: E402
from benchmarks.bench_daemon import _db_rows, start_daemon, stop_daemon, wait_all_done  # noqa: E402

LIMITS = 'memory = "512M"\nopen_files = 1024\nprocesses = 256\nfile_size = "1G"\n'


def drain(config: str, n: int, per_task: dict[str, int] | None = None) -> float:
    """Tasks/s from the due time to the last finish, ``n`` no-ops queued at once."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        proc = start_daemon(home, "full", "[workers]\nmin_workers = 2\nmax_workers = 2\n" + config)
        try:
            client = Client(home / "asynctask.sock")
            due = time.time() + 2.0
            for start in range(0, n, 100):
                client.submit_many(
                    {"func": "benchmarks.tasks:noop", "run_at": due, **(per_task or {})}
                    for _ in range(min(100, n - start))
                )
            wait_all_done(client, n, timeout=900)
            ((last,),) = _db_rows(home, "select max(finished_at) from tasks")
            return n / (last - due)
        finally:
            stop_daemon(proc)


async def startup(workers: int) -> float:
    """Seconds for a pool of ``workers`` to be ready (all spawned at once)."""
    pool = WorkerPool(
        PoolConfig(workers=workers, cwd=str(ROOT), cgroups=detect_cgroups()),
        lambda outcome: None,
        lambda: None,
    )
    started = time.perf_counter()
    await pool.start()
    elapsed = time.perf_counter() - started
    await pool.stop(None)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print(f"sandbox: {detect_cgroups().description}")
    rows = [
        ("no limits", lambda: drain("", args.n)),
        ("pool-wide limits (cgroup + rlimits per worker)", lambda: drain(LIMITS, args.n)),
        (
            "per-task limits (a worker started per attempt)",
            lambda: drain("", max(args.n // 10, 50), {"open_files": 512}),
        ),
    ]
    print("| no-op tasks, 2 workers | tasks/s median | min | max |")
    print("|---|---|---|---|")
    for name, run in rows:
        values = [run() for _ in range(args.reps)]
        print(f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f} | "
              f"{max(values):,.0f} |")  # fmt: skip
    for workers in (1, 4):
        values = [asyncio.run(startup(workers)) for _ in range(args.reps)]
        print(
            f"worker start-up, {workers} at once: median {statistics.median(values) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
