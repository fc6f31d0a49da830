"""Daemon throughput and latency on this machine: prints figures, asserts nothing.

    .venv/bin/python benchmarks/bench_daemon.py [--n 20000] [--reps 3] [--durability full]

Workloads (the peer harness's definitions, ../shared/bench/peers):
  W1  one producer, one blocking ``Client.submit`` per no-op task, durable acks; submits/s
  W1b the same N via ``submit_many`` in batches of 100; submits/s
  W2  N no-op tasks queued (all due at one instant via ``run_at``), drained by 2 workers;
      tasks/s from the due time to the last finish (the daemon's own timestamps)
  W3  500 tasks submitted one at a time at 200/s into idle workers; submit->start in the worker
      (p50/p99 ms)
Also: the daemon's RSS after W2. Each rep uses a fresh daemon home. Medians (min-max) of reps.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask.client import Client  # noqa: E402
from asynctask.errors import DaemonUnavailable  # noqa: E402


def start_daemon(
    home: Path, durability: str, extra: str = "[workers]\nmin_workers = 2\nmax_workers = 2\n"
) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True)
    (home / "asynctask.toml").write_text(
        f'[daemon]\ndurability = "{durability}"\nlog_level = "warning"\n' + extra
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "asynctask", "daemon", "--home", str(home)],
        cwd=ROOT,
        stdout=open(home / "daemon.out", "wb"),  # noqa: SIM115 - lives as long as the daemon
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            Client(home / "asynctask.sock", connect_timeout=0.5).ping()
            return proc
        except DaemonUnavailable:
            time.sleep(0.02)
    raise RuntimeError((home / "daemon.out").read_text())


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_all_done(client: Client, n: int, scheduled_ok: int = 0, timeout: float = 600) -> None:
    """Until only ``scheduled_ok`` tasks (W1's far-future ones) remain live."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.ping()["tasks"]["live"] <= scheduled_ok:
            return
        time.sleep(0.01)
    raise RuntimeError(f"{n} tasks did not finish in {timeout}s")


def one_rep(n: int, durability: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="asynctask-bench-") as tmp:
        home = Path(tmp) / "home"
        proc = start_daemon(home, durability)
        try:
            client = Client(home / "asynctask.sock")
            # W1: one call per task. Delay them all so W1 measures submits, not the drain.
            far = time.time() + 3600
            t0 = time.perf_counter()
            for _ in range(n):
                client.submit("benchmarks.tasks:noop", run_at=far)
            out["w1_submits_per_s"] = n / (time.perf_counter() - t0)
            # W1b + W2: bulk submits, all due at one instant after the last submit, drained
            # by 2 workers. The margin covers the submits; a rep where it did not is redone.
            for margin in (3.0, 10.0, 30.0):
                due = time.time() + margin
                t0 = time.perf_counter()
                for _ in range(n // 100):
                    client.submit_many(
                        {"func": "benchmarks.tasks:noop", "run_at": due} for _ in range(100)
                    )
                out["w1b_submits_per_s"] = n / (time.perf_counter() - t0)
                if time.time() < due:
                    break
                wait_all_done(client, n, scheduled_ok=n)
            wait_all_done(client, n, scheduled_ok=n)
            db = sqlite3.connect(f"file:{home / 'asynctask.db'}?mode=ro", uri=True)
            last, count = db.execute(
                "select max(finished_at), count(*) from tasks where state = 'succeeded'"
            ).fetchone()
            db.close()
            out["w2_tasks_per_s"] = count / (last - due)
            out["daemon_rss_mib"] = rss_mib(proc.pid)
            # W3: 500 at 200/s into idle workers.
            lat = []
            handles = []
            interval = 1 / 200
            next_at = time.perf_counter()
            for _ in range(500):
                while time.perf_counter() < next_at:
                    pass
                next_at += interval
                t_submit = time.time()
                handles.append((t_submit, client.submit("benchmarks.tasks:stamp")))
            for t_submit, handle in handles:
                lat.append((handle.result(timeout=60) - t_submit) * 1000)
            lat.sort()
            out["w3_p50_ms"] = lat[len(lat) // 2]
            out["w3_p99_ms"] = lat[int(len(lat) * 0.99) - 1]
        finally:
            stop_daemon(proc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--durability", default="full", choices=["full", "normal"])
    args = parser.parse_args()
    reps = [one_rep(args.n, args.durability) for _ in range(args.reps)]
    print(
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, "
        f"N={args.n}, durability={args.durability}, reps={args.reps}"
    )
    print("| figure | median | min | max |")
    print("|---|---|---|---|")
    for key in reps[0]:
        values = [r[key] for r in reps]
        median = statistics.median(values)
        print(f"| {key} | {median:,.1f} | {min(values):,.1f} | {max(values):,.1f} |")


if __name__ == "__main__":
    main()
