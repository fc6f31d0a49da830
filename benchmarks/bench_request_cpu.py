"""The daemon's CPU per request (submit, status, ping), per thread, against a socket floor.

    .venv/bin/python benchmarks/bench_request_cpu.py [--root CHECKOUT] [--reps 3] [--quick]

Why: throughput figures (W1, W5) on this shared 2-vCPU machine move with whatever else runs;
CPU time charged to the daemon per request moves far less, so a regression in the request path
shows here first. Each rep starts a daemon from checkout ``--root`` (default: this one; point it
at an older checkout for a before/after) with durability full and 2 workers, and for each op and
for 1 and 8 producer processes (each its own ``asynctask.client.Client``, one blocking call at a
time, all released together after a warm-up) measures:

- the daemon's CPU µs per request, user and system, per thread: utime/stime of every
  ``/proc/PID/task/TID/stat`` before and after. The event-loop thread is the one whose TID is
  the PID ("loop"); the others are "python#k" by rank of TID, since CPython 3.11 does not give
  the OS a thread's name. At ``3356436`` (``py-spy dump``): #1 the SQLite writer thread
  ("asynctask-store-writer"), #2 aiosqlite's reader thread, #3 uvloop's "uvloop_0".
  The total comes from ``/proc/PID/stat``, which also keeps the time of threads that exited in
  between; the daemon's worker processes are not counted (nothing runs: every submit is due an
  hour later, ``benchmarks.tasks:noop``);
- the producers' own CPU µs per request (``resource.getrusage`` in each producer, sent back
  through a queue): the client library's share of a round trip;
- requests per second, from the common start to the last producer's finish.

``status`` asks for one existing (scheduled) task, ``ping`` is the cheapest op the daemon has.
The "floor" rows are a minimal uvloop ``asyncio.Protocol`` server on a Unix socket answering
msgpack frames with the project's framing (4-byte big-endian length), driven by the same 1 and 8
blocking producers over raw sockets: what one round trip costs a Python server on this machine
at all, so the daemon's rows can be read as "floor + our work". The daemon's background (timers,
heartbeats) is charged to whatever op runs; it is small against seconds of load. CPU times tick
at ``SC_CLK_TCK`` (100 Hz here): with N requests a row resolves about 10 ms / N.

Medians (min-max) of ``--reps``; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import resource
import socket
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from queue import Empty
from typing import Any, cast

import msgpack

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask.client import Client  # noqa: E402
from benchmarks.ab_w2 import WORKERS_2, daemon_of  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")
_HEADER = struct.Struct(">I")
_FUNC = "benchmarks.tasks:noop"
#: Calls each producer makes before the measured ones: connection, hello, caches.
_WARMUP = 50
OPS = ("submit", "status", "ping")
#: Cheap ops make more requests than ``--n`` (submits), so each cell runs for seconds and the
#: 10 ms CPU tick stays a small fraction of it.
_SCALE = {"status": 5, "ping": 5, "floor": 5}
PRODUCERS = (1, 8)

#: (utime, stime) ticks and thread name, by TID.
ThreadTimes = dict[int, tuple[int, int, str]]


def _stat_fields(path: Path) -> tuple[str, list[str]]:
    """(comm, the fields after it) of one ``stat`` file; comm may hold spaces and parens."""
    text = path.read_text()
    head, tail = text.rsplit(")", 1)
    return head.split("(", 1)[1], tail.split()


def process_ticks(pid: int) -> tuple[int, int]:
    """(utime, stime) of the whole process, exited threads included."""
    _, fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    return int(fields[11]), int(fields[12])


def thread_ticks(pid: int) -> ThreadTimes:
    """(utime, stime, name) of every live thread of ``pid``; a thread that exits while the
    directory is read is skipped."""
    out: ThreadTimes = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm, fields = _stat_fields(task / "stat")
        except FileNotFoundError:
            continue
        out[int(task.name)] = (int(fields[11]), int(fields[12]), comm)
    return out


def per_thread_us(pid: int, before: ThreadTimes, after: ThreadTimes, n: int) -> dict[str, float]:
    """µs per request by "<thread> user|sys". The loop thread (TID == PID) is "loop"; the others
    are "<name>#<k>", k their rank by TID (creation order), since CPython 3.11 does not hand a
    ``threading.Thread`` name to the OS and all of them are "python". A thread born in between
    counts from zero."""
    out: dict[str, float] = {}
    others = sorted(tid for tid in after if tid != pid)
    for tid, (user, system, comm) in after.items():
        user0, system0, _ = before.get(tid, (0, 0, comm))
        name = "loop" if tid == pid else f"{comm}#{others.index(tid) + 1}"
        out[f"{name} user"] = (user - user0) / _TICK / n * 1e6
        out[f"{name} sys"] = (system - system0) / _TICK / n * 1e6
    return out


# --- producers -------------------------------------------------------------------------------


def _client_call(sock: str, op: str, task_id: str) -> Callable[[], object]:
    """One blocking request of ``op`` on a new ``Client`` of the daemon at ``sock``."""
    client = Client(sock)
    if op == "submit":
        due = time.time() + 3600
        return lambda: client.submit(_FUNC, run_at=due)
    if op == "status":
        return lambda: client.status(task_id)
    return client.ping


def _floor_call(sock: str) -> Callable[[], object]:
    """One blocking submit-shaped frame and its reply over a raw Unix socket."""
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(sock)
    rid = 0

    def call() -> bytes:
        nonlocal rid
        rid += 1
        body = msgpack.packb(
            {"op": "submit", "rid": rid, "func": _FUNC, "run_at": time.time() + 3600}
        )
        conn.sendall(_HEADER.pack(len(body)) + body)
        (size,) = _HEADER.unpack(conn.recv(4, socket.MSG_WAITALL))
        return conn.recv(size, socket.MSG_WAITALL)

    return call


def _producer(
    sock: str, op: str, task_id: str, count: int, ready: Queue[Any], go: Event, done: Queue[Any]
) -> None:
    """Warm up, report ready, wait for ``go``, make ``count`` calls one at a time; report
    (own user s, own system s, finish time)."""
    call = _floor_call(sock) if op == "floor" else _client_call(sock, op, task_id)
    for _ in range(_WARMUP):
        call()
    ready.put(True)
    go.wait()
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(count):
        call()
    after = resource.getrusage(resource.RUSAGE_SELF)
    done.put((after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, time.time()))


def _get(queue: Queue[Any], procs: list[Any]) -> Any:
    """The next item of ``queue``; ``SystemExit`` once a producer has died instead."""
    while True:
        try:
            return queue.get(timeout=1)
        except Empty:
            if any(proc.exitcode not in (None, 0) for proc in procs):
                raise SystemExit("a producer died; its traceback is above") from None


def measure(
    pid: int, sock: str, op: str, producers: int, n: int, task_id: str = ""
) -> dict[str, float]:
    """One cell: ``n`` requests of ``op`` from ``producers`` processes against server ``pid``.
    Figures in µs per request, plus "req/s"."""
    ctx = multiprocessing.get_context("fork")
    ready: Queue[Any] = ctx.Queue()
    done: Queue[Any] = ctx.Queue()
    go = ctx.Event()
    count = n // producers
    procs = [
        ctx.Process(target=_producer, args=(sock, op, task_id, count, ready, go, done))
        for _ in range(producers)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        _get(ready, procs)
    threads0, total0 = thread_ticks(pid), process_ticks(pid)
    began = time.time()
    go.set()
    reports = [_get(done, procs) for _ in procs]
    threads1, total1 = thread_ticks(pid), process_ticks(pid)
    for proc in procs:
        proc.join()
    requests = count * producers
    row = per_thread_us(pid, threads0, threads1, requests)
    row["daemon user"] = (total1[0] - total0[0]) / _TICK / requests * 1e6
    row["daemon sys"] = (total1[1] - total0[1]) / _TICK / requests * 1e6
    row["daemon"] = row["daemon user"] + row["daemon sys"]
    live = sum(v for k, v in row.items() if not k.startswith("daemon"))
    row["exited"] = row["daemon"] - live
    row["tick"] = 1e6 / _TICK / requests
    row["client user"] = sum(r[0] for r in reports) / requests * 1e6
    row["client sys"] = sum(r[1] for r in reports) / requests * 1e6
    row["req/s"] = requests / (max(r[2] for r in reports) - began)
    return row


# --- the floor server ------------------------------------------------------------------------


class _Echo(asyncio.Protocol):
    """Answers each framed msgpack request with a small submit-like reply (its ``rid``, an id)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 4:
            (size,) = _HEADER.unpack_from(self._buffer)
            if len(self._buffer) < 4 + size:
                break
            request = msgpack.unpackb(bytes(self._buffer[4 : 4 + size]))
            del self._buffer[: 4 + size]
            body = msgpack.packb({"rid": request["rid"], "ok": True, "id": "0" * 26})
            assert self._transport is not None
            self._transport.write(_HEADER.pack(len(body)) + body)


