"""retry: failed tasks (the dead-letter queue) run again, attempt count continuing."""

from __future__ import annotations

import json
from pathlib import Path


def test_retrying_a_failed_task_by_id_continues_its_attempts(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    flag = tmp_path / "down"
    flag.write_text("1")
    handle = client.submit("tests.e2e.tasks:fail_while", str(flag), retries=1)
    failed = handle.wait(timeout=30)
    assert (failed.state.value, failed.attempts) == ("failed", 2)
    flag.unlink()
    cli = daemon.cli("retry", handle.id)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == "retried 1 task"
    done = client.wait(handle.id, timeout=30)
    assert (done.state.value, done.attempts) == ("succeeded", 3)
    assert client.result(handle.id, timeout=5) == 3  # the worker saw attempt 3
    again = daemon.cli("retry", handle.id)  # it has not failed now
    assert again.returncode == 2
    assert "only failed tasks can be retried" in again.stderr


def test_retry_by_selector_is_one_transaction_and_survives_a_restart(
    make_daemon, tmp_path: Path
) -> None:
    daemon = make_daemon().start()
    client = daemon.client(tenant="acme")
    flag = tmp_path / "down"
    flag.write_text("1")
    batch = client.submit_many(
        {"func": "tests.e2e.tasks:fail_while", "args": [str(flag)], "retries": 0,
         "labels": {"batch": "n"}}
        for _ in range(30)
    )  # fmt: skip
    other = client.submit("tests.e2e.tasks:fail_while", str(flag), retries=0)
    for handle in [*batch, other]:
        assert handle.wait(timeout=30).state.value == "failed"
    client.pause(tenant="acme")
    before = client.ping()["store"]["transactions"]
    assert client.retry(labels={"batch": "n"}) == 30
    assert client.ping()["store"]["transactions"] == before + 1
    assert daemon.stop() == 0
    daemon.start()
    client = daemon.client(tenant="acme")
    assert {client.status(h.id).state.value for h in batch} == {"queued"}
    assert client.status(other.id).state.value == "failed"  # not selected
    flag.unlink()
    client.resume(tenant="acme")
    for handle in batch:
        status = client.wait(handle.id, timeout=30)
        assert (status.state.value, status.attempts) == ("succeeded", 2)


def test_bad_retry_requests_change_nothing(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    done = client.submit("tests.e2e.tasks:add", 1, 1)
    assert done.result(timeout=20) == 2
    for args, message in [
        ((), "needs a task ID or a selector"),
        (("01J0000000000000000000NOPE",), "no task"),
        (("--since", "yesterday"), "--since"),
        (("--tenant", "bad name!"), "tenant"),
    ]:
        cli = daemon.cli("retry", *args)
        assert cli.returncode == 2, (args, cli.stdout, cli.stderr)
        assert message in cli.stderr, (args, cli.stderr)
    cli = daemon.cli("retry", "--tenant", "default", "--json")
    assert json.loads(cli.stdout) == {"retried": 0}  # nothing has failed
    unchanged = client.status(done.id)
    assert (unchanged.state.value, unchanged.attempts) == ("succeeded", 1)
