"""What one open web console page costs the daemon: one page request per refresh.

    .venv/bin/python benchmarks/bench_web.py [--calls 300] [--seconds 20] [--rate 0]
                                             [--tenants 4] [--tasks 2000] [--streams 1,4]

A daemon with ``[web] http`` on a loopback port and 2 workers is given ``--tasks`` tasks over
``--tenants`` tenants with two queues each (a tenth of them fail, some stay scheduled), so the
overview has rows, series and percentiles to show. With ``--rate`` > 0 a producer also submits
no-ops at that rate throughout (``bench_top.produce``). Then, as ``bench_top.py`` measures
``top``:

1. **Per request** - the daemon's CPU (``/proc/<pid>/stat`` utime + stime) over ``--calls``
   back-to-back GETs of a page (the overview, the task list, a failed task's page, the
   failures page; a new connection each, as the browser's refresh), minus the same stretch of
   time without them: CPU seconds per page, hence the share of one core at one refresh per
   second; also the page size and round-trip time.
2. **Windows** - the daemon's CPU over ``--seconds`` without a viewer, then as long with one
   overview GET per second, in the order off, on, off, on. The difference is the console's
   share, but it is smaller than the noise of a shared 2-vCPU machine, so it is printed only
   as a cross-check of the per-request figure.

3. **Live** - the daemon's CPU over ``--seconds`` with ``--streams`` open overview event
   streams (``/events?view=overview``, what an open overview tab keeps), against a window
   without: the loop renders the overview once a second for all of them (one ``stats`` per
   scope, shared) and pushes it to those whose view changed. Printed per open console, with
   the updates each received. The producer submits in batches of 100 (``bench_top``), so
   the overview changes at most every ``100 / --rate`` seconds: ``--rate 200`` for an update
   each second, the most a console gets.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import platform
import socket as socket_module
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask.client import Client  # noqa: E402
from benchmarks.bench_daemon import start_daemon, stop_daemon  # noqa: E402
from benchmarks.bench_top import cpu_seconds, produce  # noqa: E402

WEB = '[workers]\nmin_workers = 2\nmax_workers = 2\n[web]\nhttp = "127.0.0.1:0"\n'


class Page:
    """GETs of one console page with a logged-in session, a new connection each."""

    def __init__(self, url: str, token: str) -> None:
        where = urlsplit(url)
        assert where.hostname is not None
        assert where.port is not None
        self.host, self.port = where.hostname, where.port
        reply = self._request("POST", "/login", f"token={token}")
        self.cookie = reply[1].split(";", 1)[0]

    def _request(self, method: str, path: str, body: str | None = None) -> tuple[int, str, int]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        if getattr(self, "cookie", None):
            headers["Cookie"] = self.cookie
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.getheader("Set-Cookie") or "", len(data)
        finally:
            connection.close()

    def get(self, path: str) -> int:
        status, _, size = self._request("GET", path)
        assert status == 200, (path, status)
        return size


def fill(socket: str, tenants: int, tasks: int) -> str:
    """``tasks`` tasks over the tenants' two queues: most succeed, a tenth fail, a tenth stay
    scheduled. Returns one failed task's ID."""
    per = max(1, tasks // tenants)
    failed = ""
    for n in range(tenants):
        client = Client(socket, tenant=f"t{n}")
        calls: list[dict[str, Any]] = []
        for i in range(per):
            queue = f"q{i % 2}"
            if i % 10 == 0:
                calls.append({"func": "benchmarks.tasks:noop", "queue": queue, "delay": 3600})
            elif i % 10 == 1:
                calls.append(
                    {"func": "tests.e2e.tasks:boom", "args": [f"error {i % 3}"], "queue": queue,
                     "retries": 0}
                )  # fmt: skip
            else:
                calls.append({"func": "benchmarks.tasks:noop", "queue": queue})
        handles = client.submit_many(calls)
        failed = handles[1].id if len(handles) > 1 else failed
    probe = Client(socket)
    while probe.ping()["tasks"]["queued"] or probe.ping()["tasks"]["running"]:
        time.sleep(0.1)
    return failed


def window(pid: int, seconds: float, page: Page | None) -> tuple[float, int]:
    """Daemon CPU seconds and page loads over ``seconds`` (one overview a second)."""
    before = cpu_seconds(pid)
    started = time.monotonic()
    loads = 0
    while (left := started + seconds - time.monotonic()) > 0:
        if page is None:
            time.sleep(left)
            continue
        page.get("/")
        loads += 1
        time.sleep(max(0.0, min(started + loads, started + seconds) - time.monotonic()))
    return cpu_seconds(pid) - before, loads


def live_window(page: Page, pid: int, seconds: float, streams: int) -> tuple[float, list[int]]:
    """Daemon CPU seconds over ``seconds`` with ``streams`` open overview event streams, and
    the updates each stream received."""
    sockets = []
    counts = [0] * streams
    request = (
        f"GET /events?view=overview HTTP/1.1\r\nHost: {page.host}:{page.port}\r\n"
        f"Cookie: {page.cookie}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    for _ in range(streams):
        sock = socket_module.create_connection((page.host, page.port), timeout=seconds + 30)
        sock.sendall(request)
        sockets.append(sock)

    def read(index: int, sock: socket_module.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                counts[index] += chunk.count(b"event: update")

    readers = [threading.Thread(target=read, args=(i, s), daemon=True)
               for i, s in enumerate(sockets)]  # fmt: skip
    for reader in readers:
        reader.start()
    before = cpu_seconds(pid)
    time.sleep(seconds)
    busy = cpu_seconds(pid) - before
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket_module.SHUT_RDWR)
        sock.close()
    for reader in readers:
        reader.join(5)
    return busy, counts


def per_request(pid: int, page: Page, path: str, calls: int) -> dict[str, float]:
    before = cpu_seconds(pid)
    started = time.monotonic()
    trips = []
    size = 0
    for _ in range(calls):
        t0 = time.perf_counter()
        size = page.get(path)
        trips.append(time.perf_counter() - t0)
    elapsed = time.monotonic() - started
    busy = cpu_seconds(pid) - before
    baseline, _ = window(pid, elapsed, None)
    trips.sort()
    return {
        "elapsed": elapsed,
        "with": busy,
        "without": baseline,
        "per_call_ms": (busy - baseline) / calls * 1000,
        "trip_p50_ms": statistics.median(trips) * 1000,
        "bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--streams", default="1,4", help="open event streams per live window")
    args = parser.parse_args()
    print(f"{platform.node()}  {platform.python_version()}  {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="asynctask-web-") as tmp:
        home = Path(tmp) / "home"
        proc = start_daemon(home, "normal", WEB)
        socket = str(home / "asynctask.sock")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        stop, sent = multiprocessing.Event(), multiprocessing.Value("q", 0)
        producer = None
        try:
            failed = fill(socket, args.tenants, args.tasks)
            token = json.loads(
                subprocess.run(
                    [sys.executable, "-m", "asynctask", "web-token", "--home", str(home), "--json"],
                    capture_output=True, text=True, check=True, env=env, cwd=ROOT,
                ).stdout
            )  # fmt: skip
            page = Page(token["url"], token["token"])
            if args.rate > 0:
                producer = multiprocessing.Process(
                    target=produce, args=(socket, args.rate, args.tenants, stop, sent)
                )
                producer.start()
                time.sleep(3)
            paths = {
                "overview": "/",
                "tasks": "/tasks",
                "failed task": f"/task?tenant=t{args.tenants - 1}&id={failed}",
                "failures": "/failures",
            }
            calls = {name: per_request(proc.pid, page, path, args.calls)
                     for name, path in paths.items()}  # fmt: skip
            rows = [(viewer, *window(proc.pid, args.seconds, page if viewer else None))
                    for viewer in (False, True, False, True)]  # fmt: skip
            live = []
            for streams in (int(n) for n in args.streams.split(",")):
                off, _ = window(proc.pid, args.seconds, None)
                on, counts = live_window(page, proc.pid, args.seconds, streams)
                live.append((streams, off, on, counts))
        finally:
            stop.set()
            if producer is not None:
                producer.join(30)
            stop_daemon(proc)
    load = f"{args.rate:,.0f} submits/s" if args.rate > 0 else "no load (idle daemon)"
    print(f"{args.tasks:,} tasks over {args.tenants} tenants x 2 queues; {load}")
    print(
        f"\n{'page':<12} {'bytes':>7} {'ms CPU/page':>12} {'trip p50 ms':>12} {'% core at 1/s':>14}"
    )
    for name, c in calls.items():
        print(f"{name:<12} {c['bytes']:>7,} {c['per_call_ms']:>12.2f} {c['trip_p50_ms']:>12.2f} "
              f"{c['per_call_ms'] / 10:>14.2f}")  # fmt: skip
    print(f"\n{'window':<8} {'viewer':<7} {'daemon CPU % of a core':>24} loads")
    for i, (viewer, cpu, loads) in enumerate(rows, 1):
        print(f"{i:<8} {'on' if viewer else 'off':<7} {cpu / args.seconds * 100:>24.2f} {loads}")
    off = [cpu for viewer, cpu, _ in rows if not viewer]
    on = [cpu for viewer, cpu, _ in rows if viewer]
    diff = (statistics.mean(on) - statistics.mean(off)) / args.seconds * 100
    print(f"difference on - off (mean of 2 windows each): {diff:+.2f} % of a core (noisy)")
    print(f"\n{'streams':<8} {'off % core':>11} {'on % core':>10} {'% per console':>14} "
          "updates each")  # fmt: skip
    for streams, off, on, counts in live:
        per = (on - off) / args.seconds * 100 / streams
        print(f"{streams:<8} {off / args.seconds * 100:>11.2f} {on / args.seconds * 100:>10.2f} "
              f"{per:>14.2f} {', '.join(map(str, counts))}")  # fmt: skip
    share = calls["overview"]["per_call_ms"] / 10
    print(f"one open overview at one refresh per second: {share:.2f} % of one core of the daemon "
          "(top: 0.2 %)")  # fmt: skip


if __name__ == "__main__":
    main()
