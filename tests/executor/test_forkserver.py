"""Workers forked from the fork server (``zygote.py``): same workers, started by a fork."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.executor.conftest import Harness, alive, eventually, stop_and_check, value


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def modules_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


async def test_workers_are_forked_by_the_fork_server_and_run_tasks():
    harness = Harness(workers=2)
    await harness.pool.start()
    try:
        server = harness.pool.fork_server_pid
        assert server is not None
        assert "asynctask.executor.zygote" in modules_of(server)
        assert all(parent_of(pid) == server for pid in harness.pool.pids)
        assert value(await harness.run("add", 2, 3)) == 5
        worker = value(await harness.run("pid"))
        assert parent_of(worker) == server
    finally:
        await stop_and_check(harness)
    assert not alive(server)


async def test_without_the_fork_server_workers_are_the_daemons_children():
    harness = Harness(workers=1, fork_server=False)
    await harness.pool.start()
    try:
        assert harness.pool.fork_server_pid is None
        assert parent_of(harness.pool.pids[0]) == os.getpid()
        assert value(await harness.run("add", 1, 1)) == 2
    finally:
        await stop_and_check(harness)


async def test_a_dead_fork_server_takes_its_workers_and_the_pool_recovers():
    harness = Harness(workers=1)
    await harness.pool.start()
    try:
        server = harness.pool.fork_server_pid
        assert server is not None
        aid = harness.submit("sleep", 30)
        worker = harness.pool.pid_of(aid)
        assert worker is not None
        os.kill(server, signal.SIGKILL)
        outcome = await harness.outcome(aid)
        assert outcome.error is not None
        assert outcome.error["kind"] == "worker_died"
        await eventually(lambda: not alive(worker), what="the worker to die with its server")
        await harness.full()  # a replacement, started without the dead server
        assert value(await harness.run("add", 2, 2)) == 4
        restarted = await eventually(lambda: harness.pool.fork_server_pid, what="a new fork server")
        assert restarted != server
    finally:
        await stop_and_check(harness)


async def test_a_forked_worker_reports_its_exit_code():
    harness = Harness(workers=1)
    await harness.pool.start()
    try:
        outcome = await harness.run("hard_exit", 7)
        assert outcome.error is not None
        assert outcome.error["message"] == (
            f"worker {outcome.pid} exited with code 7 while running the task"
        )
    finally:
        await stop_and_check(harness)
