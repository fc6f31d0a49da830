"""``asynctask migrate-store``: a real daemon's SQLite home moved to PostgreSQL, and a daemon on
PostgreSQL carrying on from there (README, "Scale-out: PostgreSQL").

Each test gets a fresh schema of the session's private cluster (``tests/pgcluster.py``: Unix
socket only, no TCP); where PostgreSQL cannot start, the tests skip with the reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from tests import pgcluster
from tests.e2e.conftest import DaemonProcess

ONE_WORKER = '[workers]\nmin_workers = 1\nmax_workers = 1\n[retry]\nbackoff_base = "10ms"\n'


@pytest.fixture
def pg_url(tmp_path: Path) -> str:
    """A fresh schema's URL (skips the test where PostgreSQL cannot start)."""
    return asyncio.run(pgcluster.url_for(tmp_path))


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    async def run() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(record) for record in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(run())


def test_migrate_store_moves_live_tasks_and_history_to_postgres(
    make_daemon: Callable[..., DaemonProcess], pg_url: str
) -> None:
    daemon = make_daemon(ONE_WORKER).start()
    client = daemon.client()
    ok = client.submit("tests.e2e.tasks:add", 2, 3)
    retried = client.submit("tests.e2e.tasks:fail_before", 2, retries=3)
    failed = client.submit("tests.e2e.tasks:boom", "no", retries=1)
    assert ok.wait(timeout=30).state.value == "succeeded"
    assert retried.wait(timeout=30).state.value == "succeeded"
    assert failed.wait(timeout=30).state.value == "failed"
    # The pause: its queue's tasks stay queued.
    assert client.pause(tenant="default", queue="held") == 1
    queued = [client.submit("tests.e2e.tasks:add", i, 1, queue="held") for i in range(3)]
    later = client.submit("tests.e2e.tasks:add", 1, 1, delay="1h")
    client.cron_add("nightly", "0 3 * * *", "tests.e2e.tasks:add", 1, 2)
    before = {h.id: client.status(h.id) for h in (ok, retried, failed, *queued, later)}
    assert [before[h.id].state.value for h in queued] == ["queued"] * 3
    assert before[later.id].state.value == "scheduled"
    assert daemon.stop() == 0

    done = daemon.cli("migrate-store", "--to", pg_url, "--json")
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts["tasks"] == 7
    assert counts["by_state"] == {"failed": 1, "queued": 3, "scheduled": 1, "succeeded": 2}
    assert (counts["pauses"], counts["crons"]) == (1, 1)
    assert counts["config"] == f"[store]\nurl = {json.dumps(pg_url)}"
    assert _query(pg_url, "SELECT kind, name FROM pauses") == [("queue", "held")]

    # The home's config now names the database, as the command says to.
    (daemon.home / "asynctask.toml").write_text(f"{ONE_WORKER}\n{counts['config']}\n")
    daemon.start()
    client = daemon.client()
    assert "store postgresql://" in daemon.log.read_text()
    for handle in (ok, retried, failed):
        now, was = client.status(handle.id), before[handle.id]
        assert (now.state, now.attempts, now.result, now.error) == (
            was.state,
            was.attempts,
            was.result,
            was.error,
        )
    assert client.status(ok.id).result == 5
    assert client.status(retried.id).attempts == 2
    assert client.status(later.id).state.value == "scheduled"
    assert [c["name"] for c in client.cron_list()] == ["nightly"]
    assert [client.status(h.id).state.value for h in queued] == ["queued"] * 3  # still paused
    assert client.resume(tenant="default", queue="held") == 1
    assert [h.wait(timeout=30).result for h in queued] == [1, 2, 3]
    fresh = client.submit("tests.e2e.tasks:add", 20, 22)  # seq resumes past the copied ones
    assert fresh.wait(timeout=30).result == 42
    assert len(_query(pg_url, "SELECT seq FROM tasks")) == 8


def test_migrate_store_is_refused_while_the_daemon_runs(
    make_daemon: Callable[..., DaemonProcess], pg_url: str
) -> None:
    daemon = make_daemon(ONE_WORKER).start()
    assert daemon.client().submit("tests.e2e.tasks:add", 1, 1).wait(timeout=30).result == 2
    refused = daemon.cli("migrate-store", "--to", pg_url)
    assert refused.returncode == 2, refused
    assert "already running" in refused.stderr, refused.stderr
    assert refused.stdout == ""
    assert _query(
        pg_url,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
    ) == [(0,)]  # nothing written


def test_migrate_store_is_refused_into_a_target_that_holds_tasks(
    make_daemon: Callable[..., DaemonProcess], pg_url: str, tmp_path: Path
) -> None:
    other = make_daemon(f'{ONE_WORKER}\n[store]\nurl = "{pg_url}"\n', home=tmp_path / "pg").start()
    there = other.client().submit("tests.e2e.tasks:add", 1, 1)
    assert there.wait(timeout=30).result == 2
    assert other.stop() == 0

    daemon = make_daemon(ONE_WORKER).start()
    mine = daemon.client().submit("tests.e2e.tasks:add", 2, 2)
    assert mine.wait(timeout=30).result == 4
    assert daemon.stop() == 0
    refused = daemon.cli("migrate-store", "--to", pg_url, "--json")
    assert refused.returncode == 2, refused
    assert "already holds tasks" in refused.stderr, refused.stderr
    assert json.loads(refused.stdout)["error"]["code"] == "usage"
    assert _query(pg_url, "SELECT id FROM tasks") == [(there.id,)]  # nothing written
