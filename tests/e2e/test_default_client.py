"""The default clients behind ``f.submit()`` and friends (``client/_default.py``): one
connection per thread reused call after call, a new one in a forked child, one
``AsyncClient`` per event loop; all against a real daemon."""

from __future__ import annotations

import asyncio
import os
import threading
import warnings

import pytest

from asynctask.client import _default, configure_default, default_async_client, default_client
from tests.e2e.codetasks import report


@pytest.fixture
def served(daemon):
    configure_default(socket=daemon.socket)
    yield daemon
    configure_default()


def _socket_of(client):
    return client._connection._sock  # the one connection's socket, once connected


def test_calls_reuse_one_connection(served):
    assert report.submit(1).result(timeout=20) == 2
    first = _socket_of(default_client())
    assert first is not None
    assert report.delay(2).result(timeout=20) == 4
    assert report.apply_async((3,)).result(timeout=20) == 6
    assert default_client() is default_client()
    assert _socket_of(default_client()) is first


def test_each_thread_has_a_connection_of_its_own_kept_for_its_calls(served):
    results: list[int] = []
    clients: list[tuple[object, object]] = []
    errors: list[BaseException] = []

    def work(base: int) -> None:
        try:
            handles = [report.submit(base + n) for n in range(25)]
            results.extend(handle.result(timeout=30) for handle in handles)
            client = default_client()
            clients.append((client, _socket_of(client)))
            assert default_client() is client
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(100 * t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(results) == sorted(2 * (100 * t + n) for t in range(6) for n in range(25))
    assert len({id(client) for client, _ in clients}) == 6
    assert len({id(sock) for _, sock in clients}) == 6


def test_a_forked_child_gets_a_connection_of_its_own(served):
    assert report.submit(1).result(timeout=20) == 2
    parent = default_client()
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            child = default_client()
            ok = child is not parent and report.submit(20).result(timeout=20) == 40
            ok = ok and _socket_of(child) is not _socket_of(parent)
            os.write(write, b"ok" if ok else b"no")
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 2) == b"ok"
    os.close(read)
    assert status == 0
    assert report.submit(3).result(timeout=20) == 6  # the parent's connection still works
    assert default_client() is parent


def test_a_child_made_by_a_plain_fork_without_the_hook_still_starts_afresh(served):
    """The pid check, for a fork the ``register_at_fork`` hook did not see."""
    old = default_client()
    _default._STATE.pid = -1  # as if this process were a child of the one that made it
    fresh = default_client()
    assert fresh is not old
    assert _default._STATE.pid == os.getpid()
    assert report.submit(4).result(timeout=20) == 8
    assert default_client() is fresh


def test_each_event_loop_has_its_own_async_client(served):
    async def main():
        handle = await report.asubmit(5)
        return default_async_client(), await handle.result(timeout=20)

    first, one = asyncio.run(main())
    second, two = asyncio.run(main())
    assert (one, two) == (10, 10)
    assert first is not second
