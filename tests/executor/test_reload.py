"""``WorkerPool.reload``: edited task code is picked up by the next attempts; running attempts
finish on the old code, in the worker they started in."""

from __future__ import annotations

from pathlib import Path

from .conftest import Harness, eventually, stop_and_check, value

OLD = """\
import os, time

def version():
    return 1

def hold(path):
    open(path + ".started", "w").close()
    while not os.path.exists(path):
        time.sleep(0.01)
    return version()
"""
# Longer than OLD: a same-second edit of the same size could reuse a stale .pyc.
NEW = OLD.replace("return 1", "return 2") + "\ndef added():\n    return 'added'\n"


async def test_idle_workers_are_replaced_and_import_the_edited_code(tmp_path: Path) -> None:
    (tmp_path / "edited_module.py").write_text(OLD)
    harness = Harness(workers=1, paths=(str(tmp_path),))
    await harness.pool.start()
    try:
        assert value(await harness.run("edited_module:version")) == 1
        (tmp_path / "edited_module.py").write_text(NEW)
        assert value(await harness.run("edited_module:version")) == 1  # still the old module
        old_pids = set(harness.pool.pids)
        assert harness.pool.reload() == 1
        await eventually(lambda: not old_pids & set(harness.pool.pids), what="the old worker gone")
        await harness.full()
        assert value(await harness.run("edited_module:version")) == 2
        assert value(await harness.run("edited_module:added")) == "added"
    finally:
        await stop_and_check(harness)


async def test_a_busy_worker_finishes_on_the_old_code_then_retires(tmp_path: Path) -> None:
    (tmp_path / "edited_module.py").write_text(OLD)
    release = tmp_path / "release"
    harness = Harness(workers=1, paths=(str(tmp_path),))
    await harness.pool.start()
    try:
        await eventually(lambda: harness.pool.idle, what="an idle worker")
        held = harness.submit("edited_module:hold", str(release))
        (old_pid,) = harness.pool.pids
        await eventually((tmp_path / "release.started").exists, what="the attempt started")
        (tmp_path / "edited_module.py").write_text(NEW)
        assert harness.pool.reload() == 1
        assert harness.pool.size == 1  # its replacement counts; the busy one no longer does
        # The replacement runs new attempts while the old worker still runs its attempt.
        assert value(await harness.run("edited_module:version")) == 2
        assert held not in harness.outcomes
        assert old_pid in harness.pool.pids
        release.touch()
        assert value(await harness.outcome(held)) == 1  # finished on the code it started with
        await eventually(lambda: old_pid not in harness.pool.pids, what="the old worker gone")
        await harness.full()
    finally:
        await stop_and_check(harness)


async def test_reload_of_a_pool_not_started_or_stopped_does_nothing() -> None:
    harness = Harness(workers=1)
    assert harness.pool.reload() == 0
    await harness.pool.start()
    await stop_and_check(harness)
    assert harness.pool.reload() == 0
