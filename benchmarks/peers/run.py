"""Peer task-queue benchmark: start Redis, run every peer config, print a markdown table.

    benchmarks/peers/setup.sh                                     # redis-server + the venvs
    .venv-peers/bin/python benchmarks/peers/run.py                # everything, 3 reps (~20 min)
    .venv-peers/bin/python benchmarks/peers/run.py --configs huey,celery --reps 1
    .venv-peers/bin/python benchmarks/peers/run.py --reps 1 --quick   # smoke run, small N
    .venv-peers/bin/python benchmarks/peers/run.py --table-only   # table from results/*.json

Standard library only. Starts three redis-server processes of its own on 127.0.0.1, each with a
temporary data dir, and stops exactly those PIDs at the end (also on an error or Ctrl-C):
  6390  broker, Redis's durability defaults: appendonly no (RDB snapshots off: --save "")
  6391  durable broker: appendonly yes, appendfsync always (the *-aof-always configs)
  6392  side channel (completion counter, start times), no persistence
The PostgreSQL peer (procrastinate) also needs a private PostgreSQL cluster: when such a config
is selected, run.py starts pgserver.py with the project's own Python (.venv: the cluster is the
tests' tests/pgcluster.py, which needs asyncpg) and stops it by closing its stdin, or by SIGTERM
to the PID it started. Unix socket only, fsync=on, synchronous_commit=on.
Each config runs bench_peer.py in its venv, in a subprocess, one config at a time, and writes
results/<config>.json (raw per-rep numbers); worker logs go to results/logs/<config>/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(HERE, "results")
VENV = os.environ.get("PEER_VENV", os.path.join(ROOT, ".venv-peers"))
VENV_ARQ = os.environ.get("PEER_VENV_ARQ", os.path.join(ROOT, ".venv-peers-arq"))
# procrastinate 3 (psycopg 3) in a venv of its own: adding it to .venv-peers would change that
# venv's pinned list and so re-install every other peer
VENV_PROC = os.environ.get("PEER_VENV_PROC", os.path.join(ROOT, ".venv-peers-procrastinate"))
PROJECT_PY = os.path.join(ROOT, ".venv", "bin", "python")  # runs pgserver.py
PORT_FAST, PORT_AOF, PORT_SIDE = 6390, 6391, 6392
FAST = f"redis://127.0.0.1:{PORT_FAST}/0"
AOF = f"redis://127.0.0.1:{PORT_AOF}/0"
SIDE = f"redis://127.0.0.1:{PORT_SIDE}/0"

FULL_N = {"n1": 20_000, "n2": 20_000, "n3": 500, "n4": 2_000, "n5": 20_000}
QUICK_N = {"n1": 2_000, "n2": 2_000, "n3": 100, "n4": 400, "n5": 2_000}
AOF_ONLY = "w1,w2,w5"  # W1 includes W1 bulk where the peer has a bulk API

# config -> (venv, peer module, extra env, N overrides (capped by --quick), workloads or None)
# procrastinate runs W1 (+ bulk) and W2 only: the workloads issue 16's targets name
CONFIGS: dict[str, tuple[str, str, dict[str, str], dict[str, int], str | None]] = {
    "huey": (VENV, "huey", {}, {}, None),
    "celery": (VENV, "celery", {}, {}, None),
    "dramatiq": (VENV, "dramatiq", {}, {}, None),
    "rq-simple": (VENV, "rq", {"PEER_VARIANT": "simple"}, {"n2": 5_000}, None),
    "arq": (VENV_ARQ, "arq", {}, {}, None),
    "taskiq": (VENV, "taskiq", {}, {}, None),
    "saq": (VENV, "saq", {}, {}, None),
    # what fsync-before-ack costs: broker on 6391 (appendfsync always); smaller N as before
    "dramatiq-aof-always": (
        VENV,
        "dramatiq",
        {"PEER_BROKER_URL": AOF},
        {"n1": 5_000, "n2": 5_000},
        AOF_ONLY,
    ),
    "rq-simple-aof-always": (
        VENV,
        "rq",
        {"PEER_BROKER_URL": AOF, "PEER_VARIANT": "simple"},
        {"n1": 5_000, "n2": 2_000},
        AOF_ONLY,
    ),
    "celery-aof-always": (
        VENV,
        "celery",
        {"PEER_BROKER_URL": AOF},
        {"n1": 5_000, "n2": 5_000},
        AOF_ONLY,
    ),
    "procrastinate": (VENV_PROC, "procrastinate", {}, {}, "w1,w2"),
}
PG_CONFIGS = {"procrastinate"}  # configs whose broker is the private PostgreSQL cluster


# --- Redis -----------------------------------------------------------------------------------


def redis_cmd(port: int, *args: str, timeout: float = 5.0) -> bytes:
    """One command over RESP; returns the reply's payload (simple, integer or bulk string)."""
    req = f"*{len(args)}\r\n" + "".join(f"${len(x.encode())}\r\n{x}\r\n" for x in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req.encode())
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"redis {port} closed the connection")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n")
        if head[:1] == b"-":
            raise RuntimeError(f"redis {port}: {head[1:].decode()}")
        if head[:1] != b"$":
            return head[1:]
        size = int(head[1:])
        while len(rest) < size + 2:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"redis {port} closed the connection")
            rest += chunk
        return rest[:size]


