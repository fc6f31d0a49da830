"""examples/flask_app against a real daemon, through Flask's test client: the view submits
through the app's blocking Client, a worker runs the task, the app reports it."""

from __future__ import annotations

from asynctask.testing.daemon import DaemonProcess
from examples.flask_app.app import create_app


def test_a_submitted_report_runs_in_a_worker_and_is_reported(root_daemon: DaemonProcess) -> None:
    http = create_app().test_client()
    text = "To be, or not to be: that is the question. To be is to do."

    submitted = http.post("/reports", json={"text": text})
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.get_json()["id"]
    shown = http.get(f"/reports/{task_id}?wait=20")

    assert shown.status_code == 200, shown.text
    body = shown.get_json()
    assert body["state"] == "succeeded", body
    assert body["result"] == {"words": 15, "top": ["to", "be", "is"]}
    with root_daemon.client() as client:
        assert client.status(task_id).function == "examples.flask_app.tasks:word_report"


def test_bad_requests_get_clear_answers(root_daemon: DaemonProcess) -> None:
    http = create_app().test_client()
    assert http.post("/reports", data="not json").status_code == 400
    assert http.post("/reports", json={"text": ["a", "list"]}).status_code == 400
    assert http.get("/reports/01NOSUCHTASK0000000000000A").status_code == 404
    assert http.get("/reports/bad%20id").status_code == 404
    assert http.post("/reports", json={"text": "still serving"}).status_code == 202


def test_without_a_daemon_a_submit_is_503(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ASYNCTASK_SOCKET", str(tmp_path / "none.sock"))
    refused = create_app().test_client().post("/reports", json={"text": "nobody home"})
    assert refused.status_code == 503
