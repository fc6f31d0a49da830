"""A client connection holds bounded memory for a bounded time (docs/contract.md,
"Robustness"; issue 14).

Real daemons, raw Unix-socket clients: no hello, a huge length prefix before hello, idle
connections, replies never read, more connections than a user may have, a flood of bad frames,
and a burst of connects the daemon has not accepted yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from asynctask.client import AsyncClient
from asynctask.errors import TooManyConnections
from asynctask.protocol import FrameDecoder, encode_frame
from tests.e2e.conftest import DaemonProcess, poll
from tests.e2e.rawsocket import connect, read_frame

FAST = '[server]\nhandshake_timeout = "300ms"\nidle_timeout = "600ms"\n'
HELLO = encode_frame({"op": "hello", "rid": 0, "version": 1})


def _hello(daemon: DaemonProcess) -> socket.socket:
    sock = connect(daemon)
    sock.sendall(HELLO)
    reply = read_frame(sock)
    assert reply["ok"], reply
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the daemon closed ``sock`` (frames before the EOF are read and dropped)."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"still open after {seconds}s") from None
    return time.monotonic() - start


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _peak_rss(pid: int, seconds: float) -> int:
    """The largest RSS of ``pid`` seen over ``seconds``."""
    peak = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, _rss(pid))
        time.sleep(0.05)
    return peak


def _log_lines(daemon: DaemonProcess, needle: str) -> int:
    return sum(needle in line for line in daemon.log.read_text().splitlines())


def test_no_hello_is_closed_after_the_handshake_timeout(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon(FAST).start()
    with connect(daemon) as silent, connect(daemon) as half:
        half.sendall(HELLO[:5])  # half a hello: it never completes
        assert _closed_within(silent, 5) < 3
        assert _closed_within(half, 5) < 3
    with _hello(daemon) as greeted:  # a hello in time is served
        greeted.sendall(encode_frame({"op": "ping", "rid": 1}))
        assert read_frame(greeted)["pid"] == daemon.proc.pid


def test_a_big_length_prefix_before_hello_closes_at_once(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon().start()  # the default 5 s handshake: the close must not wait for it
    with connect(daemon) as sock:
        sock.sendall(struct.pack(">I", 1 << 20))
        reply = read_frame(sock)
        assert reply["error"]["code"] == "protocol"
        assert "65536" in reply["error"]["message"]
        assert _closed_within(sock, 2) < 2
    # 20 connections that each start a 1 MiB frame: nothing of it is kept.
    before = _rss(daemon.proc.pid)
    body = b"\x00" * (1 << 20)
    socks = [connect(daemon) for _ in range(20)]
    for sock in socks:
        with contextlib.suppress(OSError):  # closed under our feet: what should happen
            sock.sendall(struct.pack(">I", len(body) + 16) + body)
    grown = _rss(daemon.proc.pid) - before
    for sock in socks:
        sock.close()
    assert grown < 8 << 20, f"daemon RSS grew by {grown >> 20} MiB"
    # A hello under 64 KiB (padded) is still fine, and max_frame applies after it.
    with connect(daemon) as sock:
        sock.sendall(encode_frame({"op": "hello", "rid": 0, "version": 1, "pad": "x" * 60000}))
        assert read_frame(sock)["ok"]
        sock.sendall(encode_frame({"op": "ping", "rid": 1, "pad": "x" * 200_000}))
        assert read_frame(sock)["ok"]


def test_an_idle_connection_is_closed_but_a_long_wait_is_not_idle(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon(FAST).start()
    with _hello(daemon) as idle:
        assert 0.3 < _closed_within(idle, 5) < 3
    task = daemon.client().submit("tests.e2e.tasks:sleep", 1.5).id
    with _hello(daemon) as waiting:
        waiting.sendall(encode_frame({"op": "wait", "rid": 1, "id": task, "timeout": 20}))
        reply = read_frame(waiting)  # 1.5 s, longer than idle_timeout: still answered
        assert reply["ok"], reply
        assert reply["task"]["state"] == "succeeded"
        assert _closed_within(waiting, 5) < 3  # and idle afterwards


def test_clients_connect_again_after_an_idle_close(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    """A program that keeps a Client for hours is not told "daemon unavailable" because its
    connection idled out: the request had not been sent, so it goes on a new connection."""
    daemon = make_daemon(FAST).start()
    with daemon.client() as client:
        assert client.ping()["pid"] == daemon.proc.pid
        sock = client._connection._sock  # the daemon closing it makes it readable (EOF)
        poll(lambda: select.select([sock], [], [], 0)[0], timeout=5)
        assert client.ping()["pid"] == daemon.proc.pid

    async def idle_async_client() -> None:
        async with AsyncClient(daemon.socket) as client:
            assert (await client.ping())["pid"] == daemon.proc.pid
            await client._connection._reader_task  # it ends when the daemon closes the connection
            assert (await client.ping())["pid"] == daemon.proc.pid

    asyncio.run(asyncio.wait_for(idle_async_client(), 10))


def test_unread_replies_stop_the_daemon_reading(make_daemon: Callable[..., DaemonProcess]) -> None:
    daemon = make_daemon().start()
    ping = encode_frame({"op": "ping", "rid": 1})
    data = memoryview(ping * 200_000)  # 200,000 pings, whose replies are never read
    with _hello(daemon) as flood:
        before = _rss(daemon.proc.pid)
        flood.setblocking(False)
        sent = 0
        while sent < len(data):
            _, writable, _ = select.select([], [flood], [], 2.0)
            if not writable:
                break  # the daemon stopped reading: the kernel's buffers are full
            try:
                sent += flood.send(data[sent : sent + 65536])
            except BlockingIOError:
                continue
        assert sent < len(data), "the daemon read 200,000 pings whose replies were never read"
        grown = _rss(daemon.proc.pid) - before
        assert grown < 16 << 20, f"daemon RSS grew by {grown >> 20} MiB"
        started = time.monotonic()
        assert daemon.client().ping()["pid"] == daemon.proc.pid  # others are served
        assert time.monotonic() - started < 1.0
        # Reading the replies lets the daemon read again: every ping sent is answered.
        flood.setblocking(True)
        flood.settimeout(10)
        decoder = FrameDecoder()
        answered = 0
        while answered < sent // len(ping):
            answered += len(decoder.feed(flood.recv(1 << 20)))


@pytest.fixture
def opened() -> Iterator[list[socket.socket]]:
    """Sockets a test opens, closed however it ends."""
    socks: list[socket.socket] = []
    yield socks
    for sock in socks:
        sock.close()


def _served(daemon: DaemonProcess, opened: list[socket.socket]) -> socket.socket | None:
    """A new connection that said hello, or None if the daemon refused it."""
    sock = connect(daemon)
    opened.append(sock)
    sock.sendall(HELLO)
    if read_frame(sock)["ok"]:
        return sock
    sock.close()
    return None


def test_large_replies_not_read_stay_bounded(make_daemon: Callable[..., DaemonProcess]) -> None:
    """200 pipelined ``status`` requests for a task with a 900 KB result, never read: the
    daemon neither reads them all nor holds 200 encoded copies (180 MB) of the reply."""
    daemon = make_daemon().start()
    with daemon.client() as client:
        task = client.submit("tests.e2e.tasks:echo", "x" * 900_000)
        task.result(timeout=30)
    status = encode_frame({"op": "status", "rid": 1, "id": task.id})
    with _hello(daemon) as flood:
        before = _rss(daemon.proc.pid)
        flood.settimeout(5)
        with contextlib.suppress(TimeoutError):  # the daemon may stop reading before the end
            flood.sendall(status * 200)
        grown = _peak_rss(daemon.proc.pid, 1.5) - before  # what it took in is answered
        assert grown < 48 << 20, f"daemon RSS grew by {grown >> 20} MiB"
        assert daemon.client().ping()["pid"] == daemon.proc.pid


def test_connections_per_user_are_capped(
    make_daemon: Callable[..., DaemonProcess], opened: list[socket.socket]
) -> None:
    daemon = make_daemon("[server]\nmax_connections_per_user = 5\n").start()
    # Polled: the start-up ping's connection may not be gone yet.
    held = [poll(lambda: _served(daemon, opened), timeout=10) for _ in range(5)]
    with connect(daemon) as sixth:
        refusal = read_frame(sixth)  # said before any request
        assert refusal["rid"] is None
        assert refusal["error"]["code"] == "too_many_connections"
        assert "max_connections_per_user" in refusal["error"]["message"]
        sixth.sendall(HELLO)
        assert _closed_within(sixth, 5) < 2
    with pytest.raises(TooManyConnections, match="max_connections_per_user"):
        daemon.client().ping()  # the Python client raises the daemon's reason
    held.pop().close()
    assert poll(lambda: _served(daemon, opened), timeout=10)  # a place freed is a place to take


def test_tasks_have_their_own_connection_cap(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path, opened: list[socket.socket]
) -> None:
    """Workers run as the daemon's uid (an admin's) where the sandbox keeps it: a task's
    connections count per tenant, so a task cannot lock the admin out, nor the admin a task."""
    daemon = make_daemon("[server]\nmax_connections_per_user = 3\n").start()
    start, out = tmp_path / "start", tmp_path / "out"
    with daemon.client("a") as client:
        client.submit(
            "tests.e2e.tasks_connections:open_connections", str(daemon.socket), 4, str(start),
            str(out),
        )  # fmt: skip
    for _ in range(3):
        poll(lambda: _served(daemon, opened), timeout=10)
    assert _served(daemon, opened) is None  # the admin's uid is at its cap
    start.touch()
    poll(out.exists, timeout=30)
    assert json.loads(out.read_text()) == ["ok", "ok", "ok", "TooManyConnections"]


def test_bad_frames_write_a_bounded_number_of_log_lines(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon().start()
    for _ in range(300):
        with connect(daemon) as sock:
            sock.sendall(b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1")  # not msgpack
            assert read_frame(sock)["error"]["code"] == "protocol"
    assert daemon.client().ping()["pid"] == daemon.proc.pid
    assert _log_lines(daemon, "closing connection from pid") <= 3


def test_a_burst_of_connects_fits_the_listen_backlog(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon().start()
    socks: list[socket.socket] = []
    os.kill(daemon.proc.pid, signal.SIGSTOP)  # nothing is accepted: every connect waits in line
    try:
        for _ in range(500):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(str(daemon.socket))
            except BlockingIOError:  # the backlog is full
                sock.close()
                break
            socks.append(sock)
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
    try:
        assert len(socks) == 500
        for sock in socks[:50]:
            sock.setblocking(True)
            sock.settimeout(10)
            sock.sendall(HELLO)
            assert read_frame(sock)["ok"]
    finally:
        for sock in socks:
            sock.close()
