"""What ``asynctask top`` costs the daemon: one ``stats`` request per refresh.

    .venv/bin/python benchmarks/bench_top.py [--rate 5000] [--seconds 20] [--calls 300]
                                             [--tenants 4] [--durability full]

A producer process submits no-op tasks at a steady ``--rate`` (``submit_many`` batches of 100,
spread over ``--tenants`` tenants with two queues each) into a daemon with 2 workers. Then:

1. **Windows** - the daemon's CPU (``/proc/<pid>/stat`` utime + stime) over ``--seconds``
   without a viewer, then as long again with a ``top``-equivalent poller (``Client.stats()``
   and a full frame rendered, once per second), twice each in the order off, on, off, on. The
   difference is ``top``'s share, but it is smaller than the noise of a shared 2-vCPU machine,
   so it is printed only as a cross-check of:
2. **Per call** - the daemon's CPU over ``--calls`` back-to-back ``stats()`` calls, minus the
   same stretch of time without them: CPU seconds per call, hence the share of one core at one
   refresh per second; also the reply size and round-trip time. Measured under the load and
   again once it has drained (same series, same rows, an idle daemon: the clean figure). A
   daemon saturated by the load (about 100 % of a core) makes both the windows and the under-
   load figure meaningless - calls then take time from tasks, not extra CPU - so the script
   says when the load was not met; run it again with a lower ``--rate``.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from asynctask.client import Client  # noqa: E402
from asynctask.protocol import pack  # noqa: E402
from asynctask.tui.render import Layout, frame  # noqa: E402
from asynctask.tui.view import ViewState  # noqa: E402
from benchmarks.bench_daemon import start_daemon, stop_daemon  # noqa: E402

BATCH = 100
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included; not its children, the workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def produce(socket: str, rate: float, tenants: int, stop: Any, sent: Any) -> None:
    """Submit no-ops at ``rate``/s in batches, on a fixed schedule (catching up after a stall
    rather than drifting), round-robin over the tenants' two queues."""
    clients = [Client(socket, tenant=f"t{n}") for n in range(tenants)]
    period = BATCH / rate
    due = time.monotonic()
    turn = 0
    while not stop.is_set():
        client = clients[turn % tenants]
        queue = f"q{turn // tenants % 2}"
        client.submit_many({"func": "benchmarks.tasks:noop", "queue": queue} for _ in range(BATCH))
        with sent.get_lock():
            sent.value += BATCH
        turn += 1
        due += period
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)


def render(snapshot: dict[str, Any]) -> None:
    """What ``top`` does with a snapshot, into a buffer the size of a large terminal."""
    console = Console(file=io.StringIO(), width=160, color_system="truecolor")
    console.print(frame(snapshot, ViewState(), Layout(160, 50)))


def window(pid: int, seconds: float, client: Client | None) -> tuple[float, float, int]:
    """Daemon CPU seconds, our own CPU seconds, and polls made over ``seconds``."""
    daemon_before, own_before = cpu_seconds(pid), time.process_time()
    started = time.monotonic()
    polls = 0
    while (left := started + seconds - time.monotonic()) > 0:
        if client is None:
            time.sleep(left)
            continue
        render(client.stats())
        polls += 1
        next_poll = started + polls
        time.sleep(max(0.0, min(next_poll, started + seconds) - time.monotonic()))
    return cpu_seconds(pid) - daemon_before, time.process_time() - own_before, polls


