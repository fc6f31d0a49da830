"""JSON views: create a note (its word count is submitted once the row is committed), read it
back, summarize it with a Django task, and read a task's result."""

import json

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from asynctask.contrib.django import submit_on_commit
from notes import tasks
from notes.models import Note

try:
    from django.tasks import default_task_backend
    from django.tasks.exceptions import TaskResultDoesNotExist
except ImportError:
    from django_tasks import default_task_backend
    from django_tasks.exceptions import TaskResultDoesNotExist


@csrf_exempt
@require_POST
def create_note(request: HttpRequest) -> HttpResponse:
    body = json.loads(request.body or b"{}")
    with transaction.atomic():
        note = Note.objects.create(text=str(body.get("text", "")))
        # Submitted after the commit: the worker always finds the row.
        task_id = submit_on_commit(tasks.count_words, note.pk)
    return JsonResponse({"id": note.pk, "task": task_id}, status=201)


@require_GET
def show_note(request: HttpRequest, note_id: int) -> HttpResponse:
    note = get_object_or_404(Note, pk=note_id)
    return JsonResponse({"id": note.pk, "words": note.words, "summary": note.summary})


@csrf_exempt
@require_POST
def summarize_note(request: HttpRequest, note_id: int) -> HttpResponse:
    note = get_object_or_404(Note, pk=note_id)
    result = tasks.summarize.enqueue(note.pk)
    return JsonResponse({"result": result.id}, status=202)


@require_GET
def show_result(request: HttpRequest, result_id: str) -> HttpResponse:
    try:
        result = default_task_backend.get_result(result_id)
    except TaskResultDoesNotExist:
        return JsonResponse({"error": "no such task"}, status=404)
    body = {"id": result.id, "status": str(result.status)}
    if result.is_finished and not result.errors:
        body["return_value"] = result.return_value
    return JsonResponse(body)