def _floor_server(path: str) -> None:
    import uvloop

    async def serve() -> None:
        await asyncio.get_running_loop().create_unix_server(_Echo, path)
        await asyncio.Future()

    uvloop.run(serve())


def floor_rep(n: int) -> dict[tuple[str, int], dict[str, float]]:
    """The floor rows of one rep, on a fresh server process."""
    with tempfile.TemporaryDirectory(prefix="asynctask-floor-") as tmp:
        path = str(Path(tmp) / "echo.sock")
        server = multiprocessing.get_context("fork").Process(target=_floor_server, args=(path,))
        server.start()
        try:
            while not os.path.exists(path):
                time.sleep(0.01)
            assert server.pid is not None
            return {
                ("floor", p): measure(server.pid, path, "floor", p, n * _SCALE["floor"])
                for p in PRODUCERS
            }
        finally:
            server.kill()
            server.join()


def daemon_rep(root: str, n: int) -> dict[tuple[str, int], dict[str, float]]:
    """Every op x producers cell of one rep, on one fresh daemon from checkout ``root``."""
    with tempfile.TemporaryDirectory(prefix="asynctask-reqcpu-") as tmp:
        home = Path(tmp) / "home"
        with daemon_of(root, home, WORKERS_2, durability="full") as (pid, client):
            sock = str(home / "asynctask.sock")
            task_id = client.submit(_FUNC, run_at=time.time() + 3600).id
            client.close()
            return {
                (op, p): measure(pid, sock, op, p, n * _SCALE.get(op, 1), task_id)
                for op in OPS
                for p in PRODUCERS
            }


