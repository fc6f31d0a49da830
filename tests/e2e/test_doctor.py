"""Unusable stored rows are set aside at start-up, and ``asynctask doctor`` reports them and the
database's integrity, with the daemon running or not (docs/contract.md, "Robustness")."""

from __future__ import annotations

import json
import sqlite3

from asynctask.paths import DATABASE_NAME
from tests.e2e.conftest import DaemonProcess, poll

EXIT_FOUND = 5


def _db(daemon: DaemonProcess) -> sqlite3.Connection:
    return sqlite3.connect(daemon.home / DATABASE_NAME, isolation_level=None)


def _doctor(daemon: DaemonProcess) -> tuple[int, dict]:
    done = daemon.cli("doctor", "--json")
    assert done.stderr == "", done.stderr
    return done.returncode, json.loads(done.stdout)


def test_garbage_rows_are_set_aside_listed_by_doctor_and_not_met_again(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    good = client.submit("tests.e2e.tasks:add", 1, 2, delay=2)
    assert daemon.stop() == 0
    with _db(daemon) as db:
        (row,) = db.execute("SELECT * FROM tasks WHERE id = ?", (good.id,)).fetchall()
        garbage = list(row)
        garbage[0] = row[0] + 100  # seq
        garbage[2] = "garbage-task"  # id
        garbage[8] = b"\xc1"  # options: a byte msgpack never uses
        db.execute(f"INSERT INTO tasks VALUES ({', '.join('?' * len(garbage))})", garbage)
        db.execute(
            "INSERT INTO crons (tenant, name, definition) VALUES ('default', 'junk', ?)",
            (b"\xc1garbage",),
        )
    daemon.start()
    log = daemon.log.read_text()
    assert "default/garbage-task" in log
    assert "default/junk" in log
    assert "set aside 2 unusable row(s)" in log, log
    assert client.wait(good.id, timeout=30).result == 3  # it serves everything else
    code, report = _doctor(daemon)  # beside the running daemon
    assert code == EXIT_FOUND, report
    assert report["integrity"] == "ok"
    found = {(row["table"], row["key"]): row for row in report["quarantined"]}
    assert set(found) == {
        ("tasks", f"seq={garbage[0]} default/garbage-task"),
        ("crons", "default/junk"),
    }
    task = found[("tasks", f"seq={garbage[0]} default/garbage-task")]
    assert task["row"]["options"] == {"hex": "c1"}
    assert "FormatError" in task["error"]
    assert task["at"].endswith("Z")
    assert json.loads(daemon.cli("cron", "list", "--json").stdout) == []
    assert daemon.stop() == 0

    text = daemon.cli("doctor")  # the daemon is not running: when it is needed most
    assert text.returncode == EXIT_FOUND, text.stderr
    assert "quarantined rows: 2" in text.stdout
    assert "crons default/junk" in text.stdout
    with _db(daemon) as db:
        assert db.execute("SELECT count(*) FROM tasks WHERE id = 'garbage-task'").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM crons").fetchone() == (0,)

    seen = len(daemon.log.read_text())
    daemon.start()
    poll(lambda: "serving on" in daemon.log.read_text()[seen:])
    again = daemon.log.read_text()[seen:]
    assert "garbage-task" not in again, again
    assert "junk" not in again, again
    assert "set aside" not in again, again


def test_doctor_on_a_healthy_store_exits_0(make_daemon) -> None:
    daemon = make_daemon()
    fresh = daemon.cli("doctor")  # no database yet
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    daemon.start()
    assert daemon.client().submit("tests.e2e.tasks:add", 1, 2).wait(timeout=30).result == 3
    code, report = _doctor(daemon)
    assert code == 0, report
    assert report["healthy"] is True
    assert report["integrity"] == "ok"
    assert report["quarantined"] == []
    assert report["schema_version"] >= 9
    assert daemon.stop() == 0
    text = daemon.cli("doctor")
    assert text.returncode == 0, text.stdout
    assert "integrity: ok" in text.stdout
    assert "doctor" in daemon.cli("--help").stdout


def test_doctor_reports_a_corrupted_page(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    for n in range(300):  # several pages of tasks and of their indexes
        client.submit("tests.e2e.tasks:add", n, 1, delay=3600, labels={"n": str(n)})
    assert daemon.stop() == 0
    path = daemon.home / DATABASE_NAME
    with _db(daemon) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    assert pages > 6
    data = bytearray(path.read_bytes())
    middle = pages // 2 * page_size
    data[middle + 8 : middle + page_size] = b"\xa5" * (page_size - 8)  # keep the page header
    path.write_bytes(bytes(data))
    code, report = _doctor(daemon)
    assert code == EXIT_FOUND, report
    assert report["integrity"] == "damaged"
    assert report["problems"], report
    text = daemon.cli("doctor")
    assert text.returncode == EXIT_FOUND
    assert "integrity: damaged" in text.stdout
    assert "Traceback" not in text.stdout + text.stderr


def test_a_row_whose_text_is_not_utf8_is_set_aside_and_the_rest_loads(make_daemon) -> None:
    """SQLite's fetch itself fails on such text, for the whole batch: before, the daemon did
    not start. Rows before and after it in the same batch must still load."""
    daemon = make_daemon().start()
    client = daemon.client()
    handles = [client.submit("tests.e2e.tasks:add", n, n, delay=2) for n in range(5)]
    assert daemon.stop() == 0
    with _db(daemon) as db:
        db.execute(
            "UPDATE tasks SET tenant = CAST(X'64656661756c74FF' AS TEXT) WHERE id = ?",
            (handles[2].id,),
        )
    daemon.start()
    assert "set aside 1 unusable row(s)" in daemon.log.read_text()
    for n in (0, 1, 3, 4):
        assert client.wait(handles[n].id, timeout=30).result == 2 * n
    code, report = _doctor(daemon)
    assert code == EXIT_FOUND
    (row,) = report["quarantined"]
    assert handles[2].id in row["key"]


def test_a_cron_row_whose_name_is_not_utf8_is_set_aside(make_daemon) -> None:
    daemon = make_daemon().start()
    assert (
        daemon.cli("cron", "add", "good", "0 3 * * *", "tests.e2e.tasks:add", "[1, 2]").returncode
        == 0
    )
    assert daemon.stop() == 0
    with _db(daemon) as db:
        (definition,) = db.execute("SELECT definition FROM crons").fetchone()
        db.execute(
            "INSERT INTO crons (tenant, name, definition) VALUES "
            "('default', CAST(X'6261645FFF' AS TEXT), ?)",
            (definition,),
        )
    daemon.start()
    assert "set aside 1 unusable row(s)" in daemon.log.read_text()
    names = [entry["name"] for entry in json.loads(daemon.cli("cron", "list", "--json").stdout)]
    assert names == ["good"]
    code, report = _doctor(daemon)
    assert code == EXIT_FOUND
    assert [row["table"] for row in report["quarantined"]] == ["crons"]


def test_bad_pause_and_uid_rows_are_set_aside(make_daemon) -> None:
    """Before, an unknown pause kind or a uid that is not a number stopped every start."""
    daemon = make_daemon().start()
    assert daemon.cli("pause", "--queue", "held").returncode == 0
    assert daemon.stop() == 0
    with _db(daemon) as db:
        db.execute("INSERT INTO pauses (kind, tenant, name) VALUES ('bogus', 'default', 'x')")
        db.execute("INSERT INTO tenant_uids (tenant, uid) VALUES ('someone', 'not a uid')")
    daemon.start()
    log = daemon.log.read_text()
    assert "set aside 1 unusable row(s)" in log  # the uid, then the pause
    assert "pause bogus default/x cannot be used" in log
    code, report = _doctor(daemon)
    assert code == EXIT_FOUND
    assert sorted(row["table"] for row in report["quarantined"]) == ["pauses", "tenant_uids"]
    report = json.loads(daemon.cli("queues", "--json").stdout)
    held = [row for row in report["queues"] if row["queue"] == "held"]
    assert [row["paused"] for row in held] == [True]  # the good pause still holds
