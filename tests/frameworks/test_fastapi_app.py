"""examples/fastapi_app against a real daemon, through FastAPI's TestClient: the request
handler submits through the app's AsyncClient, a worker runs the task, the API reports it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from asynctask.testing.daemon import DaemonProcess
from examples.fastapi_app import tasks
from examples.fastapi_app.main import app


def test_a_submitted_fingerprint_runs_in_a_worker_and_is_reported(
    root_daemon: DaemonProcess,
) -> None:
    with TestClient(app) as http:
        submitted = http.post("/fingerprints", json={"text": "the quick brown fox", "rounds": 50})
        assert submitted.status_code == 202, submitted.text
        task_id = submitted.json()["id"]

        shown = http.get(f"/fingerprints/{task_id}", params={"wait": 20})

    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["state"] == "succeeded", body
    assert body["result"] == tasks.fingerprint("the quick brown fox", rounds=50)
    with root_daemon.client() as client:
        status = client.status(task_id)
    assert status.function == "examples.fastapi_app.tasks:fingerprint"
    assert status.attempts == 1


def test_unknown_and_malformed_ids_are_404_and_the_api_keeps_serving(
    root_daemon: DaemonProcess,
) -> None:
    with TestClient(app) as http:
        assert http.get("/fingerprints/01NOSUCHTASK0000000000000A").status_code == 404
        assert http.get("/fingerprints/%20%01bad").status_code == 404
        assert http.post("/fingerprints", json={"text": 7}).status_code == 422
        again = http.post("/fingerprints", json={"text": "still serving", "rounds": 1})
        assert again.status_code == 202


def test_without_a_daemon_a_submit_is_503(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ASYNCTASK_SOCKET", str(tmp_path / "none.sock"))
    with TestClient(app) as http:
        refused = http.post("/fingerprints", json={"text": "nobody home"})
    assert refused.status_code == 503
    assert "cannot take work" in refused.json()["detail"]