# --- report ----------------------------------------------------------------------------------


def _cell(values: list[float]) -> str:
    """median (min-max); one decimal below 100."""
    med = statistics.median(values)
    digits = 1 if med < 100 else 0
    if len(values) == 1:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def _threads(rep: dict[str, float]) -> set[str]:
    return {k.rsplit(" ", 1)[0] for k in rep if k.endswith((" user", " sys"))} - {
        "daemon",
        "client",
        "loop",
    }


def report(reps: list[dict[tuple[str, int], dict[str, float]]]) -> None:
    """The table (Markdown, as in RESULTS.md), then the other threads one by one."""
    cells = list(reps[0])
    print()
    print(
        "| op | producers | requests/s | daemon CPU µs/req | of it sys | loop thread user "
        "| loop thread sys | other threads | producer user | producer sys |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for cell in cells:
        rows = [rep[cell] for rep in reps]

        def col(key: str, rows: list[dict[str, float]] = rows) -> str:
            return _cell([row.get(key, 0.0) for row in rows])

        others = [
            sum(v for k, v in row.items() if k.rsplit(" ", 1)[0] in _threads(row)) for row in rows
        ]
        op, producers = cell
        print(
            f"| {op} | {producers} | {col('req/s')} | {col('daemon')} | {col('daemon sys')} "
            f"| {col('loop user')} | {col('loop sys')} | {_cell(others)} "
            f"| {col('client user')} | {col('client sys')} |"
        )
    print()
    print("Other threads of the server, µs/req user / sys (median; #k = rank by TID):")
    for cell in cells:
        names = sorted(set().union(*(_threads(rep[cell]) for rep in reps)))
        parts = []
        for name in names:
            user = statistics.median(rep[cell].get(f"{name} user", 0.0) for rep in reps)
            system = statistics.median(rep[cell].get(f"{name} sys", 0.0) for rep in reps)
            if user + system > 0:
                parts.append(f"{name} {user:,.1f} / {system:,.1f}")
        exited = statistics.median(rep[cell]["exited"] for rep in reps)
        if exited > 2 * reps[0][cell]["tick"]:  # beyond rounding of per-thread ticks
            parts.append(f"threads that exited {exited:,.1f}")
        print(f"  {cell[0]} x{cell[1]} ({len(names)} other threads): " + (", ".join(parts) or "-"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(ROOT), help="checkout the daemon runs from")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--n", type=int, default=8_000, help="submits per cell (5x for the cheaper ops)"
    )
    parser.add_argument("--quick", action="store_true", help="small N, one rep: a smoke run")
    args = parser.parse_args()
    n, reps = (400, 1) if args.quick else (args.n, args.reps)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, load {os.getloadavg()[0]:.2f}; "
        f"daemon from {args.root}; {n} submits per cell (x5 for status, ping, floor), "
        f"{reps} rep(s), clock tick {1e3 / _TICK:g} ms",
        flush=True,
    )
    results: list[dict[tuple[str, int], dict[str, float]]] = []
    for rep in range(reps):
        cells = daemon_rep(args.root, n)
        cells.update(floor_rep(n))
        results.append(cells)
        summary = ", ".join(
            f"{op} x{p} {row['daemon']:,.0f} µs {row['req/s']:,.0f}/s"
            for (op, p), row in cells.items()
        )
        print(f"rep {rep + 1}: {summary}; load {os.getloadavg()[0]:.2f}", flush=True)
    report(results)


if __name__ == "__main__":
    main()
