"""The daemon runs the pool under uvloop: spawning (pass_fds, new session), frames, exits, kills."""

from __future__ import annotations

import asyncio
from pathlib import Path

import uvloop

from .conftest import Harness, alive, eventually, stop_and_check, value


async def scenario(tmp_path: Path) -> None:
    harness = Harness(workers=2)
    await harness.pool.start()
    assert value(await harness.run("add", 1, 2)) == 3
    assert value(await harness.run("async_mul", 3, 3)) == 9
    died = await harness.run("hard_exit", 5)
    assert died.error is not None
    assert died.error["message"] == f"worker {died.pid} exited with code 5 while running the task"
    await harness.full()
    pid_file = tmp_path / "grandchild.pid"
    aid = harness.submit("sleep_with_grandchild", str(pid_file), 30, timeout=0.3)
    grandchild = int(await eventually(lambda: pid_file.exists() and pid_file.read_text()))
    timed_out = await harness.outcome(aid)
    assert timed_out.error is not None
    assert timed_out.error["kind"] == "timeout"
    await eventually(lambda: not alive(grandchild), what="the grandchild to be killed")
    await harness.full()
    slow = harness.submit("sleep", 30)
    loop = asyncio.get_running_loop()
    assert await stop_and_check(harness, loop.time() + 0.2) == [slow]


def test_pool_under_uvloop(tmp_path: Path) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        runner.run(scenario(tmp_path))
