"""examples/django_app against a real daemon and a real SQLite database shared with the workers.

Django is set up once in this process (its settings are process-wide), with the example's
settings and a database file in a fresh world-writable directory under /tmp: the workers run
sandboxed (the system read-only but /tmp) and, under root, as a uid of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asynctask.contrib.django.backend import RUNNER, priority_of
from asynctask.errors import NotFound
from asynctask.testing.daemon import DaemonProcess, run_daemon

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "django_app"
# One worker, so that consecutive tasks run in the same process (the connection test).
CONFIG = (
    (EXAMPLE / "asynctask.toml")
    .read_text()
    .replace("[workers]\n", "[workers]\nmin_workers = 1\nmax_workers = 1\n", 1)
)


def poll(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout}s: {condition}")


@pytest.fixture(scope="module")
def database() -> Iterator[Path]:
    """The example project set up in this process, migrated, on a database the workers can
    write."""
    where = Path(tempfile.mkdtemp(prefix="asynctask-django-"))
    where.chmod(0o777)
    database = where / "notes.sqlite3"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOTES_DATABASE", str(database))
        patch.setenv("DJANGO_SETTINGS_MODULE", "mysite.settings")
        patch.syspath_prepend(str(EXAMPLE))
        import django
        from django.conf import settings
        from django.core.management import call_command

        django.setup()
        assert settings.DATABASES["default"]["NAME"] == str(database), (
            "Django was set up before this module with other settings"
        )
        call_command("migrate", verbosity=0)
        database.chmod(0o666)
        yield database
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def daemon(database: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DaemonProcess]:
    with run_daemon(cwd=EXAMPLE, config=CONFIG, env={"NOTES_DATABASE": str(database)}) as daemon:
        monkeypatch.setenv("ASYNCTASK_SOCKET", str(daemon.socket))
        yield daemon


def test_a_note_saved_in_a_view_is_counted_by_a_worker_after_the_commit(
    daemon: DaemonProcess,
) -> None:
    from django.test import Client as HttpClient
    from notes.models import Note

    created = HttpClient().post(
        "/notes/", {"text": "one two three four"}, content_type="application/json"
    )

    assert created.status_code == 201, created.content
    body = created.json()
    poll(lambda: Note.objects.get(pk=body["id"]).words == 4)
    with daemon.client() as client:
        status = client.wait(body["task"], timeout=20)
    assert status.succeeded
    assert status.result == 4
    assert status.function == "notes.tasks:count_words"


def test_submit_on_commit_submits_after_the_commit_and_never_after_a_rollback(
    daemon: DaemonProcess,
) -> None:
    from django.db import transaction
    from notes import tasks
    from notes.models import Note

    from asynctask.contrib.django import submit_on_commit

    chosen: list[str] = []

    def rolled_back_view() -> None:
        with transaction.atomic():
            note = Note.objects.create(text="never counted")
            chosen.append(submit_on_commit(tasks.count_words, note.pk))
            raise RuntimeError("roll back")

    client = daemon.client()
    with pytest.raises(RuntimeError):
        rolled_back_view()
    (rolled_back,) = chosen
    with transaction.atomic():
        note = Note.objects.create(text="counted after the commit")
        committed = submit_on_commit(tasks.count_words, note.pk, labels={"case": "commit"})
        with pytest.raises(NotFound):
            client.status(committed)  # not before the commit

    assert client.wait(committed, timeout=20).result == 4
    assert client.status(committed).labels == {"case": "commit"}
    with pytest.raises(NotFound):
        client.status(rolled_back)
    assert [task.id for task in client.list(function="notes.tasks:count_words")] == [committed]
    client.close()


def test_each_attempt_starts_without_the_last_attempts_database_connection(
    daemon: DaemonProcess,
) -> None:
    """The worker hooks close Django's connections around attempts; without them the second
    task in the same worker would find the first one's connection still open."""
    from notes import tasks
    from notes.models import Note

    notes = [Note.objects.create(text="a b"), Note.objects.create(text="c d e")]
    with daemon.client() as client:
        for note in notes:  # one after the other, in the one worker
            client.submit(tasks.count_words, note.pk).result(timeout=20)

    for note in notes:
        note.refresh_from_db()
        assert note.connection_was_open is False, note.pk


