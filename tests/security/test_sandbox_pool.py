"""The worker sandbox under a real ``WorkerPool``: the pool still addresses, confines, limits and
kills the process that runs the tasks, which is a grandchild of the one it started."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asynctask.executor import landlock
from asynctask.executor.cgroups import detect_cgroups, worker_group_name
from asynctask.executor.sandbox import Spec
from asynctask.resources import Limits
from tests.executor.conftest import Harness, alive, eventually, stop_and_check, value

SUPPORT = detect_cgroups()
TASKS = "tests.security.tasks_sandbox"


def _sandboxed(home: Path, **config: object) -> Harness:
    spec = Spec(hide=(str(home),)).to_json()
    return Harness(sandbox=lambda tenant: spec, **config)


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[Harness]:
    (tmp_path / "home").mkdir()
    harness = _sandboxed(tmp_path / "home", workers=1, cgroups=SUPPORT)
    await harness.pool.start()
    yield harness
    await stop_and_check(harness)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def test_the_pool_knows_the_task_process_by_its_host_pid(pool: Harness) -> None:
    aid = pool.submit("sleep", 30)
    await eventually(lambda: pool.pool.pid_of(aid), what="the attempt to start")
    task_pid = pool.pool.pid_of(aid)
    assert task_pid is not None
    (started,) = pool.pool.pids
    assert task_pid != started
    assert _parent(_parent(task_pid)) == started  # outer -> init (pid 1) -> worker
    assert pool.pool.cancel(aid)
    outcome = await pool.outcome(aid)
    assert outcome.error is not None
    assert outcome.error["type"] == "Cancelled"
    await eventually(lambda: not alive(task_pid), what="the task process to die")
    await pool.full()
    assert value(await pool.run("add", 1, 2)) == 3


@pytest.mark.skipif(not SUPPORT.pids, reason=f"no pids cgroup: {SUPPORT.description}")
async def test_the_task_process_is_in_its_workers_cgroup(pool: Harness) -> None:
    aid = pool.submit(f"{TASKS}:read_own_cgroups", limits=Limits(processes=50))
    groups = value(await pool.outcome(aid))
    own = [line for line in groups.splitlines() if ":pids:" in line]
    assert own, groups
    assert f"/d{os.getpid()}-w" in own[0], own  # worker_group_name: its worker's, not ours
    assert worker_group_name(os.getpid(), 1).split("-")[0] in own[0]


async def test_a_cpu_limit_still_ends_as_cpu_limit_through_the_sandbox(pool: Harness) -> None:
    aid = pool.submit("spin", limits=Limits(cpu=1))
    outcome = await pool.outcome(aid, timeout=30)
    assert outcome.error is not None
    assert outcome.error["kind"] == "cpu_limit", outcome.error


async def test_a_task_that_signals_itself_dies_of_it(pool: Harness) -> None:
    outcome = await pool.run(f"{TASKS}:kill_self")
    assert outcome.error is not None
    assert outcome.error["kind"] == "worker_died"
    assert "SIGKILL" in outcome.error["message"], outcome.error
    await pool.full()


async def test_a_timeout_takes_the_setsid_grandchildren_too(pool: Harness, tmp_path: Path) -> None:
    namespace_file = tmp_path / "ns"
    aid = pool.submit(f"{TASKS}:escape_and_sleep", str(namespace_file), 60, timeout=1.0)
    outcome = await pool.outcome(aid, timeout=30)
    assert outcome.error is not None
    assert outcome.error["kind"] == "timeout"
    namespace = namespace_file.read_text()
    await eventually(lambda: not _in_namespace(namespace), what="the namespace to empty")


async def test_stack_dumps_still_reach_the_daemons_run_dir(tmp_path: Path) -> None:
    run_dir = tmp_path / "home" / "run"
    run_dir.mkdir(parents=True)
    harness = _sandboxed(tmp_path / "home", workers=1, stack_dir=str(run_dir))
    await harness.pool.start()
    try:
        aid = harness.submit("sleep", 30)
        await eventually(lambda: harness.pool.pid_of(aid), what="the attempt to start")
        task_pid = harness.pool.pid_of(aid)
        assert task_pid is not None
        stack = run_dir / f"stack-{task_pid}.txt"
        assert stack.exists()

        def dumped() -> bool:  # the first dump may catch it still importing the task module
            os.kill(task_pid, signal.SIGUSR1)
            return "in sleep" in stack.read_text()

        await eventually(dumped, what=f"a stack dump showing the task in {stack}")
        assert harness.pool.cancel(aid)
    finally:
        await stop_and_check(harness)
    assert not stack.exists()


def _in_namespace(namespace: str) -> bool:
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    return True
        except OSError:
            continue
    return False


@pytest.mark.skipif(landlock.abi() < 6, reason=f"Landlock ABI {landlock.abi()} has no scopes")
async def test_without_namespaces_landlock_gives_the_same_outcomes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    database = home / "asynctask.db"
    database.write_text("secret")
    etc = f"/etc/asynctask-test-{uuid.uuid4().hex}"
    spec = Spec(hide=(str(home),), namespaces=False).to_json()
    harness = Harness(workers=1, sandbox=lambda tenant: spec)
    await harness.pool.start()
    try:
        me = os.getpid()  # the daemon's stand-in: the pool's own process
        for attack, args in [
            ("open_read_write", (str(database),)),
            ("create_file", (etc,)),
            ("send_signal", (me, 0)),
            ("read_environ", (me,)),
            ("ptrace_attach", (me,)),
            ("write_cgroup_procs", ()),
        ]:
            outcome = value(await harness.run(f"{TASKS}:{attack}", *args))
            results = outcome.values() if isinstance(outcome, dict) else [outcome]
            assert all(r.startswith("denied") for r in results), (attack, outcome)
        listing = await harness.run("os:listdir", str(home))
        assert listing.error is not None
        assert listing.error["type"] == "PermissionError"
        scratch = f"/var/tmp/asynctask-test-{uuid.uuid4().hex}"
        assert value(await harness.run(f"{TASKS}:write_and_read", scratch, "ok")) == "ok"
        os.unlink(scratch)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(etc)
        await stop_and_check(harness)


def _cgroups(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


@pytest.mark.skipif(not SUPPORT.pids, reason=f"no pids cgroup: {SUPPORT.description}")
async def test_a_task_cannot_make_the_pool_adopt_another_process(pool: Harness) -> None:
    """A forged ``ready`` frame naming a stranger would have the pool move it into the
    worker's cgroup (killed with the group), signal it for stacks and read its RSS."""
    stranger = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        groups = _cgroups(stranger.pid)
        forged = pool.submit(f"{TASKS}:forge_ready", stranger.pid, limits=Limits(processes=50))
        assert value(await pool.outcome(forged)) == "sent"
        await pool.full()
        aid = pool.submit("sleep", 30)
        await eventually(lambda: pool.pool.pid_of(aid), what="the attempt to start")
        assert pool.pool.pid_of(aid) != stranger.pid
        assert pool.pool.cancel(aid)
        await pool.outcome(aid)
        await pool.full()
        assert _cgroups(stranger.pid) == groups
        assert stranger.returncode is None
    finally:
        stranger.kill()
        await stranger.wait()
