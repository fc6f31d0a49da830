"""delete: finished tasks leave the history, in one transaction; their IDs become free."""

from __future__ import annotations

import json


def test_delete_by_selector_frees_the_ids(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client(tenant="acme")
    done = [client.submit("tests.e2e.tasks:add", i, 0, task_id=f"job-{i}", labels={"run": "1"})
            for i in range(20)]  # fmt: skip
    for handle in done:
        assert handle.wait(timeout=30).state.value == "succeeded"
    kept = client.submit("tests.e2e.tasks:add", 5, 5, task_id="keep")
    assert kept.result(timeout=30) == 10
    before = client.ping()["store"]["transactions"]
    cli = daemon.cli("delete", "--tenant", "acme", "--label", "run=1", "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == {"deleted": 20}
    assert client.ping()["store"]["transactions"] == before + 1
    assert client.list(tenant="acme", labels={"run": "1"}) == []
    assert client.status("keep").state.value == "succeeded"
    # A deleted ID may be submitted again: a new task, not the old one's status.
    again = client.submit("tests.e2e.tasks:add", 7, 0, task_id="job-3")
    assert again.result(timeout=30) == 7


def test_delete_refuses_live_tasks_and_bad_requests(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    client.pause(tenant="default")
    queued = client.submit("tests.e2e.tasks:add", 1, 1, task_id="waiting")
    for args, message in [
        (("waiting",), "cancel it first"),
        (("--state", "running"), "only finished tasks can be deleted"),
        ((), "needs a task ID or a selector"),
        (("nope",), "no task"),
    ]:
        cli = daemon.cli("delete", *args)
        assert cli.returncode == 2, (args, cli.stdout, cli.stderr)
        assert message in cli.stderr, (args, cli.stderr)
    assert client.status(queued.id).state.value == "queued"
    assert client.cancel(task_id="waiting") == 1
    assert client.delete(task_id="waiting") == 1
    assert client.list(prefix="waiting") == []


def test_history_retention_deletes_old_finished_tasks_only(make_daemon) -> None:
    from tests.e2e.conftest import poll

    daemon = make_daemon('[daemon]\nretention = "1s"\n').start()
    client = daemon.client()
    client.pause(tenant="waiting")
    waiting = daemon.client(tenant="waiting").submit("tests.e2e.tasks:add", 1, 1)
    done = client.submit("tests.e2e.tasks:add", 2, 2, task_id="old-1")
    assert done.result(timeout=30) == 4
    # A pass every 0.1 s; the finished task goes once it is older than 1 s.
    poll(lambda: client.list(prefix="old-1") == [], timeout=20)
    assert daemon.client(tenant="waiting").status(waiting.id).state.value == "queued"
    again = client.submit("tests.e2e.tasks:add", 3, 3, task_id="old-1")  # the ID is free
    assert again.result(timeout=30) == 6
