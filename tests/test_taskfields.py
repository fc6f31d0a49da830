"""A task's fields are defined once (``asynctask/taskfields.py``); everything that lists them is
generated from it. These tests hold the parts together: the generated code is current, the
migrated database has exactly the stored fields, and a task survives the round trip through
row, SQL parameters and back with every field intact."""

from __future__ import annotations

import dataclasses
import inspect
import sqlite3
import subprocess
import sys
from pathlib import Path

from asynctask.daemon.views import row_of, task_from_row, update_of, view_of
from asynctask.model import LiveTask, TaskState
from asynctask.store import Store, TaskRow, UpdateTask
from asynctask.store.codec import row_decoder, row_params, update_params
from asynctask.store.schema import COLUMNS
from asynctask.taskfields import FIELDS, MUTABLE, NOT_IN_VIEW, STORED, VIEW

ROOT = Path(__file__).resolve().parent.parent


def test_the_generated_code_is_current() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/taskfields.py", "--check"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_classes_have_the_tables_fields_in_its_order() -> None:
    params = list(inspect.signature(LiveTask.__init__).parameters)[1:]
    assert params == [f.name for f in FIELDS]
    assert set(LiveTask.__slots__) == {f.name for f in FIELDS} | {"queued_at"}
    assert [f.name for f in dataclasses.fields(TaskRow)] == [f.name for f in STORED]
    assert [f.name for f in dataclasses.fields(UpdateTask)] == ["seq", *(f.name for f in MUTABLE)]
    assert list(COLUMNS) == [f.name for f in STORED]


async def test_the_migrated_table_has_exactly_the_stored_fields(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    store = await Store.open(str(path))
    await store.close()
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
    conn.close()
    assert columns == {f.name for f in STORED}  # a stored field needs its migration


def test_every_field_is_in_the_view_unless_left_out_on_purpose() -> None:
    shown = {name for name in (f.name for f in FIELDS) if any(
        f"task.{name}" in expression for _, expression in VIEW
    )}  # fmt: skip
    assert shown | NOT_IN_VIEW == {f.name for f in FIELDS}
    assert not shown & NOT_IN_VIEW


def _full_task() -> LiveTask:
    """A task with no field at its default, so a field dropped anywhere shows."""
    return LiveTask(
        seq=9, tenant="t", id="x", function="m:f", queue="q", priority=7,
        state=TaskState.RUNNING, payload=b"\x92\x90\x80",
        options={"retries": 4, "timeout": 2.5, "expires_at": 99.0},
        labels={"k": "v"}, retries=4, timeout=2.5, created_at=1.0, due_at=2.0, expires_at=99.0,
        attempts=3, started_at=3.0, finished_at=4.0, result=b"\x07",
        error={"kind": "exception", "type": "E", "message": "m", "traceback": None},
        errors=[{"kind": "timeout"}], held=True, trace_id="tr", trace=[[1.0, 1.0, 2.0, 3.0, 4.0]],
    )  # fmt: skip


def _fields_of(task: LiveTask) -> dict[str, object]:
    return {f.name: getattr(task, f.name) for f in FIELDS}


def test_a_task_survives_the_round_trip_through_the_store_codec() -> None:
    task = _full_task()
    params = row_params(row_of(task))
    decoded = row_decoder()(None, params)  # type: ignore[arg-type]
    assert decoded == row_of(task)
    assert _fields_of(task_from_row(decoded)) == _fields_of(task)


def test_an_update_carries_every_mutable_field_in_the_statements_order() -> None:
    task = _full_task()
    op = update_of(task)
    assert {f.name: getattr(op, f.name) for f in MUTABLE} == {
        f.name: getattr(task, f.name) for f in MUTABLE
    }
    assert update_params(op)[-1] == task.seq


def test_the_view_reads_the_task() -> None:
    view = view_of(_full_task())
    assert [key for key, _ in VIEW] == list(view)
    assert (view["paused"], view["retries"], view["trace_id"]) == (True, 4, "tr")
