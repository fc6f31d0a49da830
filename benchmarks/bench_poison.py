"""The poison-tenant scenario: do other tenants notice a tenant whose tasks break workers?

    .venv/bin/python benchmarks/bench_poison.py [--seconds 10] [--rate 800] [--reps 3]

Eight "good" tenants submit 5 ms tasks at a steady ``--rate`` in total, for ``--seconds``
(800/s is 55 % of the 1,456/s that 8 workers ran here with all tasks due at once). Three runs
per rep, each on a fresh daemon with 8 workers (8 shards, 2 per tenant):

* ``clean``    - the good tenants alone;
* ``poison``   - plus a tenant that submits 2,000 tasks at the start, half calling
  ``os._exit`` and half hanging until their 1 s timeout (no retries), with the default
  confinement (on probation until 20 attempts end without breaking their worker, so on its own
  2 shards, one attempt at a time, with a doubling back-off after each fault). It is alone for
  a moment before the good tenants start, and between their tasks: every attempt a fault, it
  earns no idle workers outside its shards (``FaultRecord.spare`` is 0), so it holds one worker
  whether alone or not;
* ``unguarded`` - the same poison with confinement off (no probation, ``fault_threshold`` of
  a million), to show what the mechanism buys.

For the good tenants it prints completed tasks per second (from the first submit to the last
finish) and the p50/p99 queue wait (created -> started, the daemon's own timestamps), as
medians (min-max) of the reps, and the ratio of each poisoned run to the clean one.
"""

from __future__ import annotations

import argparse
import itertools
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
from benchmarks.bench_daemon import start_daemon, stop_daemon  # noqa: E402

GOOD_TENANTS = [f"good{n}" for n in range(8)]
WORKERS = 8


def config(guarded: bool) -> str:
    unguarded = "" if guarded else "fault_threshold = 1000000\nshard_probation = 0\n"
    return (
        f"[workers]\nmin_workers = {WORKERS}\nmax_workers = {WORKERS}\n"
        f"[scheduler]\nshards = {WORKERS}\nshards_per_tenant = 2\n{unguarded}"
    )


def run(scenario: str, seconds: float, rate: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="asynctask-poison-") as tmp:
        home = Path(tmp) / "home"
        proc = start_daemon(home, "full", config(scenario != "unguarded"))
        try:
            client = Client(home / "asynctask.sock")
            if scenario != "clean":
                client.submit_many(
                    {
                        "func": f"benchmarks.tasks:{name}",
                        "tenant": "poison",
                        "retries": 0,
                        "timeout": 1,
                    }
                    for name in ["crash", "hang"] * 1000
                )
            # Two tasks per tick, tenants in turn: arrivals spread out as they would be from
            # many producers, not in bursts as wide as the pool (a burst of 8 on 7 free workers
            # makes the 8th wait for one whatever the scheduler does).
            batch = 2
            interval = batch / rate
            turn = itertools.cycle(GOOD_TENANTS)
            next_at = time.perf_counter()
            end = next_at + seconds
            while next_at < end:
                while time.perf_counter() < next_at:
                    time.sleep(0.0002)
                next_at += interval
                client.submit_many(
                    {"func": "benchmarks.tasks:work", "args": [0.005], "tenant": next(turn)}
                    for _ in range(batch)
                )
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                live = sum(q["backlog"] + q["running"] for q in _good_queues(client))
                if live == 0:
                    break
                time.sleep(0.05)
            db = sqlite3.connect(f"file:{home / 'asynctask.db'}?mode=ro", uri=True)
            rows = db.execute(
                "select created_at, started_at, finished_at from tasks "
                "where tenant like 'good%' and state = 'succeeded'"
            ).fetchall()
            db.close()
        finally:
            stop_daemon(proc)
    waits = sorted((started - created) * 1000 for created, started, _ in rows)
    first = min(created for created, _, _ in rows)
    last = max(finished for _, _, finished in rows)
    return {
        "tasks_per_s": len(rows) / (last - first),
        "wait_p50_ms": waits[len(waits) // 2],
        "wait_p99_ms": waits[int(len(waits) * 0.99) - 1],
    }


def _good_queues(client: Client) -> list[dict]:
    return [q for q in client.queues()["queues"] if q["tenant"] in GOOD_TENANTS]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=800.0)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    scenarios = ("clean", "poison", "unguarded")
    results: dict[str, list[dict[str, float]]] = {s: [] for s in scenarios}
    for _ in range(args.reps):  # interleaved, so machine noise hits every scenario alike
        for scenario in scenarios:
            results[scenario].append(run(scenario, args.seconds, args.rate))
    print(
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {WORKERS} workers, "
        f"{len(GOOD_TENANTS)} good tenants at {args.rate:g} tasks/s for {args.seconds:g} s, "
        f"reps={args.reps}"
    )
    print("| run | good tasks/s | good wait p50 ms | good wait p99 ms | vs clean (tasks/s, p99) |")
    print("|---|---|---|---|---|")
    medians = {
        s: {k: statistics.median(r[k] for r in results[s]) for k in results[s][0]}
        for s in scenarios
    }
    for scenario in scenarios:
        reps = results[scenario]

        def cell(key: str, reps: list[dict[str, float]] = reps, scenario: str = scenario) -> str:
            values = [r[key] for r in reps]
            return f"{medians[scenario][key]:,.1f} ({min(values):,.1f}-{max(values):,.1f})"

        m, c = medians[scenario], medians["clean"]
        ratio = (
            f"{m['tasks_per_s'] / c['tasks_per_s']:.2f}, {m['wait_p99_ms'] / c['wait_p99_ms']:.2f}"
        )
        print(
            f"| {scenario} | {cell('tasks_per_s')} | {cell('wait_p50_ms')} | "
            f"{cell('wait_p99_ms')} | {ratio} |"
        )


if __name__ == "__main__":
    main()
