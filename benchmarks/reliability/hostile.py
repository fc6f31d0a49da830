"""Hostile clients: what each bad-client pattern costs the daemon in memory and in loop stalls.

docs/contract.md "Robustness": the daemon's memory is bounded whatever clients do, and no single
request blocks the event loop for more than 50 ms. tests/e2e/test_connection_bounds.py checks
each bound on its own; this measures the cost of each pattern at scale, on one daemon:

* ``unread_replies``    connections send hello, then thousands of pings, and never read
* ``pre_handshake``     connections send a 64 KiB frame minus one byte before hello (the most
                        the daemon must buffer), others a length prefix over the limit, others
                        junk and hang up at once (churn)
* ``idle_half_sent``    connections that never send a byte, and ones that send hello then half a
                        frame
* ``queue_names``       one tenant (allowed ``max_queues = 25000``) submits tasks into 20,000
                        queue names, and another (default bound, 1,000) tries 2,000
* ``queue_reports``     with those queues loaded, an admin calls ``stats`` and ``queues``

For each: the daemon's RSS before, at its peak (sampled every 20 ms) and after the clients went
away, and the event-loop stall seen by a separate, well-behaved client process that pings every
10 ms (max and p99 round trip; on a loaded machine the floor is the machine's own jitter).
Connections stay below ``[server] max_connections_per_user`` (256: all of them are one uid).

    .venv/bin/python -m benchmarks.reliability.hostile [--scale 1.0]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import multiprocessing.connection
import select
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from asynctask.client import Client
from asynctask.errors import AsynctaskError
from asynctask.protocol import FrameDecoder, encode_frame
from benchmarks.bench_daemon import rss_mib
from benchmarks.reliability.common import Daemon, config_text, poll, sweep_cgroups

CONFIG = "[workers]\nmin_workers = 1\nmax_workers = 1\n[tenants.flood]\nmax_queues = 25000\n"
HELLO = encode_frame({"op": "hello", "rid": 0, "version": 1})
PING = encode_frame({"op": "ping", "rid": 1})
FAR = 10 * 365 * 86400.0


@dataclass
class Pattern:
    name: str
    rss_before: float = 0.0
    rss_peak: float = 0.0
    rss_after: float = 0.0
    stall_max_ms: float = 0.0
    stall_p99_ms: float = 0.0
    #: The daemon's own figure (``ping`` ``loop.slow``): the longest the event loop was held
    #: running during the pattern. The pinger's round trip also counts the time the daemon
    #: waited for a CPU while the flooding client and the pinger ran on this 2-core machine.
    held_max_ms: float = 0.0
    pings: int = 0
    ping_errors: int = 0
    notes: list[str] = field(default_factory=list)
    #: counts a test asserts on: oversize_closed, oversize, refused, stats_ms, ...
    figures: dict[str, float] = field(default_factory=dict)
    daemon_alive: bool = True

    def row(self) -> str:
        return (
            f"| {self.name} | {self.rss_before:.1f} | {self.rss_peak:.1f} | {self.rss_after:.1f} "
            f"| {self.held_max_ms:.0f} | {self.stall_max_ms:.0f} | {self.stall_p99_ms:.0f} "
            f"| {self.pings} "
            f"({self.ping_errors} errors) | {'; '.join(self.notes)} |"
        )


TABLE_HEAD = (
    "| pattern | RSS before MiB | RSS peak MiB | RSS after MiB | loop held max ms "
    "| ping max ms | ping p99 ms | pings | notes |\n|---|---|---|---|---|---|---|---|---|"
)


def _pinger(socket_path: str, conn: multiprocessing.connection.Connection) -> None:
    """In its own process: ping every 10 ms until told to stop; send back the round trips."""
    latencies: list[float] = []
    errors = 0
    client = Client(socket_path)
    next_at = time.perf_counter()
    conn.send("ready")
    while not conn.poll(0):
        started = time.perf_counter()
        try:
            client.ping()
            latencies.append(time.perf_counter() - started)
        except AsynctaskError:
            errors += 1
        next_at += 0.01
        time.sleep(max(0.0, next_at - time.perf_counter()))
    conn.send((latencies, errors))


class Measure:
    """Around one pattern: a pinger process and an RSS sampler thread."""

    def __init__(self, daemon: Daemon, result: Pattern) -> None:
        self.daemon = daemon
        self.result = result
        self.stop = threading.Event()
        context = multiprocessing.get_context("spawn")
        self.parent, child = context.Pipe()
        self.process = context.Process(target=_pinger, args=(str(daemon.socket), child))
        self.sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                self.result.rss_peak = max(self.result.rss_peak, rss_mib(self.daemon.pid))
            self.stop.wait(0.02)

    def __enter__(self) -> Measure:
        self.started = time.monotonic()
        self.result.rss_before = rss_mib(self.daemon.pid)
        self.process.start()
        if not self.parent.poll(60):
            raise RuntimeError("the pinger did not start")
        self.parent.recv()
        self.sampler.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.sampler.join(5)
        self.parent.send("stop")
        if self.parent.poll(30):
            latencies, errors = self.parent.recv()
            latencies.sort()
            self.result.pings = len(latencies)
            self.result.ping_errors = errors
            if latencies:
                self.result.stall_max_ms = latencies[-1] * 1000
                self.result.stall_p99_ms = latencies[int(len(latencies) * 0.99)] * 1000
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.result.daemon_alive = self.daemon.alive()
        if self.result.daemon_alive:
            with contextlib.suppress(Exception):
                slow = self.daemon.client().ping()["loop"]["slow"]
                during = [held for at, held, _ in slow if at >= self.started]
                self.result.held_max_ms = max(during, default=0.0)


def _connect(daemon: Daemon) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(daemon.socket))
    return sock


def _hello(daemon: Daemon) -> socket.socket:
    sock = _connect(daemon)
    sock.sendall(HELLO)
    decoder = FrameDecoder()
    while not decoder.feed(sock.recv(65536)):
        pass
    return sock


def _close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()
    socks.clear()


def unread_replies(daemon: Daemon, result: Pattern, scale: float) -> None:
    conns, pings = max(2, int(100 * scale)), max(1000, int(20_000 * scale))
    socks = [_hello(daemon) for _ in range(conns)]
    try:
        data = PING * pings
        sent = dict.fromkeys(range(conns), 0)
        for sock in socks:
            sock.setblocking(False)
        active = set(range(conns))
        while active:
            _, writable, _ = select.select([], [socks[i] for i in active], [], 0.5)
            if not writable:
                break  # the daemon stopped reading every one of them
            for sock in writable:
                i = socks.index(sock)
                with contextlib.suppress(BlockingIOError):
                    sent[i] += sock.send(data[sent[i] : sent[i] + 65536])
                if sent[i] >= len(data):
                    active.discard(i)
        total = sum(sent.values()) // len(PING)
        result.figures.update(sent=total, offered=conns * pings)
        result.notes.append(
            f"{conns} conns x {pings} pings: {total} sent before the daemon stopped reading"
            + (" (it never did)" if not active else "")
        )
        time.sleep(0.5)
    finally:
        _close_all(socks)


def pre_handshake(daemon: Daemon, result: Pattern, scale: float) -> None:
    conns = max(2, int(100 * scale))
    socks: list[socket.socket] = []
    try:
        for _ in range(conns):  # the most the daemon must hold before hello: 64 KiB each
            sock = _connect(daemon)
            sock.sendall(struct.pack(">I", 65536) + b"\x00" * 65535)
            socks.append(sock)
        oversize_closed = 0
        oversize = max(2, int(50 * scale))
        for _ in range(oversize):
            sock = _connect(daemon)
            sock.settimeout(2)
            try:
                sock.sendall(struct.pack(">I", 1 << 30) + b"\x00" * 1024)
                while sock.recv(65536):  # an error frame may come first, then the EOF
                    pass
                closed = True
            except TimeoutError:
                closed = False
            except OSError:
                closed = True  # reset: closed at once
            oversize_closed += closed
            sock.close()
        churn = max(10, int(1000 * scale))
        for _ in range(churn):
            sock = _connect(daemon)
            with contextlib.suppress(OSError):
                sock.sendall(b"\xff" * 4096)
            sock.close()
        result.figures.update(oversize=oversize, oversize_closed=oversize_closed)
        result.notes.append(
            f"{conns} x 64 KiB-1 partial frames held, "
            f"{oversize_closed} of {oversize} oversize prefixes closed at once, "
            f"{churn} junk-and-hang-up connects"
        )
        time.sleep(0.5)
    finally:
        _close_all(socks)


def idle_half_sent(daemon: Daemon, result: Pattern, scale: float) -> None:
    half = max(2, int(100 * scale))
    socks: list[socket.socket] = []
    try:
        socks.extend(_connect(daemon) for _ in range(half))
        for _ in range(half):
            sock = _hello(daemon)
            sock.sendall(struct.pack(">I", 1000) + b"\x80" * 500)
            socks.append(sock)
        result.notes.append(f"{half} idle before hello, {half} half-sent frames after hello")
        time.sleep(1.0)
    finally:
        _close_all(socks)


def queue_names(daemon: Daemon, result: Pattern, scale: float) -> None:
    count = max(1000, int(20_000 * scale))
    run_at = time.time() + FAR

    def submit(tenant: str, queue: Callable[[int], str]) -> tuple[float, float, float]:
        """(seconds, slowest submit of 500, RSS growth MiB) for ``count`` tasks."""
        client = daemon.client(tenant=tenant)
        before = rss_mib(daemon.pid)
        started = time.monotonic()
        worst = 0.0
        for first in range(0, count, 500):
            t0 = time.monotonic()
            client.submit_many(
                {"func": "benchmarks.tasks:noop", "queue": queue(i), "run_at": run_at}
                for i in range(first, min(count, first + 500))
            )
            worst = max(worst, time.monotonic() - t0)
        return time.monotonic() - started, worst, rss_mib(daemon.pid) - before

    # the control: as many tasks in one queue, so the growth per queue name can be told apart
    _, _, one_queue = submit("control", lambda i: "only")
    took, worst, many_queues = submit("flood", lambda i: f"q{i}")
    result.figures.update(
        kib_per_task=one_queue * 1024 / count,
        kib_per_queue=(many_queues - one_queue) * 1024 / count,
    )
    result.notes.append(
        f"tenant flood: {count} queues in {took:.1f} s (slowest submit of 500: "
        f"{worst * 1000:.0f} ms), RSS +{many_queues:.0f} MiB vs +{one_queue:.0f} MiB for "
        f"{count} tasks in one queue: ~{result.figures['kib_per_queue']:.0f} KiB per queue name"
    )
    bounded = daemon.client(tenant="bounded")
    refused = 0
    for i in range(2000):
        try:
            bounded.submit("benchmarks.tasks:noop", queue=f"b{i}", run_at=run_at)
        except AsynctaskError:
            refused += 1
    result.figures.update(queues=count, refused=refused)
    result.notes.append(f"tenant bounded (max_queues 1000): {refused} of 2000 refused")


def queue_reports(daemon: Daemon, result: Pattern, scale: float) -> None:
    admin = daemon.client()
    for name, call in (("stats", admin.stats), ("queues", admin.queues)):
        t0 = time.monotonic()
        try:
            reply = call()
        except AsynctaskError as exc:  # e.g. a reply over the client's max frame
            result.figures[f"{name}_failed"] = 1
            result.notes.append(f"{name} FAILED after {time.monotonic() - t0:.1f} s: {exc}")
            continue
        result.figures[f"{name}_ms"] = (time.monotonic() - t0) * 1000
        result.notes.append(
            f"{name}: {(time.monotonic() - t0) * 1000:.0f} ms, {len(repr(reply)) // 1024} KiB"
        )


PATTERNS: dict[str, Callable[[Daemon, Pattern, float], None]] = {
    "unread_replies": unread_replies,
    "pre_handshake": pre_handshake,
    "idle_half_sent": idle_half_sent,
    "queue_names": queue_names,
    "queue_reports": queue_reports,
}


def run(scale: float = 1.0, patterns: tuple[str, ...] = tuple(PATTERNS)) -> list[Pattern]:
    """Every pattern in turn on one daemon (queue_reports needs queue_names before it)."""
    results: list[Pattern] = []
    with tempfile.TemporaryDirectory(prefix="asynctask-hostile-") as tmp:
        daemon = Daemon(Path(tmp) / "home", config=config_text("full", CONFIG))
        try:
            daemon.start()
            for name in patterns:
                result = Pattern(name)
                results.append(result)
                with Measure(daemon, result):
                    try:
                        PATTERNS[name](daemon, result, scale)
                    except (AsynctaskError, OSError) as exc:  # reported; the next one runs
                        result.notes.append(f"pattern FAILED: {type(exc).__name__}: {exc}")
                        result.figures["failed"] = 1
                    # the clients are gone: wait until the daemon answers a fresh connection
                    poll(daemon.ping, 30, f"daemon answering after {name}")
                time.sleep(0.3)
                result.rss_after = rss_mib(daemon.pid)
                if not result.daemon_alive:
                    break
        finally:
            daemon.kill9()
            sweep_cgroups()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    print(TABLE_HEAD)
    for result in run(args.scale):
        print(result.row())


if __name__ == "__main__":
    main()
