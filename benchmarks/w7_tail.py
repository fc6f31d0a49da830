"""What makes W7's tail: run ``bench_daemon.w7_fairness`` alone and record each small task.

    .venv/bin/python benchmarks/w7_tail.py [--runs 3] [--flood 100000] [--sample 0.01]
                                            [--pyspy /tmp/pyspy-venv/bin/py-spy]
                                            [--extra '[scheduler]\\naffinity = "0"']

Per small task: created, dispatched (``started_at``: what W7 measures), the worker's start and
the finish (the task's stored trace), and the flood's attempts dispatched meanwhile, with the
longest gap between two of them (a held event loop shows as a gap; a waiting small task
with flood attempts streaming past is the scheduler's choice or a worker held by the flood).
While the small tasks run, a second client pings every ``--sample`` s and the figures of
the store's commits (transactions, ops) and the loop's longest stalls are printed after.
With ``--pyspy``, ``py-spy record --nonblocking -f raw`` samples the daemon during the run.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import itertools
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgpack

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask.client import Client  # noqa: E402
from benchmarks import bench_daemon  # noqa: E402


def _probe(args: argparse.Namespace, run: int) -> dict[str, Any]:
    state: dict[str, Any] = {"pings": []}
    original_start, original_stop = bench_daemon.start_daemon, bench_daemon.stop_daemon
    stop_sampling = threading.Event()

    def sample(home: Path) -> None:
        client = Client(home / "asynctask.sock")
        while not stop_sampling.wait(args.sample):
            t0 = time.time()
            ping = client.ping()
            state["pings"].append((t0, time.time(), ping))

    def start(home: Path, *a: Any, **k: Any) -> Any:
        proc = original_start(home, *a, **k)
        state["home"], state["pid"] = home, proc.pid
        if args.pyspy:
            out = Path(args.out) / f"w7-run{run}.raw"
            state["spy"] = subprocess.Popen(
                [args.pyspy, "record", "--nonblocking", "-r", "250", "-f", "raw"]
                + (["--gil"] if args.gil else [])
                + ["-p", str(proc.pid), "-o", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return proc

    def stop(proc: Any) -> None:
        stop_sampling.set()
        home = state["home"]
        state["ping_end"] = Client(home / "asynctask.sock").ping()
        state["small"] = bench_daemon._db_rows(
            home,
            "select created_at, due_at, started_at, finished_at, trace from tasks "
            "where tenant = 'small' order by created_at",
        )
        state["flood_starts"] = [
            row[0]
            for row in bench_daemon._db_rows(
                home,
                "select started_at from tasks where tenant = 'flood' "
                "and started_at is not null order by started_at",
            )
        ]
        if "spy" in state:
            state["spy"].send_signal(2)
            state["spy"].wait(60)
        original_stop(proc)

    submit = Client.submit

    def submit_small(self: Client, *a: Any, **k: Any) -> Any:
        if k.get("tenant") == "small" and not state.get("sampler"):
            state["ping_start"] = self.ping()
            state["sampler"] = threading.Thread(target=sample, args=(state["home"],), daemon=True)
            if args.sample:
                state["sampler"].start()
        return submit(self, *a, **k)

    bench_daemon.start_daemon, bench_daemon.stop_daemon = start, stop
    limit = bench_daemon._NO_BACKLOG_LIMIT
    bench_daemon._NO_BACKLOG_LIMIT = limit + args.extra.replace("\\n", "\n")
    Client.submit = submit_small  # type: ignore[method-assign]
    cpu0 = time.process_time()
    try:
        out = bench_daemon.w7_fairness(args.flood, "full")
    finally:
        bench_daemon.start_daemon, bench_daemon.stop_daemon = original_start, original_stop
        bench_daemon._NO_BACKLOG_LIMIT = limit
        Client.submit = submit  # type: ignore[method-assign]
    state["out"] = out
    state["driver_cpu"] = time.process_time() - cpu0
    return state


def _report(state: dict[str, Any]) -> None:
    out = state["out"]
    print(f"  W7 p99 {out['w7_small_p99_ms']:.1f} ms, flood left {out['w7_flood_left']:,}")
    flood = state["flood_starts"]
    print(
        "  small: wait ms (created->dispatched) = created->queued (its commit) + queued->"
        "dispatched | flood dispatched while queued | longest flood gap ms | "
        "dispatched->worker start ms"
    )
    for created, _due, started, _finished, trace in state["small"]:
        entry = msgpack.unpackb(trace)[-1] if trace else [None] * 5
        queued, worker = entry[1] or created, entry[3]
        lo, hi = bisect.bisect_left(flood, queued), bisect.bisect_right(flood, started)
        window = flood[max(lo - 1, 0) : hi + 1]
        gap = max((b - a for a, b in itertools.pairwise(window)), default=0.0)
        print(
            f"  {(started - created) * 1000:7.1f} = {(queued - created) * 1000:6.1f} + "
            f"{(started - queued) * 1000:6.1f} | {hi - lo:5d} | {gap * 1000:6.1f} | "
            f"{'-' if worker is None else f'{(worker - started) * 1000:6.1f}'}"
        )
    if flood:
        t0 = flood[0]
        buckets = [0] * 12
        for t in flood:
            slot = int((t - t0) / 0.1)
            if slot < len(buckets):
                buckets[slot] += 1
        first_small = state["small"][0][0] - t0 if state["small"] else float("nan")
        print(
            f"  flood dispatched per 100 ms from its first dispatch: {buckets}"
            f" (first small task created at +{first_small:.2f} s)"
        )
    pings = state["pings"]
    if pings:
        rtts = sorted((b - a) * 1000 for a, b, _ in pings)
        first, last = pings[0][2], pings[-1][2]
        tx = last["store"]["transactions"] - first["store"]["transactions"]
        ops = last["store"]["ops_committed"] - first["store"]["ops_committed"]
        pend = max(p["store"]["pending"] for _, _, p in pings)
        print(
            f"  pings {len(pings)}: rtt p50 {statistics.median(rtts):.1f} ms max {rtts[-1]:.1f} ms;"
            f" commits {tx}, ops {ops} ({ops / max(tx, 1):.0f}/commit), max pending {pend}"
        )
    print(f"  loop at end: {state['ping_end'].get('loop')}")
    print(f"  workers at end: {state['ping_end']['workers']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--flood", type=int, default=100_000)
    parser.add_argument("--sample", type=float, default=0.0, help="ping period s; 0: none")
    parser.add_argument("--pyspy", default=None)
    parser.add_argument("--gil", action="store_true")
    parser.add_argument("--out", default="/tmp")
    parser.add_argument(
        "--extra", default="", help="config appended, e.g. '[scheduler]\\naffinity = \"0\"'"
    )
    args = parser.parse_args()
    gc.collect()
    for run in range(args.runs):
        print(f"run {run + 1} ({time.strftime('%H:%M:%S')} UTC)", flush=True)
        _report(_probe(args, run))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
