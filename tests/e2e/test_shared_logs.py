"""Attempt logs across daemons (issue 16; docs/scale-out.md "Attempt logs across daemons"):
a daemon on PostgreSQL copies each ended attempt's log into the database, so ``logs`` answers
on a daemon whose home never saw the attempt, byte for byte, truncation marker included.

One daemon per database for now (the advisory lock), so the "other daemon" is a second home
started on the same schema after the first has stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from tests import pgcluster
from tests.e2e.conftest import DaemonProcess

CONFIG = (
    '[workers]\nmin_workers = 1\nmax_workers = 1\nmax_log_bytes = "4K"\n'
    '[retry]\nbackoff_base = "10ms"\n[store]\nurl = "{url}"\n'
)


@pytest.fixture
def pg_url(tmp_path: Path) -> str:
    return asyncio.run(pgcluster.url_for(tmp_path))


def _rows(url: str) -> list[tuple[int, int, int]]:
    async def run() -> list[tuple[int, int, int]]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT seq, attempt, octet_length(data) FROM attempt_logs ORDER BY 1, 2"
            )
            return [(row[0], row[1], row[2]) for row in rows]
        finally:
            await conn.close()

    return asyncio.run(run())


def test_logs_answer_on_a_daemon_that_did_not_run_the_attempt(
    make_daemon: Callable[..., DaemonProcess], pg_url: str, tmp_path: Path
) -> None:
    config = CONFIG.format(url=pg_url)
    first = make_daemon(config, home=tmp_path / "a").start()
    client = first.client()
    flooded = client.submit("tests.e2e.tasks:flood", 10 * 1024)
    assert flooded.wait(timeout=30).state.value == "succeeded"
    talked = client.submit("tests.e2e.tasks:talk", 2, str(tmp_path / "go"), 0.0)
    assert talked.wait(timeout=30).state.value == "succeeded"
    mine = client.logs(flooded.id)["attempts"]
    assert first.stop() == 0
    files = sorted((first.home / "logs" / "attempts").iterdir())
    assert len(files) == 2
    assert [size for _, _, size in _rows(pg_url)] == [f.stat().st_size for f in files]

    other = make_daemon(config, home=tmp_path / "b").start()
    theirs = other.client().logs(flooded.id)
    assert theirs["done"]
    assert theirs["attempts"] == mine
    assert theirs["attempts"][0]["data"] == files[0].read_bytes()
    assert b"[asynctask: output truncated:" in theirs["attempts"][0]["data"]
    shown = other.cli("logs", talked.id)
    assert shown.returncode == 0, shown.stderr
    assert "line 1" in shown.stdout
    assert "done talking" in shown.stdout
    assert not (other.home / "logs" / "attempts" / files[0].name).exists()

    deleted = other.cli("delete", flooded.id)
    assert deleted.returncode == 0, deleted.stderr
    assert len(_rows(pg_url)) == 1  # the deleted task's log went with it
    assert other.stop() == 0
