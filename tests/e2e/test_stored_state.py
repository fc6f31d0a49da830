"""Nothing stored can stop the daemon from starting (docs/contract.md, "Robustness").

A cron expression that never fires is refused at ``cron add``; a stored cron entry or task row
that cannot be used (written by another version, or by hand) is logged and moved into the
``quarantine`` table (``asynctask doctor`` lists it; tests/e2e/test_doctor.py), and the daemon
starts and serves everything else.
"""

from __future__ import annotations

import json
import sqlite3
import struct
from datetime import datetime

import msgpack

from asynctask import protocol
from asynctask.paths import DATABASE_NAME
from tests.e2e.conftest import DaemonProcess, poll


def _slots(client, name: str) -> list[float]:
    tasks = client.list(labels={"cron": name}, limit=1000)
    stamps = [t.id.removeprefix(f"cron:{name}:") for t in tasks]
    return sorted(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() for s in stamps)


def _db(daemon: DaemonProcess) -> sqlite3.Connection:
    return sqlite3.connect(daemon.home / DATABASE_NAME, isolation_level=None)


def test_cron_that_never_fires_is_refused_and_not_stored(make_daemon) -> None:
    daemon = make_daemon().start()
    for expr in ("0 3 30 2 *", "0 0 31 4 *", "0 0 0 31 11 *"):  # Feb 30, Apr 31, Nov 31
        cli = daemon.cli("cron", "add", "never", expr, "tests.e2e.tasks:add", "[1, 2]")
        assert cli.returncode == 2, (expr, cli.stdout, cli.stderr)
        assert "never fires" in cli.stderr, (expr, cli.stderr)
        assert "internal" not in cli.stderr
    assert json.loads(daemon.cli("cron", "list", "--json").stdout) == []
    assert daemon.client().submit("tests.e2e.tasks:add", 1, 2).wait(timeout=30).result == 3
    assert daemon.stop() == 0
    daemon.start()  # nothing was stored that could stop it
    assert json.loads(daemon.cli("cron", "list", "--json").stdout) == []


def test_stored_cron_entries_that_cannot_run_are_logged_and_skipped(make_daemon) -> None:
    daemon = make_daemon().start()
    cli = daemon.cli("cron", "add", "tick", "* * * * * *", "tests.e2e.tasks:add", "[1, 2]")
    assert cli.returncode == 0, cli.stderr
    assert daemon.stop() == 0
    with _db(daemon) as db:
        ((blob,),) = db.execute("SELECT definition FROM crons WHERE name = 'tick'").fetchall()
        feb30 = {**protocol.unpack(blob), "expr": "0 3 30 2 *", "last_slot": None}
        db.execute(
            "INSERT INTO crons (tenant, name, definition) VALUES (?, ?, ?), (?, ?, ?)",
            ("default", "feb30", protocol.pack(feb30), "default", "junk", b"\xc1garbage"),
        )
    daemon.start()
    log = daemon.log.read_text()
    assert "default/feb30" in log
    assert "never fires" in log
    assert "default/junk" in log
    client = daemon.client()
    count = len(_slots(client, "tick"))
    poll(lambda: len(_slots(client, "tick")) >= count + 2, timeout=30)  # the good one fires
    listed = {e["name"]: e for e in json.loads(daemon.cli("cron", "list", "--json").stdout)}
    assert set(listed) == {"tick"}  # the unusable ones were set aside, not kept
    assert listed["tick"]["next_at"] is not None
    assert daemon.stop() == 0
    with _db(daemon) as db:
        assert db.execute("SELECT name FROM crons").fetchall() == [("tick",)]
        aside = db.execute("SELECT source, key, error FROM quarantine ORDER BY key").fetchall()
    assert [row[:2] for row in aside] == [("crons", "default/feb30"), ("crons", "default/junk")]
    assert "never fires" in aside[0][2]


def test_undecodable_task_rows_are_logged_and_skipped(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    handles = [client.submit("tests.e2e.tasks:add", n, 1, delay=3) for n in range(8)]
    assert daemon.stop() == 0
    bad = {
        handles[0].id: ("options", b"\xc1"),  # msgpack's never-used byte: FormatError('')
        handles[1].id: ("labels", "{not json"),
        handles[2].id: ("options", msgpack.packb([1, 2])),  # decodes, but not a map
        handles[3].id: ("due_at", "soon"),  # text in a REAL column: it stays text
        handles[4].id: ("options", msgpack.packb({"expires_at": "never"})),  # a timer heap
        handles[5].id: ("labels", "[1]"),  # JSON, but not a map
    }
    with _db(daemon) as db:
        for task_id, (column, value) in bad.items():
            db.execute(f"UPDATE tasks SET {column} = ? WHERE id = ?", (value, task_id))
        seqs = dict(db.execute("SELECT id, seq FROM tasks").fetchall())
    daemon.start()
    log = daemon.log.read_text()
    for task_id in bad:
        line = next(line for line in log.splitlines() if task_id in line)
        assert f"seq={seqs[task_id]}" in line, line
        assert "default" in line, line
    assert "FormatError" in log  # an exception with no message is named by its type
    assert "skipped 6" in log, log
    client = daemon.client()
    for handle in handles[6:]:
        assert client.wait(handle.id, timeout=30).state.value == "succeeded"
    assert client.ping()["accepting"]
    assert daemon.stop() == 0
    with _db(daemon) as db:  # the bad rows were moved whole, for an operator to look at
        for task_id, (column, value) in bad.items():
            assert db.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchall() == []
            ((row,),) = db.execute(
                "SELECT row FROM quarantine WHERE key = ?",
                (f"seq={seqs[task_id]} default/{task_id}",),
            )
            stored = json.loads(row)[column]
            assert stored == ({"hex": value.hex()} if isinstance(value, bytes) else value)


def test_a_damaged_wal_is_logged_loudly_and_the_daemon_starts(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    for n in range(10):  # one commit each, left in the WAL by the kill
        client.submit("tests.e2e.tasks:add", n, 1, delay=3600)
    daemon.kill9()
    wal = daemon.home / f"{DATABASE_NAME}-wal"
    data = bytearray(wal.read_bytes())
    (page_size,) = struct.unpack_from(">I", data, 8)
    frames = (len(data) - 32) // (24 + page_size)
    data[32 + frames // 2 * (24 + page_size) + 24 + 100] ^= 0xFF  # a byte in a middle frame
    wal.write_bytes(bytes(data))
    daemon.start()
    line = next(line for line in daemon.log.read_text().splitlines() if "DATA LOSS" in line)
    assert "committed transactions" in line
    assert "event=wal_damaged" in line
    assert daemon.client().submit("tests.e2e.tasks:add", 1, 2).wait(timeout=30).result == 3
