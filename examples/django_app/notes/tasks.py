"""The notes app's background work, run in the asynctask daemon's workers.

``count_words`` is a plain asynctask function, submitted with ``submit_on_commit``;
``summarize`` is a Django ``@task`` (Django's tasks framework), enqueued through the
``AsynctaskBackend`` configured in ``TASKS``. Both touch the Django database from the worker.
"""

import asynctask.contrib.django.worker  # noqa: F401  (first: django.setup() in a worker)

# isort: split
from typing import Any

from django.db import connection

from notes.models import Note

try:
    from django.tasks import task  # Django >= 6.0
except ImportError:
    from django_tasks import task  # the backport, Django 4.2-5.x


def count_words(note_id: int) -> int:
    """Count the note's words and store the count; the count is the task's result."""
    was_open = connection.connection is not None
    note = Note.objects.get(pk=note_id)
    note.words = len(note.text.split())
    note.connection_was_open = was_open
    note.save(update_fields=["words", "connection_was_open"])
    return note.words


@task()
def summarize(note_id: int) -> str:
    """Store the note's first sentence as its summary, and return it."""
    note = Note.objects.get(pk=note_id)
    note.summary = note.text.split(".")[0][:200]
    note.save(update_fields=["summary"])
    return note.summary


@task(takes_context=True)
def which_attempt(context: Any, note_id: int) -> dict[str, Any]:
    """A task that asks for Django's TaskContext: its result ID and attempt number."""
    return {"note": note_id, "result_id": context.task_result.id, "attempt": context.attempt}


@task()
def explode(note_id: int) -> None:
    raise ValueError(f"note {note_id} cannot be summarized")
