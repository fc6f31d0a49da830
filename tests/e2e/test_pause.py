"""pause/resume by selector (tasks held one by one) and the per-attempt error history."""

from __future__ import annotations

import json

from tests.e2e.conftest import poll

FAST_RETRY = '[retry]\nbackoff_base = "10ms"\nbackoff_cap = "20ms"\n'


def test_pause_by_label_holds_only_the_matching_tasks_across_a_restart(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client(tenant="acme")
    client.pause(tenant="acme")  # nothing starts while the selection is made
    held = client.submit_many(
        {"func": "tests.e2e.tasks:add", "args": [i, 1], "labels": {"batch": "7"}} for i in range(5)
    )
    free = client.submit_many({"func": "tests.e2e.tasks:add", "args": [i, 2]} for i in range(5))
    later = client.submit("tests.e2e.tasks:add", 0, 0, delay="1h", labels={"batch": "7"})
    before = client.ping()["store"]["transactions"]
    cli = daemon.cli("pause", "--tenant", "acme", "--label", "batch=7")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == "paused 6 tasks"
    assert client.ping()["store"]["transactions"] == before + 1  # all or nothing
    client.resume(tenant="acme")
    for handle in free:
        assert handle.wait(timeout=30).state.value == "succeeded"
    statuses = [client.status(h.id) for h in held]
    assert {(s.state.value, s.paused) for s in statuses} == {("queued", True)}
    queue = next(q for q in client.queues()["queues"] if q["tenant"] == "acme")
    assert (queue["paused_tasks"], queue["backlog"]) == (6, 6)

    assert daemon.stop() == 0
    daemon.start()
    client = daemon.client(tenant="acme")
    assert {client.status(h.id).paused for h in held} == {True}  # still held after a restart
    shown = json.loads(daemon.cli("status", "--tenant", "acme", "--json", held[0].id).stdout)
    assert (shown["state"], shown["paused"]) == ("queued", True)

    assert client.resume(labels={"batch": "7"}, state="queued") == 5  # the delayed one waits on
    for handle in held:
        assert client.wait(handle.id, timeout=30).state.value == "succeeded"
    delayed = client.status(later.id)
    assert (delayed.state.value, delayed.paused) == ("scheduled", True)
    assert client.resume(task_id=later.id) == 1
    assert client.status(later.id).paused is False


def test_pause_by_id_and_its_refusals_change_nothing(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    waiting = client.submit("tests.e2e.tasks:add", 1, 1, delay="1h")
    assert daemon.cli("pause", waiting.id).stdout.strip() == "paused 1 task"
    assert daemon.cli("pause", waiting.id).stdout.strip() == "paused 0 tasks"  # already held
    done = client.submit("tests.e2e.tasks:add", 1, 2)
    done.wait(timeout=30)
    refused = [
        (["pause", done.id], "is succeeded: only waiting tasks can be paused"),
        (["pause", "NOPE"], "no task 'NOPE'"),
        (["pause", "--label", "x=1", "--state", "running"], "only waiting tasks"),
        (["resume", "--since", "yesterday"], "--since"),
        (["pause", "--tenant", "t", "--function", "m:f"], "add a task filter"),
    ]
    for args, message in refused:
        cli = daemon.cli(*args)
        assert cli.returncode == 2, (args, cli.stdout)
        assert message in cli.stderr, (args, cli.stderr)
    assert client.status(waiting.id).paused is True
    assert daemon.cli("resume", "--prefix", waiting.id[:20]).stdout.strip() == "resumed 1 task"
    assert client.status(waiting.id).paused is False


def test_each_failed_attempt_is_kept_and_shown_after_success(make_daemon) -> None:
    daemon = make_daemon(FAST_RETRY).start()
    client = daemon.client()
    handle = client.submit("tests.e2e.tasks:fail_before", 3, retries=3)
    done = handle.wait(timeout=30)
    assert (done.state.value, done.attempts, done.error) == ("succeeded", 3, None)
    assert [(e["attempt"], e["type"], e["message"]) for e in done.errors] == [
        (1, "ValueError", "attempt 1 is too early"),
        (2, "ValueError", "attempt 2 is too early"),
    ]
    first, second = done.errors
    assert first["started_at"] <= first["finished_at"] <= second["started_at"]
    assert daemon.stop() == 0
    daemon.start()
    shown = daemon.cli("status", handle.id)
    assert shown.returncode == 0, shown.stderr
    assert "attempt 1" in shown.stdout
    assert "attempt 2 is too early" in shown.stdout
    as_json = json.loads(daemon.cli("status", "--json", handle.id).stdout)
    assert [e["attempt"] for e in as_json["errors"]] == [1, 2]
    assert as_json["errors"][0]["finished_at"].endswith("Z")


def test_a_dead_lettered_task_keeps_every_attempt_through_a_retry(make_daemon) -> None:
    daemon = make_daemon(FAST_RETRY).start()
    client = daemon.client()
    handle = client.submit("tests.e2e.tasks:fail_before", 4, retries=1)
    failed = handle.wait(timeout=30)
    assert (failed.state.value, [e["attempt"] for e in failed.errors]) == ("failed", [1, 2])
    assert failed.error is not None
    assert failed.error["traceback"]
    assert client.retry(task_id=handle.id) == 1
    poll(lambda: client.status(handle.id).state.value == "failed")
    again = client.status(handle.id)
    assert (again.attempts, [e["attempt"] for e in again.errors]) == (3, [1, 2, 3])
