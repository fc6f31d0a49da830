"""Timeouts and retry backoff through a real daemon."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.e2e.conftest import poll


def _gone(pid: int) -> bool:
    """No such process, or only a zombie awaiting its parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"


def _in_namespace(namespace: str) -> bool:
    """Whether a live process is in the pid namespace ``namespace`` (``pid:[inode]``)."""
    for entry in os.listdir("/proc"):
        try:
            if (
                entry.isdigit()
                and os.readlink(f"/proc/{entry}/ns/pid") == namespace
                and not _gone(int(entry))
            ):
                return True
        except OSError:
            continue
    return False


def test_a_timeout_leaves_no_process_behind_and_the_next_task_runs(
    make_daemon, tmp_path: Path
) -> None:
    daemon = make_daemon("[workers]\nmin_workers = 1\nmax_workers = 1\n").start()
    client = daemon.client()
    pids = tmp_path / "pids"
    handle = client.submit("tests.e2e.tasks:fork_and_sleep", str(pids), 60, timeout=0.5, retries=0)
    ended = handle.wait(timeout=30)
    assert ended.state.value == "failed"
    assert ended.error is not None
    assert ended.error["kind"] == "timeout"
    worker, grandchild, namespace = pids.read_text().split()
    if namespace == os.readlink("/proc/self/ns/pid"):
        poll(lambda: _gone(int(worker)) and _gone(int(grandchild)), timeout=5)
    else:  # a sandboxed worker: the grandchild's pid is of its namespace, gone with it
        poll(lambda: _gone(int(worker)) and not _in_namespace(namespace), timeout=5)
    assert client.submit("tests.e2e.tasks:add", 2, 2).result(timeout=30) == 4


def test_retries_back_off_within_growing_bounds(make_daemon) -> None:
    """Full jitter: retry n waits uniform(0, base * 2^(n-1)), so each gap has its own bound."""
    daemon = make_daemon('[retry]\nbackoff_base = "200ms"\nbackoff_cap = "10s"\n').start()
    client = daemon.client()
    done = client.submit("tests.e2e.tasks:fail_before", 4, retries=3).wait(timeout=30)
    assert (done.state.value, done.attempts) == ("succeeded", 4)
    ends = [entry["finished_at"] for entry in done.errors]
    starts = [entry["started_at"] for entry in done.errors[1:]] + [done.started_at]
    gaps = [start - end for start, end in zip(starts, ends, strict=True)]
    assert all(gap >= 0 for gap in gaps)
    slack = 0.1  # dispatch after the timer fires
    for retry, gap in enumerate(gaps, start=1):
        assert gap <= 0.2 * 2 ** (retry - 1) + slack, gaps


def test_one_worker_runs_many_io_bound_attempts_at_once(make_daemon) -> None:
    daemon = make_daemon("[workers]\nmin_workers = 1\nmax_workers = 1\nconcurrency = 8\n").start()
    client = daemon.client()
    client.pause(tenant="default")  # submit all, then let them go together
    handles = [client.submit(f"tests.e2e.tasks:{name}", 0.5) for name in ("async_nap", "nap") * 4]
    client.resume(tenant="default")
    done = [handle.wait(timeout=30) for handle in handles]
    assert {status.state.value for status in done} == {"succeeded"}
    assert len({client.result(h.id, timeout=5) for h in handles}) == 1  # one worker process
    started = [status.started_at for status in done]
    finished = [status.finished_at for status in done]
    assert max(started) < min(finished)  # all eight were running at one instant
    assert client.ping()["workers"]["size"] == 1


def test_the_pool_grows_under_a_backlog_and_shrinks_when_idle(make_daemon) -> None:
    daemon = make_daemon(
        '[workers]\nmin_workers = 1\nmax_workers = 3\nidle_timeout = "500ms"\n'
    ).start()
    client = daemon.client()
    handles = [client.submit("tests.e2e.tasks:nap", 1.0) for _ in range(6)]
    started = time.monotonic()
    poll(lambda: client.ping()["workers"]["size"] == 3)
    assert time.monotonic() - started < 5
    for handle in handles:
        assert handle.wait(timeout=30).state.value == "succeeded"
    poll(lambda: client.ping()["workers"]["size"] == 1)


def test_stop_with_drain_lets_short_attempts_finish_and_requeues_the_rest(
    make_daemon, tmp_path: Path
) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    short = client.submit("tests.e2e.tasks:nap", 0.5)
    long = client.submit("tests.e2e.tasks:nap", 60)
    poll(lambda: client.ping()["tasks"]["running"] == 2)
    started = time.monotonic()
    cli = daemon.cli("stop", "--drain", "2s")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.splitlines() == ["stopping (draining for up to 2s)", "stopped"]
    assert time.monotonic() - started < 15
    assert daemon.proc is not None
    assert daemon.proc.wait(10) == 0
    daemon.start()
    client = daemon.client()
    assert client.status(short.id).state.value == "succeeded"
    again = client.status(long.id)
    assert (again.state.value, again.attempts) in {("queued", 1), ("running", 2)}