def test_a_django_task_runs_through_the_backend_and_its_result_reads_back(
    daemon: DaemonProcess,
) -> None:
    from django.test import Client as HttpClient
    from notes.models import Note

    note = Note.objects.create(text="First sentence. Second one.")
    http = HttpClient()

    enqueued = http.post(f"/notes/{note.pk}/summarize/")
    assert enqueued.status_code == 202, enqueued.content
    result_id = enqueued.json()["result"]
    shown = poll(
        lambda: (
            (reply := http.get(f"/results/{result_id}/").json())["status"] == "SUCCESSFUL" and reply
        )
    )

    assert shown["return_value"] == "First sentence"
    note.refresh_from_db()
    assert note.summary == "First sentence"
    with daemon.client() as client:
        status = client.status(result_id)
    assert status.function == RUNNER
    assert status.labels == {"django_task": "notes.tasks.summarize"}
    assert http.get("/results/01NOSUCHTASK0000000000000A/").status_code == 404


def test_a_failing_django_task_is_failed_with_its_error_after_the_backends_retries(
    daemon: DaemonProcess,
) -> None:
    from notes import tasks

    result = tasks.explode.enqueue(7)
    assert str(result.status) == "READY"

    poll(lambda: result.refresh() or result.is_finished)

    assert str(result.status) == "FAILED"
    assert result.attempts == 2  # OPTIONS retries = 1 in the example's settings
    assert result.errors[-1].exception_class is ValueError
    assert "note 7 cannot be summarized" in result.errors[-1].traceback


def test_a_django_task_that_takes_context_gets_its_own_result_and_attempt(
    daemon: DaemonProcess,
) -> None:
    from notes import tasks

    result = tasks.which_attempt.enqueue(3)
    poll(lambda: result.refresh() or result.is_finished)

    assert result.errors == []
    assert result.return_value == {"note": 3, "result_id": result.id, "attempt": 1}


def test_the_shared_client_is_one_per_process_and_socket(tmp_path: Path) -> None:
    from asynctask.contrib.django import shared_client

    first = shared_client(tmp_path / "a.sock")
    assert shared_client(tmp_path / "a.sock") is first
    assert shared_client(tmp_path / "b.sock") is not first
    assert shared_client(tmp_path / "a.sock", tenant="other") is not first
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, b"new" if shared_client(tmp_path / "a.sock") is not first else b"old")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 3) == b"new"  # a forked child never shares the parent's socket
    os.close(read)
    os.close(write)


def test_the_runner_refuses_what_is_not_a_django_task(daemon: DaemonProcess) -> None:
    """A caller who names any function through the runner gets a failed task, not a call."""
    with daemon.client() as client:
        status = client.submit(RUNNER, "os.system", ["touch /tmp/owned"], {}).wait(timeout=20)
        assert status.state.value == "failed"
        assert status.attempts == 1  # asynctask.Fail: not retried
        assert "is not a Django task" in status.error["message"]
        assert client.ping()["pid"] == daemon.pid


def test_manage_py_asynctask_runs_the_command_for_the_project(
    daemon: DaemonProcess, database: Path, tmp_path: Path
) -> None:
    from notes.models import Note

    note = Note.objects.create(text="counted from the command line")
    env = {
        **os.environ,
        **daemon.env,
        "NOTES_DATABASE": str(database),
        "PYTHONPATH": str(ROOT),
    }
    manage = [sys.executable, "manage.py", "asynctask"]
    submitted = subprocess.run(
        [*manage, "submit", "notes.tasks:count_words", json.dumps([note.pk]), "--wait", "--json"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["result"] == 5

    # A daemon whose config does not pass the settings module on is refused, saying what to add.
    refused = subprocess.run(
        [*manage, "daemon", "--home", str(tmp_path / "home")],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert 'env_pass = ["DJANGO_SETTINGS_MODULE"]' in refused.stderr
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(
    ("django", "ours"),
    [(-100, 0), (-21, 3), (-20, 4), (-1, 4), (0, 5), (1, 6), (25, 6), (26, 7), (99, 9), (100, 9)],
)
def test_django_priorities_map_onto_ours_in_order(django: int, ours: int) -> None:
    assert priority_of(django) == ours


def test_the_priority_map_keeps_order_everywhere() -> None:
    mapped = [priority_of(p) for p in range(-100, 101)]
    assert mapped == sorted(mapped)
    assert set(mapped) == set(range(10))
