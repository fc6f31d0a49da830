"""Tasks are not the daemon: attacks from inside a worker of a real daemon, each shown to fail.

Each attack is a task function (``tasks_sandbox.py``) that tries it and returns what happened;
the test asserts it was denied and, where it matters, that its target is unharmed. The last
tests show that ordinary tasks still work in the sandbox.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DaemonProcess, poll

TASKS = "tests.security.tasks_sandbox"

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/ns"), reason="needs Linux namespaces")


def run(
    daemon: DaemonProcess, name: str, *args: Any, tenant: str = "default", **options: Any
) -> Any:
    return daemon.client(tenant).submit(f"{TASKS}:{name}", *args, **options).result(timeout=60)


def denied(outcome: str) -> bool:
    return outcome.startswith("denied")


@pytest.fixture
def sandboxed(make_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    return make_daemon().start()


def daemon_pid(daemon: DaemonProcess) -> int:
    assert daemon.proc is not None
    return daemon.proc.pid


def test_the_start_up_log_names_the_isolation(sandboxed: DaemonProcess) -> None:
    text = sandboxed.log.read_text()
    line = next(line for line in text.splitlines() if "isolation:" in line)
    assert "own pid+mount namespace" in line or "per-tenant uids" in line, line


def test_a_task_cannot_open_the_database(sandboxed: DaemonProcess) -> None:
    database = sandboxed.home / "asynctask.db"
    assert database.exists()
    for path in (database, sandboxed.home / "asynctask.db-wal", sandboxed.home / "daemon.lock"):
        outcome = run(sandboxed, "open_read_write", str(path))
        assert denied(outcome), (path, outcome)
    assert denied(run(sandboxed, "open_read_write", str(sandboxed.home / "logs" / "workers.log")))


def test_a_task_cannot_read_the_daemons_environment_or_ptrace_it(
    sandboxed: DaemonProcess,
) -> None:
    pid = daemon_pid(sandboxed)
    assert denied(run(sandboxed, "read_environ", pid))
    assert denied(run(sandboxed, "ptrace_attach", pid))
    assert denied(run(sandboxed, "read_memory", pid))


def test_a_task_cannot_signal_the_daemon(sandboxed: DaemonProcess) -> None:
    pid = daemon_pid(sandboxed)
    assert denied(run(sandboxed, "send_signal", pid, 0))
    assert denied(run(sandboxed, "send_signal", pid, int(signal.SIGTERM)))
    assert sandboxed.proc is not None
    assert sandboxed.proc.poll() is None
    assert sandboxed.client().ping()["pid"] == pid  # still alive and serving


def test_a_task_cannot_kill_another_tenants_worker(
    sandboxed: DaemonProcess, tmp_path: Path
) -> None:
    release = tmp_path / "release-b"
    victim = sandboxed.client("tenant-b").submit(f"{TASKS}:wait_for", str(release))
    poll(lambda: victim.status().state.value == "running")
    victim_pid = sandboxed.client("tenant-b").inspect(victim.id)["pid"]
    assert isinstance(victim_pid, int)
    assert denied(run(sandboxed, "send_signal", victim_pid, int(signal.SIGKILL), tenant="tenant-a"))
    assert denied(run(sandboxed, "ptrace_attach", victim_pid, tenant="tenant-a"))
    assert denied(run(sandboxed, "read_environ", victim_pid, tenant="tenant-a"))
    release.write_text("go")
    assert victim.result(timeout=60) == "released"


def test_a_task_cannot_write_system_files(sandboxed: DaemonProcess) -> None:
    targets = [Path(f"/{top}/asynctask-test-{uuid.uuid4().hex}") for top in ("etc", "usr")]
    try:
        for target in targets:
            assert denied(run(sandboxed, "create_file", str(target)))
            assert not target.exists()
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


@pytest.mark.skipif(not list(Path("/sys/fs/cgroup").glob("**/cgroup.procs")), reason="no cgroups")
def test_a_task_cannot_move_itself_out_of_its_cgroup(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon('[workers]\nmemory = "64M"\nprocesses = 32\n').start()
    outcomes = run(daemon, "write_cgroup_procs")
    assert outcomes, "the task found no cgroup.procs to write"
    assert all(denied(outcome) for outcome in outcomes.values()), outcomes


def test_without_network_a_task_reaches_no_socket(sandboxed: DaemonProcess, tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix_path = tmp_path / "listener.sock"
    unix.bind(str(unix_path))
    unix.listen()
    port = listener.getsockname()[1]
    try:
        # The checks are sound: with the network, both connect.
        assert run(sandboxed, "connect_tcp", port) == "succeeded"
        assert run(sandboxed, "connect_unix", str(unix_path)) == "succeeded"
        assert run(sandboxed, "connect_unix", str(sandboxed.socket)) == "succeeded"
        assert denied(run(sandboxed, "connect_tcp", port, network=False))
        assert denied(run(sandboxed, "connect_unix", str(sandboxed.socket), network=False))
        assert denied(run(sandboxed, "connect_unix", str(unix_path), network=False))
    finally:
        listener.close()
        unix.close()


def test_ordinary_tasks_still_work(sandboxed: DaemonProcess, tmp_path: Path) -> None:
    assert run(sandboxed, "write_and_read", str(tmp_path / "scratch.txt"), "kept") == "kept"
    assert (tmp_path / "scratch.txt").read_text() == "kept"  # the host's /tmp, not a copy
    assert run(sandboxed, "write_and_read", f"/dev/shm/asynctask-{uuid.uuid4().hex}", "x") == "x"
    assert sandboxed.client().submit("tests.e2e.tasks:add", 2, 3).result(timeout=60) == 5
    private = sandboxed.client().submit("os:listdir", "/tmp", private_tmp=True).result(timeout=60)
    assert private == []


def test_a_task_that_kills_itself_ends_its_attempt(sandboxed: DaemonProcess) -> None:
    handle = sandboxed.client().submit(f"{TASKS}:kill_self", retries=0)
    status = handle.wait(timeout=60)
    assert status.state.value == "failed"
    assert status.error is not None
    assert "SIGKILL" in status.error["message"], status.error
    assert run(sandboxed, "write_and_read", "/tmp/.asynctask-ok", "next") == "next"


def test_inspect_shows_the_workers_pid_and_stack(sandboxed: DaemonProcess, tmp_path: Path) -> None:
    release = tmp_path / "release"
    handle = sandboxed.client().submit(f"{TASKS}:wait_for", str(release))
    poll(lambda: handle.status().state.value == "running")
    shown = sandboxed.cli("inspect", "--json", handle.id)
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    # The host pid of a process in a pid namespace of its own: NSpid lists both of its pids.
    status = Path(f"/proc/{info['pid']}/status").read_text()
    nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
    assert len(nspid.split()) == 3, nspid
    assert "wait_for" in info["stack"]
    assert info["rss"] > 1024 * 1024
    release.write_text("go")
    assert handle.result(timeout=60) == "released"


def test_multi_user_mode_refuses_to_start_without_per_tenant_uids(tmp_path: Path) -> None:
    from asynctask.isolation import PACKAGE_ROOT, probe_uid, worker_env

    if os.geteuid() != 0:
        pytest.skip("per-tenant uids need a root daemon")
    if probe_uid(sys.executable, PACKAGE_ROOT, worker_env((), PACKAGE_ROOT), 61000).ok:
        pytest.skip("this interpreter can be run by uid 61000: multi-user mode would start")
    home = tmp_path / "home"
    home.mkdir()
    (home / "asynctask.toml").write_text('[auth.users]\nnobody = ["a"]\n')
    started = subprocess.run(
        [sys.executable, "-m", "asynctask", "daemon", "--home", str(home)],
        cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 2, started.stderr
    assert "Set [workers] python to an interpreter" in started.stderr
    assert "uid 61000" in started.stderr
    assert not (home / "asynctask.sock").exists()
