"""The worker pool against real worker subprocesses: results, errors, deaths, kills, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from asynctask import protocol
from asynctask.executor import forkserver, spawner
from asynctask.executor.pool import Job, PoolConfig, WorkerPool
from asynctask.executor.taskcontext import current_task

from .conftest import (
    DEFAULT_CONTEXT,
    TASKS,
    Harness,
    alive,
    children,
    eventually,
    stop_and_check,
    value,
)

# -- results ---------------------------------------------------------------------------------


async def test_sync_function_result(harness: Harness) -> None:
    outcome = await harness.run("add", 2, 3)
    assert value(outcome) == 5
    assert outcome.pid in harness.pool.pids
    assert value(await harness.run("echo", 1, "a", b"raw", key=[1, 2])) == [
        [1, "a", b"raw"],
        {"key": [1, 2]},
    ]


async def test_async_function_and_returned_coroutine(harness: Harness) -> None:
    assert value(await harness.run("async_mul", 6, 7)) == 42
    assert value(await harness.run("returns_coroutine", 5)) == 10


async def test_decorated_object_and_nested_attribute(harness: Harness) -> None:
    assert value(await harness.run("decorated", 1, 1)) == 2
    assert value(await harness.run("Namespace.nested", 1)) == 2


async def test_current_task_inside_a_task(harness: Harness) -> None:
    context = {"id": "abc", "tenant": "acme", "attempt": 3, "labels": {"team": "data"}}
    outcome = await harness.run("context", context=context)
    assert value(outcome) == context
    # An asyncio task the task creates inherits the context.
    assert value(await harness.run("async_context", context=context)) == {"id": "abc"}


def test_current_task_outside_a_task() -> None:
    with pytest.raises(RuntimeError, match="only available inside a running task"):
        current_task()


# -- errors the task raises ------------------------------------------------------------------


async def test_exception_kind_type_message_traceback(harness: Harness) -> None:
    outcome = await harness.run("boom", "it broke")
    assert not outcome.ok
    assert outcome.result is None
    error = outcome.error
    assert error is not None
    assert (error["kind"], error["type"], error["message"]) == (
        "exception",
        "ValueError",
        "it broke",
    )
    assert "tasks_for_tests.py" in error["traceback"]
    assert "in boom" in error["traceback"]
    assert "ValueError: it broke" in error["traceback"]
    assert "child.py" not in error["traceback"]  # the worker's own frames are trimmed
    custom = (await harness.run("raise_custom")).error
    assert custom is not None
    assert custom["type"] == f"{TASKS}.CustomError"


async def test_fail_throttled_and_memory_error(harness: Harness) -> None:
    fail = (await harness.run("fail", "never again")).error
    assert fail is not None
    assert (fail["kind"], fail["type"], fail["message"]) == (
        "fail",
        "asynctask.errors.Fail",
        "never again",
    )
    throttled = (await harness.run("throttled", 2.5)).error
    assert throttled is not None
    assert (throttled["kind"], throttled["retry_after"]) == ("throttled", 2.5)
    no_hint = (await harness.run("throttled", None)).error
    assert no_hint is not None
    assert no_hint["kind"] == "throttled"
    assert "retry_after" not in no_hint
    memory = (await harness.run("out_of_memory")).error
    assert memory is not None
    assert (memory["kind"], memory["type"]) == ("memory_limit", "MemoryError")


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        ("no_such_module_xyz:fn", "no module named 'no_such_module_xyz'"),
        (f"{TASKS}:missing", f"module '{TASKS}' has no attribute 'missing'"),
        (f"{TASKS}:Namespace.missing", "has no attribute 'Namespace.missing'"),
        (f"{TASKS}:not_callable", "it is a int object, not a callable"),
        ("not-a-module:fn", "'package.module:function'"),
    ],
)
async def test_import_errors(harness: Harness, func: str, expected: str) -> None:
    error = (await harness.run(func)).error
    assert error is not None
    assert error["kind"] == "import"
    assert expected in error["message"]
    assert repr(func) in error["message"]


async def test_unpackable_result_and_payload(harness: Harness) -> None:
    bad = (await harness.run("bad_result")).error
    assert bad is not None
    assert bad["kind"] == "bad_result"
    assert "(returned a object): result has type object, which cannot be" in bad["message"]
    too_big = (await harness.run("big_result", protocol.DEFAULT_MAX_FRAME)).error
    assert too_big is not None
    assert too_big["kind"] == "bad_result"
    assert "limit" in too_big["message"]
    garbage = (await harness.run("add", payload=b"\xc1")).error
    assert garbage is not None
    assert garbage["kind"] == "exception"
    assert "payload cannot be unpacked" in garbage["message"]
    wrong_shape = (await harness.run("add", payload=protocol.pack({"a": 1}))).error
    assert wrong_shape is not None
    assert "[args_list, kwargs_map" in wrong_shape["message"]


async def test_exit_and_interrupt_do_not_kill_the_worker() -> None:
    harness = Harness(workers=1)
    await harness.pool.start()
    try:
        pid = value(await harness.run("pid"))
        for func, args, error_type in [
            ("call_exit", (3,), "SystemExit"),
            ("interrupt", (), "KeyboardInterrupt"),
            ("async_exit", (), "SystemExit"),
        ]:
            outcome = await harness.run(func, *args)
            assert outcome.error is not None
            assert (outcome.error["kind"], outcome.error["type"]) == ("exception", error_type)
            assert outcome.pid == pid
        # The worker and its event loop still work after all that.
        assert value(await harness.run("async_mul", 2, 2)) == 4
        assert value(await harness.run("pid")) == pid
    finally:
        await stop_and_check(harness)


async def test_task_output_is_sent_per_attempt_and_not_to_the_workers_log(
    tmp_path: Path,
) -> None:
    log = tmp_path / "workers.log"
    harness = Harness(workers=1, output_path=str(log))
    await harness.pool.start()
    try:
        aid = harness.submit("print_and_return", "hello-out")
        assert value(await harness.outcome(aid)) == "hello-out"
        assert harness.logs[aid] == [("stdout", "hello-out\n"), ("stderr", "hello-out\n")]
        assert "hello-out" not in log.read_text()
        other = harness.submit("print_and_return", "second")
        await harness.outcome(other)
        assert [data for _, data in harness.logs[other]] == ["second\n", "second\n"]
    finally:
        await stop_and_check(harness)


async def test_prints_threads_logging_and_a_last_unterminated_line_are_captured(
    harness: Harness,
) -> None:
    aid = harness.submit("chatty", "t")
    await harness.outcome(aid)
    stdout = "".join(data for stream, data in harness.logs[aid] if stream == "stdout")
    stderr = "".join(data for stream, data in harness.logs[aid] if stream == "stderr")
    assert stdout == "t line 1\nt from a thread\nt no newline"
    assert stderr.endswith(" WARNING task: t warned\n")  # logging, captured (capture.py)
    assert stderr.count("\n") == 1


async def test_configured_paths_are_importable(tmp_path: Path) -> None:
    (tmp_path / "extra_path_module.py").write_text("def triple(x):\n    return 3 * x\n")
    harness = Harness(workers=1, paths=(str(tmp_path),))
    await harness.pool.start()
    try:
        assert value(await harness.run("extra_path_module:triple", 3)) == 9
    finally:
        await stop_and_check(harness)


# -- workers that die, hang or misbehave -----------------------------------------------------


async def test_worker_os_exit_is_reported_and_replaced(harness: Harness) -> None:
    idle_calls = harness.idle_calls  # a forked replacement may be ready before run() returns
    outcome = await harness.run("hard_exit", 3)
    assert outcome.error is not None
    assert outcome.error["kind"] == "worker_died"
    assert outcome.error["message"] == (
        f"worker {outcome.pid} exited with code 3 while running the task"
    )
    assert not alive(outcome.pid)
    await harness.full()
    await eventually(lambda: harness.idle_calls > idle_calls, what="on_idle for the replacement")
    assert outcome.pid not in harness.pool.pids
    assert value(await harness.run("add", 1, 1)) == 2


async def test_worker_killed_by_a_signal(harness: Harness) -> None:
    aid = harness.submit("sleep", 30)
    pid = harness.pool.pid_of(aid)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    outcome = await harness.outcome(aid)
    assert outcome.error is not None
    assert (
        outcome.error["message"] == f"worker {pid} died with signal SIGKILL while running the task"
    )
    await harness.full()


async def test_idle_worker_death_is_replaced_quietly(harness: Harness) -> None:
    victim = harness.pool.pids[0]
    os.kill(victim, signal.SIGKILL)
    await eventually(lambda: victim not in harness.pool.pids, what="the dead worker to go")
    await harness.full()
    assert harness.outcomes == {}


async def test_a_worker_that_corrupts_its_frames_is_killed(harness: Harness) -> None:
    outcome = await harness.run("corrupt_frame_socket")
    assert outcome.error is not None
    assert outcome.error["kind"] == "worker_died"
    assert "broke the frame protocol" in outcome.error["message"]
    await harness.full()


async def test_timeout_kills_the_task_and_its_grandchild(harness: Harness, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    aid = harness.submit("sleep_with_grandchild", str(pid_file), 30, timeout=0.5)
    worker = harness.pool.pid_of(aid)
    assert worker is not None
    grandchild = int(await eventually(lambda: pid_file.exists() and pid_file.read_text()))
    assert alive(grandchild)
    outcome = await harness.outcome(aid)
    assert outcome.error is not None
    assert outcome.error["kind"] == "timeout"
    assert outcome.error["type"] == "TimeoutError"
    assert outcome.error["message"] == "attempt exceeded its timeout of 0.5s"
    assert outcome.pid == worker
    await eventually(lambda: not alive(worker) and not alive(grandchild), what="both to be killed")
    await harness.full()


async def test_timeout_escalates_to_sigkill(harness: Harness) -> None:
    aid = harness.submit("ignore_sigterm_and_sleep", 30, timeout=0.2)
    worker = harness.pool.pid_of(aid)
    assert worker is not None
    outcome = await harness.outcome(aid)
    assert outcome.error is not None
    assert outcome.error["kind"] == "timeout"
    await eventually(lambda: not alive(worker), what="SIGKILL after the grace")
    await harness.full()


async def test_a_result_in_time_is_not_a_timeout(harness: Harness) -> None:
    assert value(await harness.run("sleep", 0.05, timeout=5)) == "slept"
    await asyncio.sleep(0)  # the cancelled timer must not fire later
    assert len(harness.outcomes) == 1


async def test_cancel(harness: Harness) -> None:
    aid = harness.submit("sleep", 30)
    worker = harness.pool.pid_of(aid)
    assert harness.pool.cancel(aid) is True
    assert harness.pool.cancel(aid) is False
    assert harness.pool.cancel(12345) is False
    outcome = await harness.outcome(aid)
    assert outcome.error is not None
    assert (outcome.error["kind"], outcome.error["type"]) == ("exception", "Cancelled")
    assert outcome.pid == worker
    await harness.full()


# -- the pool's own contract -----------------------------------------------------------------


async def test_repr_and_counts(harness: Harness) -> None:
    assert repr(harness.pool) == "<WorkerPool size=2 idle=2 busy=0 starting=0>"
    aid = harness.submit("sleep", 30)
    assert repr(harness.pool) == "<WorkerPool size=2 idle=1 busy=1 starting=0>"
    assert harness.pool.running == {aid}
    harness.pool.cancel(aid)
    assert repr(harness.pool) == "<WorkerPool size=2 idle=1 busy=0 starting=1>"
    await harness.full()
    assert repr(harness.pool) == "<WorkerPool size=2 idle=2 busy=0 starting=0>"


async def test_run_refuses_when_it_cannot(harness: Harness) -> None:
    first = harness.submit("sleep", 30)
    with pytest.raises(RuntimeError, match="already running"):
        harness.pool.run(Job(first, f"{TASKS}:add", protocol.pack([[1, 2], {}]), {}, None))
    harness.submit("sleep", 30)
    with pytest.raises(RuntimeError, match="no idle worker"):
        harness.submit("add", 1, 2)


async def test_run_with_an_unencodable_context_changes_nothing(harness: Harness) -> None:
    with pytest.raises(TypeError):
        harness.submit("add", 1, 2, context={"labels": object()})
    assert repr(harness.pool) == "<WorkerPool size=2 idle=2 busy=0 starting=0>"


async def test_stop_while_a_replacement_is_starting(harness: Harness) -> None:
    harness.pool.cancel(harness.submit("sleep", 30))
    assert harness.pool.starting == 1
    assert await stop_and_check(harness) == []


async def test_recycle_after_max_tasks() -> None:
    harness = Harness(workers=1, max_tasks_per_worker=2)
    await harness.pool.start()
    try:
        pids = [value(await harness.run("pid")) for _ in range(4)]
        assert pids[0] == pids[1] != pids[2] == pids[3]
        await harness.full()
    finally:
        await stop_and_check(harness)


async def test_stop_with_deadline_returns_unfinished(harness: Harness) -> None:
    loop = asyncio.get_running_loop()
    quick = harness.submit("sleep", 0.2)
    slow = harness.submit("sleep", 30)
    pids = harness.pool.pids
    started = loop.time()
    unfinished = await stop_and_check(harness, loop.time() + 1.0)
    assert unfinished == [slow]
    assert loop.time() - started < 1.0 + harness.config.kill_grace + 1.0
    assert value(harness.outcomes[quick]) == "slept"
    assert slow not in harness.outcomes
    assert not any(alive(pid) for pid in pids)
    assert repr(harness.pool) == "<WorkerPool size=0 idle=0 busy=0 starting=0>"
    with pytest.raises(RuntimeError, match="stopping"):
        harness.submit("add", 1, 2)


async def test_stop_without_waiting(harness: Harness) -> None:
    running = harness.submit("sleep", 30)
    assert await stop_and_check(harness, None) == [running]
    assert harness.outcomes == {}
    assert await harness.pool.stop(None) == []  # a second stop is harmless


async def test_stop_returns_when_everything_finished_before_the_deadline(
    harness: Harness,
) -> None:
    loop = asyncio.get_running_loop()
    aid = harness.submit("sleep", 0.1)
    started = loop.time()
    assert await stop_and_check(harness, loop.time() + 30) == []
    assert loop.time() - started < 5
    assert aid in harness.outcomes


async def test_start_fails_clearly_when_the_worker_cannot_start(tmp_path: Path) -> None:
    broken = WorkerPool(PoolConfig(python=str(tmp_path / "no-python")), print, lambda: None)
    with pytest.raises(RuntimeError, match="cannot start a worker"):
        await broken.start()
    exits = WorkerPool(PoolConfig(python="/bin/false", workers=2), print, lambda: None)
    with pytest.raises(RuntimeError, match="exited with code 1 before it was ready"):
        await exits.start()
    assert exits.pids == ()


async def test_start_fails_when_a_worker_never_says_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spawner, "START_TIMEOUT", 0.3)
    # The same silent "python" runs the fork server, which the pool waits for first (15 s).
    monkeypatch.setattr(forkserver, "START_TIMEOUT", 0.3)
    before = {pid for pid, _ in children()}
    silent = tmp_path / "python"
    silent.write_text("#!/bin/sh\nexec sleep 30\n")
    silent.chmod(silent.stat().st_mode | stat.S_IXUSR)
    pool = WorkerPool(PoolConfig(python=str(silent), workers=1), print, lambda: None)
    with pytest.raises(RuntimeError, match=r"did not send ready within 0.3s"):
        await pool.start()
    assert pool.pids == ()
    assert [child for child in children() if child[0] not in before] == []


async def test_crashing_replacements_back_off(tmp_path: Path) -> None:
    # A "python" that works while the switch file exists, and fails (counting) while it does not.
    switch = tmp_path / "switch"
    switch.touch()
    counter = tmp_path / "starts"
    python = tmp_path / "python"
    python.write_text(
        f'#!/bin/sh\nif [ -e "{switch}" ]; then exec "{sys.executable}" "$@"; fi\n'
        f'echo x >> "{counter}"\nexit 9\n'
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    # Interpreter starts are what fail here: no fork server, which would not notice.
    harness = Harness(workers=1, python=str(python), fork_server=False)
    await harness.pool.start()
    try:
        switch.unlink()
        await harness.run("hard_exit", 1)
        await asyncio.sleep(0.6)  # the window in which the backoff is measured
        starts = len(counter.read_text().splitlines())
        assert 1 <= starts <= 4  # 0.1 s, 0.2 s, 0.4 s apart: not a busy loop
        assert harness.pool.size == 0
        switch.touch()
        await harness.full()  # the next probe succeeds and the pool is whole again
    finally:
        await stop_and_check(harness)


# -- shards ----------------------------------------------------------------------------------


def job(aid: int, name: str, *args: Any, timeout: float | None = None) -> Job:
    return Job(aid, f"{TASKS}:{name}", protocol.pack([list(args), {}]), DEFAULT_CONTEXT, timeout)


@pytest.fixture
async def sharded() -> AsyncIterator[Harness]:
    started = Harness(workers=4, shards=2)
    await started.pool.start()
    yield started
    await stop_and_check(started)


async def test_run_on_a_shard(sharded: Harness) -> None:
    pool = sharded.pool
    assert pool.idle_by_shard() == [2, 2]
    assert repr(pool) == "<WorkerPool size=4 idle=4 busy=0 starting=0 idle_by_shard=[2, 2]>"
    # Within a shard the warmest worker goes first.
    pool.run(job(1, "pid"), shard=1)
    assert pool.shard_of(1) == 1
    warm = value(await sharded.outcome(1))
    pool.run(job(2, "pid"), shard=1)
    assert value(await sharded.outcome(2)) == warm
    pool.run(job(3, "sleep", 30), shard=1)
    pool.run(job(4, "sleep", 30), shard=1)
    assert pool.idle_by_shard() == [2, 0]
    assert (pool.shard_of(3), pool.shard_of(4), pool.shard_of(1)) == (1, 1, None)
    before = repr(pool)
    assert before == "<WorkerPool size=4 idle=2 busy=2 starting=0 idle_by_shard=[2, 0]>"
    with pytest.raises(RuntimeError, match="no idle worker in shard 1 for attempt 5"):
        pool.run(job(5, "add", 1, 2), shard=1)
    for shard in (2, 5, -1):
        with pytest.raises(ValueError, match=f"no shard {shard}: the pool has shards 0 to 1"):
            pool.run(job(6, "add", 1, 2), shard=shard)
    assert repr(pool) == before
    assert pool.running == {3, 4}
    assert (pool.shard_of(5), pool.shard_of(6)) == (None, None)
    # Shard 0 still takes jobs; the refused attempts never reached a worker.
    pool.run(job(7, "add", 3, 4), shard=0)
    assert value(await sharded.outcome(7)) == 7
    await eventually(lambda: pool.idle_by_shard() == [2, 0], what="shard 0 idle again")
    assert sorted(await stop_and_check(sharded)) == [3, 4]
    assert sorted(sharded.outcomes) == [1, 2, 7]


async def test_run_without_a_shard_takes_from_the_shard_with_most_idle(sharded: Harness) -> None:
    pool = sharded.pool
    for aid, shard, after in [(1, 0, [1, 2]), (2, 1, [1, 1]), (3, 0, [0, 1]), (4, 1, [0, 0])]:
        pool.run(job(aid, "sleep", 30))
        assert pool.shard_of(aid) == shard
        assert pool.idle_by_shard() == after
    assert pool.idle == 0
    with pytest.raises(RuntimeError, match="no idle worker for attempt 5"):
        pool.run(job(5, "add", 1, 2))


@pytest.mark.parametrize(
    ("how", "func", "args", "kind"),
    [
        ("dies", "hard_exit", (3,), "worker_died"),
        ("times_out", "sleep", (30,), "timeout"),
        ("cancelled", "sleep", (30,), "exception"),
        ("recycled", "pid", (), None),
        ("killed_idle", "pid", (), None),
    ],
)
async def test_a_lost_workers_replacement_joins_its_shard(
    how: str, func: str, args: tuple[Any, ...], kind: str | None
) -> None:
    harness = Harness(workers=4, shards=2, max_tasks_per_worker=1 if how == "recycled" else None)
    await harness.pool.start()
    pool = harness.pool
    try:
        pool.run(job(1, func, *args, timeout=0.2 if how == "times_out" else None), shard=1)
        lost = pool.pid_of(1)
        assert lost is not None
        assert pool.shard_of(1) == 1
        if how == "cancelled":
            assert pool.cancel(1) is True
        outcome = await harness.outcome(1)
        assert outcome.pid == lost
        assert (outcome.error["kind"] if outcome.error is not None else None) == kind
        if how == "killed_idle":
            assert pool.idle_by_shard() == [2, 2]
            os.kill(lost, signal.SIGKILL)
        await eventually(lambda: lost not in pool.pids, what=f"worker {lost} to go")
        await eventually(
            lambda: pool.idle_by_shard() == [2, 2] and pool.size == 4,
            what=f"the replacement idle in shard 1: {pool!r}",
        )
        assert list(harness.outcomes) == [1]
    finally:
        await stop_and_check(harness)


async def test_uneven_shards_refill_the_emptiest_lowest_first() -> None:
    harness = Harness(workers=3, shards=2)
    await harness.pool.start()
    pool = harness.pool
    try:
        assert pool.idle_by_shard() == [2, 1]
        # Shard 1 loses its only worker: it gets it back. Then shard 0 loses one of its two:
        # both shards have one, and the tie goes to shard 0.
        for aid, shard in [(1, 1), (2, 0)]:
            pool.run(job(aid, "hard_exit", 3), shard=shard)
            error = (await harness.outcome(aid)).error
            assert error is not None
            assert error["kind"] == "worker_died"
            await eventually(
                lambda: pool.idle_by_shard() == [2, 1] and pool.size == 3,
                what=f"the replacement in shard {shard}",
            )
    finally:
        await stop_and_check(harness)


@pytest.mark.parametrize(("workers", "shards"), [(2, 0), (2, -1), (2, 3), (0, 2)])
def test_invalid_shards(workers: int, shards: int) -> None:
    with pytest.raises(ValueError, match=f"shards must be between 1 and .* not {shards}"):
        WorkerPool(PoolConfig(workers=workers, shards=shards), print, lambda: None)


@pytest.mark.parametrize(("workers", "shards"), [(0, 1), (1, 1), (4, 4), (4, 1)])
def test_valid_shards(workers: int, shards: int) -> None:
    pool = WorkerPool(PoolConfig(workers=workers, shards=shards), print, lambda: None)
    assert pool.idle_by_shard() == [0] * shards
    assert pool.shard_of(1) is None
