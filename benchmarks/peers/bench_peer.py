"""The peer workloads, against one peer module (t_<peer>.py); runs inside a peer venv.

    <venv>/bin/python bench_peer.py --peer huey --config huey --reps 3 --out results/huey.json

Normally started by run.py, which starts the Redis servers and sets PEER_BROKER_URL,
PEER_SIDE_URL, HUEY_DB and PYTHONPATH (this directory). Per rep, in this order:

  W1b  the peer's bulk API, N1 no-op tasks into an empty queue (peers that have one); tasks/s
  W5   8 producer processes, each with its own client, N5/8 one-call submits each into an empty
       queue, no workers; N5 / (last producer's finish - first producer's start)
  W1   one producer, one public-API call per no-op task, N1 into an empty queue; tasks/s
  W2   N2 queued no-op tasks (W1's, or re-queued when N2 != N1) drained by 2 worker processes;
       wall from the workers' Popen to the side counter reaching N2 (polled every 2 ms), the
       start-up (Popen -> first completion seen) and the first->last rate; peak RSS of the
       worker process trees, sampled every 100 ms
  W3   fresh workers, 20 warm-up tasks, 1 s idle, then N3 tasks one at a time at --rate/s;
       submit->start p50/p99 (nearest rank) in ms
  W4   N4 tasks that sleep 10 ms, pre-queued, then workers with ~50-way concurrency; wall and
       first->last tasks/s

A peer module provides: DISTS, IS_ASYNC, worker_cmds(io), describe(), durability(); sync peers
submit(kind, *args), flush() and optionally submit_bulk(n); async peers astartup(),
asubmit(kind, *args), aflush() and optionally ashutdown() and asubmit_bulk(n) (run in the
peer's event loop, like asubmit). kind is "noop", "lat" (one float:
the submit time) or "nap". Writes the JSON after every rep; exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

import common
import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
POLL_S = 0.002
RSS_EVERY_S = 0.1
STALL_S = 60.0  # no progress for this long while waiting: the workload failed
ALL = ("w1", "w1b", "w2", "w3", "w4", "w5")
REP_KEYS = (
    "w1_per_s",
    "w1_bulk_per_s",
    "w2_per_s",
    "w2_startup_s",
    "w2_first_last_per_s",
    "w3_p50_ms",
    "w3_p99_ms",
    "w4_per_s",
    "w4_first_last_per_s",
    "w5_per_s",
    "rss_mib",
)


class Failed(Exception):
    pass


class Peer:
    """One peer module behind a sync face (async peers run in one long-lived event loop)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mod: ModuleType = importlib.import_module(f"t_{name}")
        self.is_async = bool(getattr(self.mod, "IS_ASYNC", False))
        self.runner = asyncio.Runner() if self.is_async else None
        if self.runner is not None:
            self.runner.run(self.mod.astartup())

    def close(self) -> None:
        if self.runner is not None:
            if hasattr(self.mod, "ashutdown"):
                self.runner.run(self.mod.ashutdown())
            self.runner.close()

    @property
    def has_bulk(self) -> bool:
        return hasattr(self.mod, "submit_bulk") or hasattr(self.mod, "asubmit_bulk")

    def flush(self) -> None:
        if self.runner is not None:
            self.runner.run(self.mod.aflush())
        else:
            self.mod.flush()

    def bulk(self, n: int) -> float:
        t0 = time.perf_counter()
        if self.runner is not None and hasattr(self.mod, "asubmit_bulk"):
            self.runner.run(self.mod.asubmit_bulk(n))
        else:
            self.mod.submit_bulk(n)
        return time.perf_counter() - t0

    def submit_many(self, kind: str, n: int, rate: float = 0.0, stamp: bool = False) -> float:
        """n one-call submits (paced at `rate`/s if rate > 0); returns the elapsed seconds."""
        if self.runner is not None:
            return self.runner.run(_asubmit_many(self.mod.asubmit, kind, n, rate, stamp))
        return _submit_many(self.mod.submit, kind, n, rate, stamp)


