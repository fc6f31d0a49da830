"""The app (``flask --app examples.flask_app.app run`` finds ``create_app``): ``POST
/reports`` submits a report and answers 202 with the task's ID; ``GET /reports/<id>`` tells
its state and result (``?wait=5`` waits up to 5 s for it).

``create_app`` makes one blocking ``asynctask.Client`` per app. It is thread-safe, so Flask's
threaded server and a threaded WSGI server share it, and it connects on first use. Under a
pre-forking server (gunicorn) make the app in each worker process - the default, without
``--preload`` - so no socket is shared across a fork.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, request

import asynctask
from asynctask.errors import (
    DaemonUnavailable,
    NotFound,
    SubmitThrottled,
    UsageError,
    WaitTimeout,
)
from examples.flask_app import tasks


def create_app(client: asynctask.Client | None = None) -> Flask:
    app = Flask(__name__)
    app.extensions["asynctask"] = client if client is not None else asynctask.Client()

    @app.post("/reports")
    def submit_report() -> tuple[dict[str, Any], int]:
        body = request.get_json(silent=True) or {}
        text = body.get("text")
        if not isinstance(text, str):
            return {"error": "a JSON body with a string 'text' is required"}, 400
        try:
            handle = _client().submit(tasks.word_report, text, kwargs={"top": 3})
        except (DaemonUnavailable, SubmitThrottled) as exc:
            return {"error": f"the task daemon cannot take work now: {exc.message}"}, 503
        return {"id": handle.id}, 202

    @app.get("/reports/<task_id>")
    def show_report(task_id: str) -> tuple[dict[str, Any], int]:
        wait = min(request.args.get("wait", 0.0, type=float) or 0.0, 30.0)
        client = _client()
        try:
            try:
                status = client.wait(task_id, timeout=wait) if wait > 0 else client.status(task_id)
            except WaitTimeout:
                status = client.status(task_id)
        except (NotFound, UsageError):  # unknown, another tenant's, or not an ID at all
            return {"error": "no such task"}, 404
        return {"id": status.id, "state": status.state.value, "result": status.result}, 200

    return app


def _client() -> asynctask.Client:
    client: asynctask.Client = current_app.extensions["asynctask"]
    return client
