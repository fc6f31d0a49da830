"""A million scheduled tasks: what waiting costs, and how late they start once due.

    .venv/bin/python benchmarks/bench_scheduled.py [--n 1000000] [--spread 300] [--lead 120]

Submits ``--n`` no-op tasks with ``run_at`` spread evenly over ``--spread`` seconds, starting
``--lead`` seconds after the submits began (so all are ``scheduled`` first). Then, while they
all wait, it reads the daemon's CPU time over 10 s (the timers must cost nothing) and its RSS.
Once they have run, lateness is ``started_at - run_at`` per task (the daemon's timestamps; the
intended ``run_at`` travels in a label), p50/p99/max. 2 workers run them; the spread keeps
the arrival rate below what they can do, so lateness measures the timers, not a queue.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask.client import Client  # noqa: E402
from benchmarks.bench_daemon import _percentile, rss_mib, start_daemon, stop_daemon  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--spread", type=float, default=300.0)
    parser.add_argument("--lead", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="asynctask-sched-") as tmp:
        home = Path(tmp) / "home"
        proc = start_daemon(
            home,
            "full",
            '[workers]\nmin_workers = 2\nmax_workers = 2\n[tenants."*"]\nmax_backlog = 10000000\n',
        )
        try:
            client = Client(home / "asynctask.sock")
            first_due = time.time() + args.lead
            step = args.spread / args.n
            t0 = time.perf_counter()
            for start in range(0, args.n, 1000):
                client.submit_many(
                    {
                        "func": "benchmarks.tasks:noop",
                        "run_at": first_due + i * step,
                        "labels": {"due": repr(first_due + i * step)},
                    }
                    for i in range(start, min(start + 1000, args.n))
                )
            submitted_in = time.perf_counter() - t0
            if time.time() > first_due - 15:
                raise SystemExit(f"submitting took {submitted_in:.0f}s: raise --lead")
            time.sleep(2)  # let the last commits and the submit bursts settle
            cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(10)
            idle_cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - wall0)
            rss = rss_mib(proc.pid)
            while client.ping()["tasks"]["live"]:
                time.sleep(1)
            db = sqlite3.connect(f"file:{home / 'asynctask.db'}?mode=ro", uri=True)
            rows = db.execute(
                "select started_at - cast(json_extract(labels, '$.due') as real) from tasks "
                "where state = 'succeeded'"
            ).fetchall()
            db.close()
        finally:
            stop_daemon(proc)
    late = sorted(row[0] * 1000 for row in rows)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}: {args.n:,} scheduled "
        f"tasks (submitted in {submitted_in:.0f}s), due over {args.spread:g}s"
    )
    print(f"daemon CPU while they wait: {idle_cpu * 100:.2f}% of a core; RSS {rss:,.0f} MiB")
    print(
        f"lateness (start - due), {len(late):,} tasks: p50 {_percentile(late, 0.5):.1f} ms, "
        f"p99 {_percentile(late, 0.99):.1f} ms, max {late[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
