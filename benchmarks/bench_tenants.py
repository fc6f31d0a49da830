"""The price of one tenant per worker: a 100-tenant drain against the one-tenant W2 drain.

    python benchmarks/bench_tenants.py [--reps 3] [--n 20000] [--tenants 100] [--affinity 250ms]

Each rep starts a fresh daemon from this checkout (durability full, 2 workers) twice: W2
submits ``n`` no-op tasks for one tenant, MT submits them for ``tenants`` tenants round-robin
(task i belongs to tenant ``t{i % tenants}``; ``bench_daemon.py``'s MT row is the same
drain on 2 fixed workers), in ``submit_many`` batches of 100, all due 3 s later.
The drain rate is ``n / (last finish - due)`` from the stored times, as ``ab_w2.py`` does. For
MT it also prints the workers started, their spawn-to-ready p50/p99 (``ping``), and the peak
summed RSS of the daemon's worker processes. Reps interleave W2 and MT to keep a noisy
machine's drift out of the ratio. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask.client import Client  # noqa: E402
from benchmarks.bench_daemon import (  # noqa: E402
    drain_rate,
    start_daemon,
    stop_daemon,
    submit_round_robin,
)


def descendants_rss(pid: int) -> int:
    """Summed RSS (bytes) of every process below ``pid``."""
    total = 0
    stack = [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while stack:
        parent = stack.pop()
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            stack.append(kid)
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int(Path(f"/proc/{kid}/statm").read_text().split()[1]) * page
    return total


def drain(n: int, tenants: int, affinity: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="asynctask-tenants-") as tmp:
        home = Path(tmp) / "home"
        extra = "" if affinity is None else f'[scheduler]\naffinity = "{affinity}"\n'
        proc = start_daemon(home, "full", extra)  # 2 workers, growing to the default 8
        peak = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.1):
                peak[0] = max(peak[0], descendants_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        try:
            client = Client(home / "asynctask.sock")
            before = client.ping()["workers"].get("spawns", {}).get("started", 0)
            due = time.time() + 3
            submit_round_robin(client, n, tenants, due)
            sampler.start()
            rate = drain_rate(home, n, due)
            spawns = client.ping()["workers"].get("spawns", {})
            return {
                "rate": rate,
                "started": spawns.get("started", 0) - before,
                "p50": spawns.get("ready_p50_ms"),
                "p99": spawns.get("ready_p99_ms"),
                "rss": peak[0],
            }
        finally:
            stop.set()
            stop_daemon(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--affinity", default=None, help='[scheduler] affinity, e.g. "250ms"')
    args = parser.parse_args()
    w2: list[float] = []
    mt: list[dict[str, Any]] = []
    for rep in range(args.reps):
        w2.append(drain(args.n, 1, args.affinity)["rate"])
        mt.append(drain(args.n, args.tenants, args.affinity))
        last = mt[-1]
        print(
            f"rep {rep + 1}: W2 {w2[-1]:,.0f}/s  MT {last['rate']:,.0f}/s  "
            f"workers started {last['started']}  spawn-to-ready p50 {last['p50']} ms "
            f"p99 {last['p99']} ms  workers' peak RSS {last['rss'] / 2**20:,.0f} MiB",
            flush=True,
        )
    w2_median = statistics.median(w2)
    mt_median = statistics.median(m["rate"] for m in mt)
    print(
        f"W2 (1 tenant) {w2_median:,.0f}/s; MT ({args.tenants} tenants) {mt_median:,.0f}/s; "
        f"MT / W2 = {mt_median / w2_median:.2f} (medians of {args.reps})"
    )


if __name__ == "__main__":
    main()
