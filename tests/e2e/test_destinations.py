"""on_success / on_failure: the daemon submits the destination once, with the task's end."""

from __future__ import annotations

from pathlib import Path


def test_destinations_get_the_finished_task(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon().start()
    client = daemon.client(tenant="acme")
    ok = client.submit("tests.e2e.tasks:add", 2, 3, on_success="tests.e2e.tasks:remember")
    assert ok.result(timeout=30) == 5
    told = client.result(f"{ok.id}:on_success:1", timeout=30)
    assert told == {
        "id": ok.id, "tenant": "acme", "state": "succeeded", "result": 5, "error": None,
        "attempts": 1,
    }  # fmt: skip
    flag = tmp_path / "down"
    flag.write_text("1")
    bad = client.submit(
        "tests.e2e.tasks:fail_while", str(flag), retries=0,
        on_success="tests.e2e.tasks:remember", on_failure="tests.e2e.tasks:remember",
    )  # fmt: skip
    assert bad.wait(timeout=30).state.value == "failed"
    told = client.result(f"{bad.id}:on_failure:1", timeout=30)
    assert (told["state"], told["attempts"]) == ("failed", 1)
    assert "downstream is down" in told["error"]["message"]
    # Retried and succeeding now: the on-success destination fires, once, for attempt 2.
    flag.unlink()
    assert client.retry(task_id=bad.id) == 1
    assert client.wait(bad.id, timeout=30).state.value == "succeeded"
    assert client.result(f"{bad.id}:on_success:2", timeout=30)["attempts"] == 2
    destinations = [t.id for t in client.list(prefix=bad.id) if t.id != bad.id]
    assert sorted(destinations) == [f"{bad.id}:on_failure:1", f"{bad.id}:on_success:2"]


def test_a_destination_survives_a_restart_with_its_task(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    handle = client.submit("tests.e2e.tasks:add", 1, 1, on_success="tests.e2e.tasks:remember")
    assert handle.result(timeout=30) == 2
    client.pause(function="tests.e2e.tasks:remember")  # the destination waits, queued
    second = client.submit("tests.e2e.tasks:add", 2, 2, on_success="tests.e2e.tasks:remember")
    assert second.result(timeout=30) == 4
    assert client.status(f"{second.id}:on_success:1").state.value == "queued"
    daemon.kill9()
    daemon.start()
    client = daemon.client()
    client.resume(function="tests.e2e.tasks:remember")
    assert client.result(f"{second.id}:on_success:1", timeout=30)["result"] == 4
    ids = [t.id for t in client.list(prefix=second.id)]
    assert sorted(ids) == [second.id, f"{second.id}:on_success:1"]  # submitted once
