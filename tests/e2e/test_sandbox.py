"""Per-attempt logs, inspect, and command tasks through a real daemon."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import poll


def _running(*argv: str) -> bool:
    """Whether a live (not zombie) process runs exactly ``argv``."""
    wanted = "\0".join(argv).encode() + b"\0"
    for entry in os.listdir("/proc"):
        try:
            if (
                entry.isdigit()
                and Path(f"/proc/{entry}/cmdline").read_bytes() == wanted
                and Path(f"/proc/{entry}/stat").read_text().split(")")[-1].split()[0] != "Z"
            ):
                return True
        except OSError:
            continue
    return False


def _descendants(pids: list[int]) -> set[int]:
    found, pending = set(pids), list(pids)
    while pending:
        pid = pending.pop()
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        found.update(int(kid) for kid in kids)
        pending += [int(kid) for kid in kids]
    return found


def test_logs_are_kept_per_attempt_and_follow_streams_them(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon('[retry]\nbackoff_base = "10ms"\n').start()
    client = daemon.client()
    marker = tmp_path / "go"
    handle = client.submit("tests.e2e.tasks:talk", 3, str(marker), 30)
    # --follow in a real process, while the task runs
    follow = subprocess.Popen(
        [sys.executable, "-m", "asynctask", "logs", "--home", str(daemon.home), "--follow",
         handle.id],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    poll(
        lambda: (
            "half way"
            in (client.logs(handle.id)["attempts"] or [{"data": b""}])[0]["data"].decode()
        )
    )
    assert client.status(handle.id).state.value == "running"  # seen while it runs
    marker.write_text("1")
    out, _ = follow.communicate(timeout=30)
    assert follow.returncode == 0
    # the task's logging is captured with its time, level and logger ([workers] log_level)
    logged = re.compile(
        r"line 0\nline 1\nline 2\n[0-9-]+ [0-9:,]+ WARNING talk: half way\ndone talking\n"
    )
    assert logged.fullmatch(out.removesuffix("\n")), out
    plain = daemon.cli("logs", handle.id)
    assert logged.fullmatch(plain.stdout), plain.stdout
    flaky = client.submit("tests.e2e.tasks:fail_before", 2, retries=2)
    flaky.wait(timeout=30)
    shown = json.loads(daemon.cli("logs", "--json", flaky.id).stdout)
    assert shown["attempts"] == []  # it printed nothing: no log files at all
    assert daemon.cli("logs", "NOPE").returncode == 2


def test_a_flood_of_output_is_capped_with_a_marker(make_daemon) -> None:
    daemon = make_daemon('[workers]\nmax_log_bytes = "64K"\n').start()
    client = daemon.client()
    handle = client.submit("tests.e2e.tasks:flood", 1024 * 1024)
    handle.wait(timeout=30)
    text = daemon.cli("logs", handle.id).stdout
    assert text.startswith("x" * 1023 + "\n")
    assert text.rstrip().endswith(f"more bytes after the first {64 * 1024}]")
    assert len(text) < 64 * 1024 + 200
    assert client.submit("tests.e2e.tasks:add", 1, 1).result(timeout=30) == 2


def test_inspect_shows_the_worker_and_the_task_function_on_its_stack(
    make_daemon, tmp_path: Path
) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    marker = tmp_path / "stop"
    handle = client.submit("tests.e2e.tasks:busy_wait_in_named_function", str(marker))
    poll(lambda: client.status(handle.id).state.value == "running")
    cli = daemon.cli("inspect", "--json", handle.id)
    assert cli.returncode == 0, cli.stderr
    info = json.loads(cli.stdout)
    # A worker of the sandbox runs tasks in a child of the process the pool started.
    assert info["pid"] in _descendants(daemon.worker_pids())
    assert info["rss"] > 1024 * 1024
    assert info["open_files"] >= 3
    assert info["attempt"] == 1
    assert "busy_wait_in_named_function" in info["stack"]
    started = time.monotonic()
    first_cpu = info["cpu_seconds"]
    poll(lambda: client.inspect(handle.id)["cpu_seconds"] > first_cpu)
    assert time.monotonic() - started < 10
    assert client.status(handle.id).state.value == "running"  # not disturbed
    marker.write_text("1")
    assert handle.wait(timeout=30).state.value == "succeeded"
    refused = daemon.cli("inspect", handle.id)
    assert refused.returncode == 2
    assert "only a running task can be inspected" in refused.stderr


def test_command_tasks_record_exit_codes_and_output(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon('[retry]\nbackoff_base = "10ms"\n').start()
    client = daemon.client()
    ok = daemon.cli(
        "submit", "--wait", "--json", "--cmd", "--", "sh", "-c", "echo out; echo err >&2"
    )
    assert ok.returncode == 0, ok.stderr
    task = json.loads(ok.stdout)
    assert task["result"] == {"exit_code": 0}
    assert daemon.cli("logs", task["id"]).stdout in ("out\nerr\n", "err\nout\n")

    failing = client.submit_cmd(["sh", "-c", "echo broken >&2; exit 3"], retries=1).wait(timeout=30)
    assert (failing.state.value, failing.attempts) == ("failed", 2)  # retried by default
    assert failing.error is not None
    assert failing.error["message"] == "sh exited with code 3: broken"

    final = client.submit_cmd(["sh", "-c", "exit 4"], final_exit_codes=[4], retries=3)
    done = final.wait(timeout=30)
    assert (done.state.value, done.attempts, done.error["kind"]) == ("failed", 1, "fail")

    missing = client.submit_cmd(["/nonexistent/program"], retries=3).wait(timeout=30)
    assert (missing.state.value, missing.attempts) == ("failed", 1)

    # Found by its unique command line: a pid the task sees is of its worker's pid namespace.
    seconds = f"60.{os.getpid()}{time.monotonic_ns() % 100000}"
    started = tmp_path / "started"
    slow = client.submit_cmd(["sh", "-c", f"touch {started}; exec sleep {seconds}"],
                             timeout=0.5, retries=0)  # fmt: skip
    ended = slow.wait(timeout=30)
    assert ended.error is not None
    assert ended.error["kind"] == "timeout"
    assert started.exists()
    poll(lambda: not _running("sleep", seconds))

    usage = daemon.cli("submit", "tests.e2e.tasks:add", "[1, 2]", "extra")
    assert usage.returncode == 2
    assert "needs --cmd" in usage.stderr or "unexpected arguments" in usage.stderr