def _submit_many(submit: Callable[..., Any], kind: str, n: int, rate: float, stamp: bool) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        if rate:
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        if stamp:
            submit(kind, time.time())
        else:
            submit(kind)
    return time.perf_counter() - t0


async def _asubmit_many(
    asubmit: Callable[..., Any], kind: str, n: int, rate: float, stamp: bool
) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        if rate:
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if stamp:
            await asubmit(kind, time.time())
        else:
            await asubmit(kind)
    return time.perf_counter() - t0


# --- workers ---------------------------------------------------------------------------------


class Workers:
    """The peer's worker command lines, each in its own session so that they can be stopped by
    process group (pool children included) without touching anything else."""

    def __init__(self, peer: Peer, io: bool, logdir: str, tag: str) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = []
        os.makedirs(logdir, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=HERE, PYTHONUNBUFFERED="1")
        self.t_popen = time.perf_counter()
        for i, argv in enumerate(peer.mod.worker_cmds(io)):
            exe = os.path.join(BIN, argv[0])
            argv = [exe if os.path.exists(exe) else argv[0], *argv[1:]]
            log = open(os.path.join(logdir, f"{tag}-{i}.log"), "wb")  # noqa: SIM115
            self.logs.append(log)
            self.procs.append(
                subprocess.Popen(
                    argv,
                    cwd=HERE,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise Failed(f"worker {p.args[0]} exited with {p.returncode} (see its log)")

    def rss_mib(self) -> float:
        total = 0
        for p in self.procs:
            try:
                root = psutil.Process(p.pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for q in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += q.memory_info().rss
        return total / 2**20

    def stop(self) -> None:
        # SIGTERM to each worker's whole group (its own session), as a terminal's Ctrl-C reaches
        # every process: pool children (saq, taskiq --workers) otherwise keep their parent waiting
        t0 = time.perf_counter()
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
        hung = [p.args[0] for p in self.procs if p.poll() is None]
        for p in self.procs:
            # the group is the session we made for this worker; SIGKILL whatever is left of it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            if p.poll() is None:
                p.wait(10)
        for log in self.logs:
            log.close()
        if hung or time.perf_counter() - t0 > 3:
            how = f"; SIGKILL for {hung}" if hung else ""
            print(f"  (stopping workers took {time.perf_counter() - t0:.1f} s{how})", flush=True)


def wait_for(target: int, workers: Workers | None, sample_rss: bool = False) -> dict[str, float]:
    """Poll the side counter until it reaches `target`. Times are perf_counter() values."""
    t_first = c_first = None
    peak = 0.0
    last_rss = 0.0
    last_n, last_change = -1, time.perf_counter()
    while True:
        n = common.done()
        now = time.perf_counter()
        if n and t_first is None:
            t_first, c_first = now, n
        if n >= target:
            break
        if sample_rss and workers is not None and now - last_rss >= RSS_EVERY_S:
            peak = max(peak, workers.rss_mib())
            last_rss = time.perf_counter()
        if n != last_n:
            last_n, last_change = n, now
        elif now - last_change > STALL_S:
            raise Failed(f"stalled at {n}/{target} for {STALL_S:.0f} s")
        if workers is not None and not n:
            workers.check_alive()
        time.sleep(POLL_S)
    if sample_rss and workers is not None:
        peak = max(peak, workers.rss_mib())
    assert t_first is not None
    assert c_first is not None
    return {"t_first": t_first, "c_first": c_first, "t_last": now, "rss": peak}


# --- workloads -------------------------------------------------------------------------------


def run_w1b(peer: Peer, n: int) -> float:
    peer.flush()
    dt = peer.bulk(n)
    peer.flush()
    return n / dt


def run_w1(peer: Peer, n: int) -> float:
    peer.flush()
    return n / peer.submit_many("noop", n)


def run_drain(peer: Peer, n: int, io: bool, logdir: str, tag: str) -> dict[str, Any]:
    """Workers start on a queue holding n tasks; returns wall/start-up/first->last figures."""
    common.reset()
    workers = Workers(peer, io, logdir, tag)
    try:
        w = wait_for(n, workers, sample_rss=not io)
    finally:
        workers.stop()
    wall = w["t_last"] - workers.t_popen
    steady = w["t_last"] - w["t_first"]
    return {
        "per_s": n / wall,
        "startup_s": w["t_first"] - workers.t_popen,
        "first_last_per_s": (n - w["c_first"]) / steady if steady > 0 else None,
        **({"rss_mib": w["rss"]} if not io else {}),
    }


def run_w3(peer: Peer, n: int, rate: float, logdir: str, tag: str) -> tuple[float, float]:
    peer.flush()
    common.reset()
    workers = Workers(peer, False, logdir, tag)
    try:
        peer.submit_many("noop", 20)
        wait_for(20, workers)
        time.sleep(1.0)
        common.reset()
        dt = peer.submit_many("lat", n, rate=rate, stamp=True)
        if n / dt < 0.95 * rate:
            print(f"  W3: achieved only {n / dt:.0f}/s of {rate:.0f}/s", flush=True)
        wait_for(n, workers)
        lat = sorted(common.latencies())
    finally:
        workers.stop()
        peer.flush()
    if len(lat) != n:
        raise Failed(f"W3: {len(lat)} latency samples for {n} tasks")

    def rank(q: float) -> float:
        return lat[max(0, math.ceil(q * len(lat)) - 1)] * 1000.0

    return rank(0.50), rank(0.99)


def run_w5(peer_name: str, n_total: int, producers: int) -> float:
    per = n_total // producers
    env = dict(os.environ, PYTHONPATH=HERE)
    argv = [sys.executable, os.path.abspath(__file__), "--peer", peer_name, "--producer", str(per)]
    procs = [
        subprocess.Popen(
            argv, cwd=HERE, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(producers)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                raise Failed(f"W5 producer did not get ready: {line!r}")
        for p in procs:  # all are set up (imports, client) before the first one starts
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        spans = []
        for p in procs:
            assert p.stdout is not None
            out = p.stdout.readline()
            if not out:
                raise Failed("W5 producer died (traceback above)")
            spans.append(json.loads(out))
        for p in procs:
            if p.wait(60) != 0:
                raise Failed(f"W5 producer exited with {p.returncode}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return per * producers / (max(s["t1"] for s in spans) - min(s["t0"] for s in spans))


def producer_main(peer_name: str, n: int) -> None:
    """One W5 producer: set up its own client, say ready, wait for go, submit n, report times."""
    peer = Peer(peer_name)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    t0 = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on the machine
    peer.submit_many("noop", n)
    t1 = time.monotonic()
    print(json.dumps({"t0": t0, "t1": t1}), flush=True)
    peer.close()


# --- driver ----------------------------------------------------------------------------------


def versions(peer: Peer) -> dict[str, str]:
    out = {}
    for dist in [*peer.mod.DISTS, "redis", "hiredis", "psutil"]:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    out["python"] = platform.python_version()
    with contextlib.suppress(Exception):  # huey has no broker; the server is still ours
        out["redis-server"] = common.redis_server_version()
    if peer.name == "huey":
        out["sqlite"] = peer.mod.describe()["sqlite"]
    return out


def bench(a: argparse.Namespace) -> int:
    only = set(a.only.split(","))
    unknown = only - set(ALL)
    if unknown:
        raise SystemExit(f"unknown workloads: {sorted(unknown)}")
    peer = Peer(a.peer)
    durable, how = peer.mod.durability()
    print(f"  settings: {json.dumps(peer.mod.describe())}", flush=True)
    print(f"  durability: {how}", flush=True)
    if "w1" in only and peer.has_bulk:
        only.add("w1b")
    res: dict[str, Any] = {
        "config": a.config,
        "peer": a.peer,
        "versions": versions(peer),
        "durable_submit": durable,
        "durability": how,
        "n": {
            "w1": a.n1 if "w1" in only else None,
            "w2": a.n2 if "w2" in only else None,
            "w4": a.n4 if "w4" in only else None,
            "w5": a.n5 if "w5" in only else None,
        },
        "reps": [],
    }
    logdir = os.path.join(a.logdir, a.config)
    failures = 0

    def step(name: str, fn: Callable[[], Any]) -> Any:
        nonlocal failures
        t = time.perf_counter()
        try:
            out = fn()
        except Exception as e:
            failures += 1
            print(f"  {name} FAILED: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
            try:
                peer.flush()
            except Exception:
                traceback.print_exc()
            return None
        print(f"  {name}: {_fmt(out)} ({time.perf_counter() - t:.1f} s)", flush=True)
        return out

    try:
        for rep_i in range(a.reps):
            rep = rep_i + 1
            print(f" rep {rep}/{a.reps}", flush=True)
            r: dict[str, Any] = dict.fromkeys(REP_KEYS)
            if "w1b" in only and peer.has_bulk:
                r["w1_bulk_per_s"] = step("W1 bulk tasks/s", lambda: run_w1b(peer, a.n1))
            if "w5" in only:
                peer.flush()
                r["w5_per_s"] = step(
                    f"W5 ({a.producers} producers) tasks/s",
                    lambda: run_w5(a.peer, a.n5, a.producers),
                )
                peer.flush()
            if "w1" in only:
                r["w1_per_s"] = step("W1 tasks/s", lambda: run_w1(peer, a.n1))
            if "w2" in only:
                queued = "w1" in only and r["w1_per_s"] is not None and a.n1 == a.n2
                if not queued:
                    peer.flush()
                    peer.submit_many("noop", a.n2)
                w2 = step("W2", lambda k=rep: run_drain(peer, a.n2, False, logdir, f"w2-rep{k}"))
                peer.flush()
                if w2:
                    r["w2_per_s"] = w2["per_s"]
                    r["w2_startup_s"] = w2["startup_s"]
                    r["w2_first_last_per_s"] = w2["first_last_per_s"]
                    r["rss_mib"] = w2["rss_mib"]
            if "w3" in only:
                w3 = step(
                    "W3 p50/p99 ms", lambda k=rep: run_w3(peer, a.n3, a.rate, logdir, f"w3-rep{k}")
                )
                if w3:
                    r["w3_p50_ms"], r["w3_p99_ms"] = w3
            if "w4" in only:
                peer.flush()
                peer.submit_many("nap", a.n4)
                w4 = step("W4", lambda k=rep: run_drain(peer, a.n4, True, logdir, f"w4-rep{k}"))
                peer.flush()
                if w4:
                    r["w4_per_s"] = w4["per_s"]
                    r["w4_first_last_per_s"] = w4["first_last_per_s"]
            res["reps"].append(r)
            tmp = a.out + ".tmp"
            with open(tmp, "w") as f:
                json.dump(res, f, indent=1)
                f.write("\n")
            os.replace(tmp, a.out)
    finally:
        peer.close()
    return 1 if failures else 0


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:,.2f}"
    if isinstance(x, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in x.items())
    if isinstance(x, tuple):
        return " / ".join(_fmt(v) for v in x)
    return str(x)


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwind through the finally blocks: workers get stopped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer", required=True, help="t_<peer>.py")
    ap.add_argument("--config", help="label written to the JSON (default: --peer)")
    ap.add_argument("--out", help="results JSON (default: results/<config>.json)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default=",".join(ALL), help="workloads, e.g. w1,w2,w5")
    ap.add_argument("--n1", type=int, default=20_000)
    ap.add_argument("--n2", type=int, default=20_000)
    ap.add_argument("--n3", type=int, default=500)
    ap.add_argument("--n4", type=int, default=2_000)
    ap.add_argument("--n5", type=int, default=20_000, help="total over all producers")
    ap.add_argument("--producers", type=int, default=8)
    ap.add_argument("--rate", type=float, default=200.0, help="W3 submits/s")
    ap.add_argument("--logdir", default=os.path.join(HERE, "results", "logs"))
    ap.add_argument("--producer", type=int, help=argparse.SUPPRESS)  # internal: one W5 producer
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    if a.producer is not None:
        producer_main(a.peer, a.producer)
        return
    a.config = a.config or a.peer
    a.out = a.out or os.path.join(HERE, "results", a.config + ".json")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    sys.exit(bench(a))


if __name__ == "__main__":
    main()
