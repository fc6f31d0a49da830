"""Resource limits through a real daemon: memory, CPU, processes, file size; both the cgroup
mechanism (where the machine lets the daemon make cgroups) and the forced rlimits-only mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from asynctask.errors import UsageError
from asynctask.executor.cgroups import detect_cgroups
from tests.e2e import tasks

SUPPORT = detect_cgroups()
SHARED = "tests.executor.tasks_for_tests"  # task functions the executor tests use too


def test_a_task_over_its_memory_limit_fails_as_memory_limit_and_the_next_succeeds(
    make_daemon,
) -> None:
    daemon = make_daemon().start()
    cli = daemon.cli(
        "submit",
        "--memory",
        "256M",
        "--wait",
        "--json",
        f"{SHARED}:hog_memory",
        "[2048]",
    )
    assert cli.returncode == 1, cli.stderr
    assert '"kind": "memory_limit"' in cli.stdout
    client = daemon.client()
    assert client.submit(f"{SHARED}:hog_memory", 64).result(timeout=30) == 64
    declared = client.submit(tasks.declared_hog, 1024).wait(timeout=30)  # memory="200M" in code
    assert declared.error is not None
    assert (declared.error["kind"], declared.attempts) == ("memory_limit", 1)  # not retried
    assert "sandbox: cgroup" in daemon.log.read_text() or not SUPPORT.memory


def test_an_infinite_loop_dies_of_its_cpu_limit(make_daemon) -> None:
    daemon = make_daemon().start()
    done = daemon.client().submit(f"{SHARED}:spin", cpu=2, retries=2).wait(timeout=60)
    assert done.error is not None
    assert (done.error["kind"], done.attempts) == ("cpu_limit", 1)
    assert done.finished_at - done.started_at < 10


@pytest.mark.skipif(not SUPPORT.pids, reason=f"no pids cgroup here: {SUPPORT.description}")
def test_a_fork_bomb_is_contained_by_the_process_limit(make_daemon) -> None:
    daemon = make_daemon().start()
    made = daemon.client().submit(f"{SHARED}:fork_many", 500, processes=32)
    assert made.result(timeout=60) < 32


def test_a_task_writing_a_huge_file_hits_the_file_size_limit(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon().start()
    target = tmp_path / "huge"
    done = (
        daemon.client()
        .submit(
            f"{SHARED}:write_bytes",
            str(target),
            10 << 30,
            file_size="16M",
            retries=0,
        )
        .wait(timeout=60)
    )
    assert done.error is not None
    assert "File too large" in done.error["message"]
    assert target.stat().st_size == 16 << 20


def test_rlimits_only_mode_says_so_and_still_holds_memory(make_daemon) -> None:
    daemon = make_daemon('[workers]\nsandbox = "rlimits"\n').start()
    assert "sandbox: rlimits only" in daemon.log.read_text()
    done = daemon.client().submit(f"{SHARED}:hog_memory", 2048, memory="256M").wait(timeout=60)
    assert done.error is not None
    assert (done.error["kind"], done.error["type"]) == ("memory_limit", "MemoryError")


def test_bad_limits_are_refused_and_change_nothing(make_daemon) -> None:
    daemon = make_daemon().start()
    for flag, value, message in [
        ("--memory", "1M", "below the minimum"),
        ("--memory", "lots", "memory"),
        ("--cpu", "-1", "cpu"),
        ("--open-files", "3", "below the minimum"),
    ]:
        cli = daemon.cli("submit", flag, value, "tests.e2e.tasks:add", "[1, 2]")
        assert cli.returncode == 2, (flag, value, cli.stdout)
        assert message in cli.stderr, (flag, cli.stderr)
    assert daemon.client().ping()["tasks"]["live"] == 0


def test_hardening_flags_from_the_command_line(make_daemon) -> None:
    import socket

    daemon = make_daemon().start()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = str(server.getsockname()[1])
    try:
        free = daemon.cli("submit", "--wait", "--json", f"{SHARED}:connect",
                          f"[{port}]")  # fmt: skip
        assert '"result": "connected"' in free.stdout, free.stderr
        cut = daemon.cli("submit", "--no-network", "--wait", "--json",
                         f"{SHARED}:connect", f"[{port}]")  # fmt: skip
        assert '"result": "failed' in cut.stdout, cut.stderr
    finally:
        server.close()
    with pytest.raises(UsageError, match="only be set in the daemon"):  # not from a client
        daemon.client().submit("tests.e2e.tasks:add", 1, 2, user="nobody")
