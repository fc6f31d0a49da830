"""A real daemon on a real PostgreSQL (``[store] url``): the same promises as on SQLite.

Each test gets a schema of its own in the session's private cluster (``tests/pgcluster.py``:
Unix socket only, no TCP); where PostgreSQL cannot start, the tests skip with the reason (in CI
they fail instead). Several daemons on one database: ``test_cluster.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from asynctask.errors import AsynctaskError
from tests import pgcluster
from tests.e2e.conftest import DaemonProcess, poll

ONE_WORKER = '[workers]\nmin_workers = 1\nmax_workers = 1\n[retry]\nbackoff_base = "10ms"\n'


@pytest.fixture
def pg_url(tmp_path: Path) -> str:
    """A fresh schema's URL (skips the test where PostgreSQL cannot start)."""
    return asyncio.run(pgcluster.url_for(tmp_path))


def _config(url: str, extra: str = ONE_WORKER) -> str:
    return f'{extra}\n[store]\nurl = "{url}"\n'


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    """Rows of ``sql`` read straight from the daemon's schema: what is really stored there."""

    async def run() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(record) for record in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(run())


def test_submit_runs_and_succeeds_and_is_stored_in_postgres(
    make_daemon: Callable[..., DaemonProcess], pg_url: str
) -> None:
    daemon = make_daemon(_config(pg_url)).start()
    client = daemon.client()
    handle = client.submit("tests.e2e.tasks:add", 2, 3)
    final = handle.wait(timeout=30)
    assert (final.state.value, final.result, final.attempts) == ("succeeded", 5, 1)
    assert _query(pg_url, "SELECT id, state, attempts FROM tasks") == [(handle.id, "succeeded", 1)]
    assert not (daemon.home / "asynctask.db").exists()  # nothing went to the SQLite file
    log = daemon.log.read_text()
    assert "store postgresql://postgres@/asynctask_test" in log, log


def test_a_failing_task_is_retried_then_succeeds(
    make_daemon: Callable[..., DaemonProcess], pg_url: str
) -> None:
    daemon = make_daemon(_config(pg_url)).start()
    client = daemon.client()
    retried = client.submit("tests.e2e.tasks:fail_before", 3, retries=3).wait(timeout=30)
    assert (retried.state.value, retried.attempts, retried.result) == ("succeeded", 3, 3)
    failed = client.submit("tests.e2e.tasks:boom", "no", retries=1).wait(timeout=30)
    assert (failed.state.value, failed.attempts) == ("failed", 2)
    assert failed.error is not None
    assert failed.error["message"] == "no"
    stored = dict(_query(pg_url, "SELECT id, attempts FROM tasks"))
    assert stored == {retried.id: 3, failed.id: 2}


def test_kill9_mid_run_then_restart_finishes_every_acknowledged_task(
    make_daemon: Callable[..., DaemonProcess], pg_url: str, tmp_path: Path
) -> None:
    daemon = make_daemon(_config(pg_url)).start()
    client = daemon.client()
    marker = tmp_path / "worker.pid"
    running = client.submit("tests.e2e.tasks:sleep_first_attempt", 60, str(marker))
    poll(marker.exists)
    poll(lambda: daemon.client().status(running.id).state.value == "running")
    queued = [client.submit("tests.e2e.tasks:add", n, n) for n in range(20)]
    delayed = client.submit("tests.e2e.tasks:add", 1, 1, delay=0.5)
    daemon.kill9()
    daemon.start()
    client = daemon.client()
    final = client.wait(running.id, timeout=30)
    # The attempt the kill interrupted counts; the second one ran to the end.
    assert (final.state.value, final.attempts, final.result) == ("succeeded", 2, 2)
    for n, handle in enumerate(queued):
        done = client.wait(handle.id, timeout=30)
        assert (done.state.value, done.result, done.attempts) == ("succeeded", 2 * n, 1)
    assert client.wait(delayed.id, timeout=30).state.value == "succeeded"
    states = _query(pg_url, "SELECT state, count(*) FROM tasks GROUP BY state")
    assert states == [("succeeded", 22)]


def test_list_status_and_logs_answer(
    make_daemon: Callable[..., DaemonProcess], pg_url: str, tmp_path: Path
) -> None:
    daemon = make_daemon(_config(pg_url)).start()
    client = daemon.client()
    talked = client.submit(
        "tests.e2e.tasks:talk", 3, str(tmp_path / "go"), 0.0, labels={"batch": "pg"}
    )
    assert talked.wait(timeout=30).state.value == "succeeded"
    other = client.submit("tests.e2e.tasks:add", 1, 2)
    assert other.wait(timeout=30).state.value == "succeeded"

    status = daemon.cli("status", talked.id, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "succeeded"

    listed = daemon.cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [t["id"] for t in json.loads(listed.stdout)] == [other.id, talked.id]
    labelled = daemon.cli("list", "--label", "batch=pg", "--json")
    assert [t["id"] for t in json.loads(labelled.stdout)] == [talked.id]

    logs = daemon.cli("logs", talked.id)
    assert logs.returncode == 0, logs.stderr
    assert "line 2" in logs.stdout
    assert "done talking" in logs.stdout

    missing = daemon.cli("status", "NO-SUCH-ID")
    assert missing.returncode == 2


def test_doctor_says_it_checks_sqlite_only(
    make_daemon: Callable[..., DaemonProcess], pg_url: str
) -> None:
    daemon = make_daemon(_config(pg_url))
    checked = daemon.cli("doctor")
    assert checked.returncode == 2
    assert "checks the embedded SQLite file only" in checked.stderr


@pytest.mark.slow  # `make test-slow`: keeps `make test` within its 15 minutes
def test_losing_the_write_connection_stops_the_daemon_and_it_starts_again(
    make_daemon: Callable[..., DaemonProcess], pg_url: str
) -> None:
    """A write connection that broke leaves the last batch's fate unknown: the daemon exits
    75 (start it again), and the next start reloads what the database holds."""
    daemon = make_daemon(_config(pg_url)).start()
    client = daemon.client()
    assert client.submit("tests.e2e.tasks:add", 1, 1).result(timeout=30) == 2
    terminated = _query(
        pg_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'asynctask' AND pid <> pg_backend_pid()",
    )
    assert terminated
    assert all(row == (True,) for row in terminated)
    with contextlib.suppress(AsynctaskError):
        client.submit("tests.e2e.tasks:add", 2, 2)  # refused, or the reply is lost
    assert daemon.proc is not None
    assert daemon.proc.wait(30) == 75
    assert "lost the database connection" in daemon.log.read_text()
    daemon.start()
    assert daemon.client().submit("tests.e2e.tasks:add", 2, 2).result(timeout=30) == 4