def port_busy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Redis:
    def __init__(self, port: int, workdir: str, *extra: str) -> None:
        if port_busy(port):
            raise RuntimeError(f"port {port} is already in use: stop that server first")
        self.port = port
        self.dir = os.path.join(workdir, f"redis-{port}")
        os.makedirs(self.dir)
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", self.dir]
        argv += ["--save", "", "--daemonize", "no", "--loglevel", "warning", *extra]
        with open(os.path.join(self.dir, "redis.log"), "wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server on {port} exited: {self.log()}")
            try:
                info = redis_cmd(port, "INFO", "server").decode()
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server on {port} did not start: {self.log()}") from e
                time.sleep(0.05)
        if f"process_id:{self.proc.pid}\r" not in info:  # answered by a server we did not start
            self.stop()
            raise RuntimeError(f"port {port} answered by another redis-server")
        self.version = info.split("redis_version:", 1)[1].split("\r", 1)[0]

    def log(self) -> str:
        with open(os.path.join(self.dir, "redis.log"), errors="replace") as f:
            return f.read()[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to the PID we started
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class PgServer:
    """The private PostgreSQL cluster, through pgserver.py run with the project's Python."""

    def __init__(self) -> None:
        if not os.path.exists(PROJECT_PY):
            raise RuntimeError(f"no {PROJECT_PY}: run `make venv` (pgserver.py needs asyncpg)")
        self.proc = subprocess.Popen(
            [PROJECT_PY, os.path.join(HERE, "pgserver.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("pgserver.py did not start a cluster (its error is above)")
        info = json.loads(line)
        self.url: str = info["url"]
        self.version: str = info["version"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # pgserver.py stops the cluster and exits
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.terminate()  # SIGTERM to the PID we started: it still stops the cluster
                self.proc.wait(60)


# --- table -----------------------------------------------------------------------------------


def med(xs: list[Any], fmt: Callable[[float], str]) -> str:
    vals = [float(x) for x in xs if x is not None]
    if not vals:
        return "—"
    m = statistics.median(vals)
    return f"{fmt(m)} ({fmt(min(vals))}–{fmt(max(vals))})" if len(vals) > 1 else fmt(m)


def f0(x: float) -> str:
    return f"{x:,.0f}"


def f1(x: float) -> str:
    return f"{x:,.1f}"


def f2(x: float) -> str:
    return f"{x:,.2f}"


COLUMNS: list[tuple[str, str, Callable[[float], str]]] = [
    ("W1 submit tasks/s", "w1_per_s", f0),
    ("W1 bulk tasks/s", "w1_bulk_per_s", f0),
    ("W5 8 producers tasks/s", "w5_per_s", f0),
    ("W2 drain tasks/s (wall)", "w2_per_s", f0),
    ("W2 start-up s", "w2_startup_s", f2),
    ("W2 first→last tasks/s", "w2_first_last_per_s", f0),
    ("W3 p50 ms", "w3_p50_ms", f1),
    ("W3 p99 ms", "w3_p99_ms", f1),
    ("W4 tasks/s (wall)", "w4_per_s", f0),
    ("W4 first→last tasks/s", "w4_first_last_per_s", f0),
    ("worker peak RSS MiB (W2)", "rss_mib", f0),
]


def table(results: str = RESULTS) -> str:
    rows = []
    names = list(CONFIGS)
    extra = sorted(
        f[:-5] for f in os.listdir(results) if f.endswith(".json") and f[:-5] not in CONFIGS
    )
    for name in names + extra:
        path = os.path.join(results, name + ".json")
        if os.path.exists(path):
            with open(path) as f:
                rows.append(json.load(f))
    head = ["config", "durable submit", "N W1/W2/W4/W5", "reps"] + [c[0] for c in COLUMNS]
    out = [
        "Cells: median (min–max) of the reps. W2 and W4 wall times run from the Popen of the "
        "workers (start-up included); 'first→last' excludes start-up. W5: 8 producer processes, "
        "one call per task, from the first start to the last finish.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        n = r.get("n") or {}
        ns = "/".join(f"{n[k]:,}" if n.get(k) else "–" for k in ("w1", "w2", "w4", "w5"))
        reps = r.get("reps") or []
        cells = [med([x.get(key) for x in reps], fmt) for _, key, fmt in COLUMNS]
        durable = "yes" if r.get("durable_submit") else "no"
        out.append(
            f"| {r['config']} | {durable} | {ns} | {len(reps)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(out)


# --- main ------------------------------------------------------------------------------------


def bench_args(name: str, a: argparse.Namespace) -> list[str]:
    _, _, _, over, only = CONFIGS[name]
    n = dict(FULL_N, **over)
    if a.quick:
        n = {k: min(v, QUICK_N[k]) for k, v in n.items()}
    args = [f"--{k}={v}" for k, v in n.items()]
    return args + ([f"--only={only}"] if only else [])


def run_config(name: str, a: argparse.Namespace, workdir: str, pg_url: str | None) -> int:
    venv, peer, env_extra, _, _ = CONFIGS[name]
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        print(f"== {name}: no venv {venv} (run benchmarks/peers/setup.sh)", flush=True)
        return 2
    for port in (PORT_FAST, PORT_AOF, PORT_SIDE):
        redis_cmd(port, "FLUSHALL")
    huey_db = os.path.join(workdir, "huey", "huey.db")
    shutil.rmtree(os.path.dirname(huey_db), ignore_errors=True)
    os.makedirs(os.path.dirname(huey_db))
    out = os.path.join(a.results, name + ".json")
    if os.path.exists(out):
        os.remove(out)
    env = dict(
        os.environ,
        PEER_BROKER_URL=FAST,
        PEER_SIDE_URL=SIDE,
        HUEY_DB=huey_db,
        PYTHONPATH=HERE,
        PYTHONUNBUFFERED="1",
    )
    if pg_url is not None:
        env["PEER_PG_URL"] = pg_url
    env.update(env_extra)
    cmd = [py, os.path.join(HERE, "bench_peer.py"), "--peer", peer, "--config", name]
    cmd += ["--reps", str(a.reps), "--out", out, "--logdir", os.path.join(a.results, "logs")]
    cmd += bench_args(name, a)
    print(f"== {name}: {' '.join(cmd[2:])}", flush=True)
    t = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=HERE)
    try:
        rc = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: let it stop its workers, then make sure
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(f"== {name}: rc={rc} in {time.monotonic() - t:.0f} s", flush=True)
    return rc


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwind through the finally blocks: servers get stopped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated; default all")
    ap.add_argument("--quick", action="store_true", help="small N for a smoke run")
    ap.add_argument("--table-only", action="store_true", help="print the table from results/")
    ap.add_argument("--results", default=RESULTS, help="directory for <config>.json")
    a = ap.parse_args()
    os.makedirs(a.results, exist_ok=True)
    if a.table_only:
        print(table(a.results))
        return
    want = [c for c in a.configs.split(",") if c]
    unknown = [c for c in want if c not in CONFIGS]
    if unknown:
        ap.error(f"unknown configs {unknown}; known: {', '.join(CONFIGS)}")
    if shutil.which("redis-server") is None:
        sys.exit("redis-server not found: run benchmarks/peers/setup.sh")
    signal.signal(signal.SIGTERM, _sigterm)
    started = datetime.datetime.now(datetime.UTC)
    workdir = tempfile.mkdtemp(prefix="peerbench-")
    servers: list[Redis] = []
    pg: PgServer | None = None
    failed: list[str] = []
    t0 = time.monotonic()
    try:
        servers.append(Redis(PORT_FAST, workdir, "--appendonly", "no"))
        servers.append(Redis(PORT_AOF, workdir, "--appendonly", "yes", "--appendfsync", "always"))
        servers.append(Redis(PORT_SIDE, workdir, "--appendonly", "no"))
        print(
            f"redis-server {servers[0].version} on {PORT_FAST}/{PORT_AOF}/{PORT_SIDE}, "
            f"data in {workdir}; {os.cpu_count()} CPUs, {platform.platform()}",
            flush=True,
        )
        if PG_CONFIGS & set(want):
            pg = PgServer()
            print(f"{pg.version}, private cluster: {pg.url}", flush=True)
        for name in want:
            url = pg.url if pg is not None and name in PG_CONFIGS else None
            if run_config(name, a, workdir, url) != 0:
                failed.append(name)
    finally:
        if pg is not None:
            pg.stop()
        for s in servers:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    mins = (time.monotonic() - t0) / 60
    print(f"\n{started:%Y-%m-%d %H:%M} UTC, reps={a.reps}{' (quick)' if a.quick else ''}, ", end="")
    print(f"{mins:.1f} min\n")
    print(table(a.results))
    if failed:
        print(f"\nFAILED (see the output above and results/logs/): {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
