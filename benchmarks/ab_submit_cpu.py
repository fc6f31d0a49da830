"""A/B of two checkouts on the daemon's CPU per single submit, interleaved rep by rep.

    python benchmarks/ab_submit_cpu.py /path/to/base-checkout /path/to/new-checkout [--reps 3]

Each rep starts a daemon from each checkout in turn (durability full, 2 workers) and submits
``--n`` tasks one call each, all due an hour later so none runs. The daemon's CPU time (user +
system, every thread: the loop, the store's writer thread) from ``/proc/PID/stat`` before and
after, divided by the count, is what one submit costs the daemon; the wall time gives the
one-producer rate (W1 without the drain). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ab_w2 import daemon_of  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def one(root: str, n: int) -> tuple[float, float]:
    """(daemon CPU µs per submit, submits per second) of the daemon in checkout ``root``."""
    with (
        tempfile.TemporaryDirectory(prefix="asynctask-cpu-") as tmp,
        daemon_of(root, Path(tmp) / "home") as (pid, client),
    ):
        due = time.time() + 3600
        for _ in range(200):  # warm up: first queue, histogram and statement cache
            client.submit("benchmarks.tasks:noop", run_at=due)
        cpu = _cpu_seconds(pid)
        began = time.perf_counter()
        for _ in range(n):
            client.submit("benchmarks.tasks:noop", run_at=due)
        wall = time.perf_counter() - began
        used = _cpu_seconds(pid) - cpu
        return used / n * 1e6, n / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base")
    parser.add_argument("new")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=5_000)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"base": [], "new": []}
    for _ in range(args.reps):
        for name, root in (("base", args.base), ("new", args.new)):
            cpu, rate = one(root, args.n)
            results[name].append((cpu, rate))
            print(f"{name}: {cpu:,.0f} us daemon CPU per submit, {rate:,.0f} submits/s", flush=True)
    for name, runs in results.items():
        cpu = statistics.median(r[0] for r in runs)
        rate = statistics.median(r[1] for r in runs)
        print(f"{name} median: {cpu:,.0f} us per submit, {rate:,.0f} submits/s")


if __name__ == "__main__":
    main()