def per_call(pid: int, client: Client, calls: int) -> dict[str, float]:
    """Back-to-back ``stats`` calls against the same stretch of time without them."""
    daemon_before = cpu_seconds(pid)
    started = time.monotonic()
    trips = []
    size = 0
    for _ in range(calls):
        t0 = time.perf_counter()
        reply = client.stats()
        trips.append(time.perf_counter() - t0)
        size = len(pack(reply))
    elapsed = time.monotonic() - started
    busy = cpu_seconds(pid) - daemon_before
    baseline, _, _ = window(pid, elapsed, None)
    trips.sort()
    return {
        "calls": calls,
        "elapsed": elapsed,
        "with": busy,
        "without": baseline,
        "per_call_ms": (busy - baseline) / calls * 1000,
        "trip_p50_ms": statistics.median(trips) * 1000,
        "trip_max_ms": trips[-1] * 1000,
        "bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--durability", choices=("full", "normal"), default="full")
    args = parser.parse_args()
    print(f"{platform.node()}  {platform.python_version()}  {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="asynctask-top-") as tmp:
        home = Path(tmp) / "home"
        proc = start_daemon(home, args.durability)
        socket = str(home / "asynctask.sock")
        stop, sent = multiprocessing.Event(), multiprocessing.Value("q", 0)
        producer = multiprocessing.Process(
            target=produce, args=(socket, args.rate, args.tenants, stop, sent)
        )
        producer.start()
        try:
            client = Client(socket)
            time.sleep(3)  # warm-up: the pool busy, the series filled, the load steady
            sent_at, sent_before = time.monotonic(), sent.value
            rows = []
            for viewer in (False, True, False, True):
                daemon_cpu, own_cpu, polls = window(
                    proc.pid, args.seconds, client if viewer else None
                )
                rows.append((viewer, daemon_cpu, own_cpu, polls))
            achieved = (sent.value - sent_before) / (time.monotonic() - sent_at)
            call = per_call(proc.pid, client, args.calls)
            snapshot = client.stats()
            stop.set()
            producer.join(30)
            while client.ping()["tasks"]["live"]:
                time.sleep(0.1)
            idle = per_call(proc.pid, client, args.calls)
        finally:
            stop.set()
            producer.join(30)
            stop_daemon(proc)
    print(
        f"load: {achieved:,.0f} submits/s achieved (asked {args.rate:,.0f}), {args.tenants} "
        f"tenants x 2 queues, 2 workers, durability {args.durability}"
    )
    shape = {kind: len(snapshot[kind]) for kind in ("queues", "tenants", "functions")}
    backlog = sum(row["backlog"] or 0 for row in snapshot["tenants"])
    print(f"backlog at the end of the windows: {backlog:,}")
    if achieved < 0.95 * args.rate or backlog > args.rate:
        print("  the daemon did not keep up: saturated, so the windows below compare nothing")
    print(f"stats reply: {call['bytes']:,} bytes msgpack; rows: {shape}")
    print(f"\n{'window':<10} {'viewer':<7} {'daemon CPU % of a core':>24} {'top CPU %':>10} polls")
    for i, (viewer, daemon_cpu, own_cpu, polls) in enumerate(rows, 1):
        print(f"{i:<10} {'on' if viewer else 'off':<7} {daemon_cpu / args.seconds * 100:>24.1f} "
              f"{own_cpu / args.seconds * 100 if viewer else 0:>10.2f} {polls}")  # fmt: skip
    off = [d for v, d, _, _ in rows if not v]
    on = [d for v, d, _, _ in rows if v]
    diff = (statistics.mean(on) - statistics.mean(off)) / args.seconds * 100
    print(f"difference on - off (mean of 2 windows each): {diff:+.2f} % of a core (noisy)")
    print()
    for name, c in (("under load", call), ("idle, after the load", idle)):
        print(
            f"per call, {name}: {c['calls']} stats() back to back in {c['elapsed']:.2f} s: "
            f"daemon {c['with']:.2f} CPU s against {c['without']:.2f} without -> "
            f"{c['per_call_ms']:.2f} ms CPU per call; round trip p50 {c['trip_p50_ms']:.2f} ms, "
            f"max {c['trip_max_ms']:.1f} ms"
        )
    share = max(call["per_call_ms"], idle["per_call_ms"]) / 1000 * 100  # one call per second
    print(f"top at one refresh per second: {share:.2f} % of one core of the daemon (target < 5 %)")


if __name__ == "__main__":
    main()
