"""Limit profiles: attempts whose limits differ from the pool's run in workers started with
them, in their own cgroup where the machine allows; what a limit kill is reported as."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asynctask.executor.cgroups import detect_cgroups
from asynctask.resources import Limits

from .conftest import Harness, alive, eventually, stop_and_check, value

SUPPORT = detect_cgroups()
ROOT = os.geteuid() == 0


@pytest.fixture
async def pool() -> AsyncIterator[Harness]:
    started = Harness(workers=1, cgroups=SUPPORT, limits=Limits(open_files=256))
    await started.pool.start()
    yield started
    await stop_and_check(started)


async def test_the_default_profile_applies_to_every_pool_worker(pool: Harness) -> None:
    assert value(await pool.run("rlimits")) == [256, 0]


async def test_other_limits_run_in_a_worker_of_their_own_that_borrows_a_slot(
    pool: Harness,
) -> None:
    own = pool.submit("pid", limits=Limits(open_files=64))
    assert pool.pool.idle == 0  # the slot is taken while the dedicated worker runs
    pooled = pool.pool.pids
    dedicated = value(await pool.outcome(own))
    assert dedicated not in pooled
    await eventually(lambda: not alive(dedicated), what="the dedicated worker to exit")
    await pool.full()
    assert value(await pool.run("rlimits")) == [256, 0]  # the pool worker is untouched


@pytest.mark.skipif(not SUPPORT.memory, reason=f"no memory cgroup: {SUPPORT.description}")
async def test_going_over_the_memory_limit_is_a_memory_limit_kill(pool: Harness) -> None:
    aid = pool.submit("hog_memory", 1024, limits=Limits(memory=128 << 20))
    outcome = await pool.outcome(aid, timeout=30)
    assert outcome.error is not None
    assert outcome.error["kind"] == "memory_limit", outcome.error
    assert value(await pool.run("hog_memory", 16)) == 16  # the next one is fine
    await pool.full()


async def test_memory_without_cgroups_is_an_rlimit_and_a_memory_error() -> None:
    harness = Harness(workers=1, cgroups=None)
    await harness.pool.start()
    try:
        aid = harness.submit("hog_memory", 1024, limits=Limits(memory=256 << 20))
        outcome = await harness.outcome(aid, timeout=30)
        assert outcome.error is not None
        assert outcome.error["kind"] == "memory_limit", outcome.error
        assert outcome.error["type"] == "MemoryError"
    finally:
        await stop_and_check(harness)


async def test_a_busy_loop_dies_of_its_cpu_limit(pool: Harness) -> None:
    aid = pool.submit("spin", limits=Limits(cpu=1))
    outcome = await pool.outcome(aid, timeout=30)
    assert outcome.error is not None
    assert outcome.error["kind"] == "cpu_limit", outcome.error
    await pool.full()


@pytest.mark.skipif(not SUPPORT.pids, reason=f"no pids cgroup: {SUPPORT.description}")
async def test_a_fork_bomb_is_held_by_the_process_limit(pool: Harness) -> None:
    made = value(await pool.outcome(pool.submit("fork_many", 200, limits=Limits(processes=20))))
    assert made < 20


async def test_writing_past_the_file_size_limit_fails(pool: Harness, tmp_path: Path) -> None:
    aid = pool.submit(
        "write_bytes", str(tmp_path / "big"), 64 << 20, limits=Limits(file_size=8 << 20)
    )
    outcome = await pool.outcome(aid)
    assert outcome.error is not None
    assert "File too large" in outcome.error["message"]
    assert (tmp_path / "big").stat().st_size == 8 << 20


@pytest.mark.skipif(not ROOT, reason="needs root to see the process table of every user")
async def test_a_dedicated_worker_is_gone_after_a_timeout(pool: Harness) -> None:
    aid = pool.submit("spin", limits=Limits(open_files=64), timeout=0.3)
    outcome = await pool.outcome(aid)
    assert outcome.error is not None
    assert outcome.error["kind"] == "timeout"
    await eventually(lambda: not alive(outcome.pid), what="the worker to be killed")
    await pool.full()


@pytest.mark.skipif(not SUPPORT.pids, reason=f"no pids cgroup: {SUPPORT.description}")
def test_sweep_removes_only_the_groups_of_daemons_that_are_gone() -> None:
    from asynctask.executor.cgroups import sweep_stale, worker_group_name

    dead = max(int(p) for p in os.listdir("/proc") if p.isdigit()) + 100_000  # no such pid
    mine = SUPPORT.create(worker_group_name(os.getpid(), 1), Limits(processes=8))
    gone = SUPPORT.create(worker_group_name(dead, 2), Limits(processes=8))
    assert mine is not None
    assert gone is not None
    try:
        assert sweep_stale(SUPPORT) == 1
        assert [os.path.isdir(d) for d in gone.directories] == [False] * len(gone.directories)
        assert all(os.path.isdir(d) for d in mine.directories)
    finally:
        mine.remove()
        gone.remove()


async def test_no_network_profile_cannot_connect_but_the_pool_can(pool: Harness) -> None:
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        assert value(await pool.run("connect", port)) == "connected"
        isolated = pool.submit("connect", port, limits=Limits(open_files=256, network=False))
        assert value(await pool.outcome(isolated)).startswith("failed")
    finally:
        server.close()


async def test_private_tmp_is_an_empty_tmp_of_its_own(pool: Harness, tmp_path: Path) -> None:
    # A stdlib function as the task: with a private /tmp, code that lives under /tmp (a clone
    # of this repository in /tmp, say) is hidden from the worker too - as with systemd's
    # PrivateTmp - and the test must not depend on where it was cloned.
    marker = Path("/tmp") / f"asynctask-host-{os.getpid()}"
    marker.write_text("x")
    try:
        aid = pool.submit("os:listdir", "/tmp", limits=Limits(open_files=256, private_tmp=True))
        assert value(await pool.outcome(aid)) == []
        assert marker.name in value(await pool.run("os:listdir", "/tmp"))
    finally:
        marker.unlink()


def _readable_by_others(path: str) -> bool:
    """Whether a user other than the owner can reach and read ``path`` (every directory up)."""
    parts = Path(path).resolve().parents
    return all(os.stat(p).st_mode & 0o001 for p in parts) and bool(os.stat(path).st_mode & 0o004)


_STDLIB = os.path.dirname(os.__file__)


@pytest.mark.skipif(not ROOT, reason="changing user needs root")
@pytest.mark.skipif(
    not _readable_by_others(os.path.join(_STDLIB, "os.py")),
    reason=f"this Python's standard library ({_STDLIB}) is not readable by other users",
)
async def test_a_profile_can_run_as_an_unprivileged_user(pool: Harness) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    aid = pool.submit("whoami", limits=Limits(open_files=256, user="nobody"))
    assert value(await pool.outcome(aid)) == [nobody.pw_uid, nobody.pw_gid]
