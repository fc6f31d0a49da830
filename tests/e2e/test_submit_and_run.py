"""Submit over the real socket, run in real workers, read results back."""

from __future__ import annotations

import json
import threading

import pytest

from asynctask.client import AsyncClient
from asynctask.errors import NotFound, TaskNotSucceeded, UsageError, WaitTimeout
from tests.e2e.conftest import DaemonProcess, poll


def test_submit_wait_result(daemon: DaemonProcess) -> None:
    client = daemon.client()
    handle = client.submit("tests.e2e.tasks:add", 2, 3)
    assert handle.result(timeout=20) == 5
    status = handle.status()
    assert status.state.value == "succeeded"
    assert status.attempts == 1
    assert status.created_at <= status.started_at <= status.finished_at


def test_async_function_kwargs_and_context(daemon: DaemonProcess) -> None:
    client = daemon.client(tenant="acme")
    assert client.submit("tests.e2e.tasks:async_add", 1, kwargs={"b": 41}).result(timeout=20) == 42
    echoed = client.submit("tests.e2e.tasks:echo", 1, "two", [3], kwargs={"k": {"n": None}})
    assert echoed.result(timeout=20) == {"args": [1, "two", [3]], "kwargs": {"k": {"n": None}}}
    ctx = client.submit("tests.e2e.tasks:whoami", task_id="ctx-1", labels={"team": "x"})
    assert ctx.result(timeout=20) == {
        "id": "ctx-1",
        "tenant": "acme",
        "attempt": 1,
        "labels": {"team": "x"},
    }


def test_submit_many_is_one_request_and_all_run(daemon: DaemonProcess) -> None:
    client = daemon.client()
    handles = client.submit_many(
        {"func": "tests.e2e.tasks:add", "args": [i, i]} for i in range(200)
    )
    assert len({h.id for h in handles}) == 200
    assert [h.result(timeout=30) for h in handles] == [2 * i for i in range(200)]


def test_exception_is_retried_then_failed_with_details(daemon: DaemonProcess) -> None:
    client = daemon.client()
    handle = client.submit("tests.e2e.tasks:boom", "bad input", retries=1)
    with pytest.raises(TaskNotSucceeded) as caught:
        handle.result(timeout=30)
    status = caught.value.task
    assert status.state.value == "failed"
    assert status.attempts == 2
    assert status.error["type"] == "ValueError"
    assert status.error["message"] == "bad input"
    assert "boom" in status.error["traceback"]


def test_fail_is_not_retried(daemon: DaemonProcess) -> None:
    status = daemon.client().submit("tests.e2e.tasks:give_up", "nope").wait(timeout=20)
    assert (status.state.value, status.attempts, status.error["kind"]) == ("failed", 1, "fail")


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("tests.e2e.no_such_module:fn", "no_such_module"),
        ("tests.e2e.tasks:no_such_function", "no_such_function"),
    ],
)
def test_unknown_function_fails_the_task_not_the_daemon(
    daemon: DaemonProcess, function: str, message: str
) -> None:
    client = daemon.client()
    status = client.submit(function).wait(timeout=20)
    assert status.state.value == "failed"
    assert status.error["kind"] == "import"
    assert message in status.error["message"]
    assert status.attempts == 1
    assert client.submit("tests.e2e.tasks:add", 1, 1).result(timeout=20) == 2


def test_unpackable_result_fails_cleanly(daemon: DaemonProcess) -> None:
    status = daemon.client().submit("tests.e2e.tasks:unpackable").wait(timeout=20)
    assert status.state.value == "failed"
    assert status.error["kind"] == "bad_result"


def test_bad_requests_change_nothing(daemon: DaemonProcess) -> None:
    client = daemon.client()
    with pytest.raises(UsageError, match="msgpack"):
        client.submit("tests.e2e.tasks:add", object())
    with pytest.raises(UsageError, match=r"package\.module:function"):
        client.submit("not a function")
    with pytest.raises(UsageError, match="priority"):
        client.submit("tests.e2e.tasks:add", 1, 2, priority=12)
    with pytest.raises(UsageError, match="more than the limit"):
        client.submit("tests.e2e.tasks:echo", "x" * (2 * 1024 * 1024))
    with pytest.raises(UsageError, match="task 1"):
        client.submit_many(
            [{"func": "tests.e2e.tasks:add", "args": [1, 2]}, {"func": "bad", "args": []}]
        )
    assert client.list() == []


def test_unknown_id_is_not_found_and_wait_times_out(daemon: DaemonProcess) -> None:
    client = daemon.client()
    with pytest.raises(NotFound):
        client.status("missing")
    handle = client.submit("tests.e2e.tasks:sleep", 3)
    with pytest.raises(WaitTimeout):
        handle.wait(timeout=0.2)
    with pytest.raises(NotFound):
        daemon.client(tenant="other").status(handle.id)


def test_dedup_by_id_returns_the_existing_task(daemon: DaemonProcess, tmp_path) -> None:
    client = daemon.client()
    marker = tmp_path / "runs"
    first = client.submit("tests.e2e.tasks:touch", str(marker), task_id="once")
    assert first.result(timeout=20) == str(marker)
    again = client.submit_status("tests.e2e.tasks:touch", str(marker), task_id="once")
    assert again.state.value == "succeeded"
    assert marker.read_text() == "1\n"
    failed = client.submit("tests.e2e.tasks:give_up", "x", task_id="retry-me").wait(timeout=20)
    assert failed.state.value == "failed"
    rerun = client.submit("tests.e2e.tasks:add", 1, 2, task_id="retry-me")
    assert rerun.result(timeout=20) == 3


def test_concurrent_duplicate_submits_make_one_task(daemon: DaemonProcess, tmp_path) -> None:
    marker = tmp_path / "runs"
    ids: list[str] = []

    def submit() -> None:
        client = daemon.client()
        status = client.submit_status("tests.e2e.tasks:touch", str(marker), task_id="dup")
        ids.append(status.id)

    threads = [threading.Thread(target=submit) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ids == ["dup"] * 50
    daemon.client().wait("dup", timeout=20)
    assert marker.read_text() == "1\n"
    assert daemon.stop() == 0
    daemon.start()  # the ID is remembered across a restart: the same task, not a new run
    again = daemon.client().submit_status("tests.e2e.tasks:touch", str(marker), task_id="dup")
    assert (again.state.value, again.attempts) == ("succeeded", 1)
    assert marker.read_text() == "1\n"


async def test_async_client_pipelines(daemon: DaemonProcess) -> None:
    import asyncio

    async with AsyncClient(daemon.socket) as client:
        handles = await asyncio.gather(
            *(client.submit("tests.e2e.tasks:add", i, 1) for i in range(50))
        )
        results = await asyncio.gather(*(h.result(timeout=30) for h in handles))
    assert results == [i + 1 for i in range(50)]


def test_group_commit_batches_concurrent_submits(daemon: DaemonProcess) -> None:
    before = daemon.client().ping()["store"]["transactions"]

    def producer() -> None:
        client = daemon.client()
        for i in range(100):
            client.submit("tests.e2e.tasks:add", i, 0)

    threads = [threading.Thread(target=producer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    poll(lambda: len(daemon.client().list(state="succeeded", limit=1000)) == 800, timeout=60)
    transactions = daemon.client().ping()["store"]["transactions"] - before
    # 800 submits, 800 running marks and 800 results: 2,400 writes in far fewer commits.
    assert transactions < 1200, transactions


def test_list_filters(daemon: DaemonProcess) -> None:
    client = daemon.client()
    a = client.submit("tests.e2e.tasks:add", 1, 1, labels={"batch": "a"}, task_id="job-a")
    b = client.submit("tests.e2e.tasks:boom", "x", retries=0, task_id="job-b")
    daemon.client(tenant="acme").submit("tests.e2e.tasks:add", 2, 2, task_id="acme-1").wait(20)
    a.wait(20)
    b.wait(20)
    assert [t.id for t in client.list(state="failed")] == ["job-b"]
    assert [t.id for t in client.list(labels={"batch": "a"})] == ["job-a"]
    assert [t.id for t in client.list(prefix="job-")] == ["job-b", "job-a"]
    assert [t.id for t in client.list(tenant="acme")] == ["acme-1"]
    assert len(client.list()) == 3
    assert len(client.list(limit=2)) == 2


def test_cli_round_trip_and_exit_codes(daemon: DaemonProcess) -> None:
    done = daemon.cli("submit", "tests.e2e.tasks:add", "[20, 22]", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    task = json.loads(done.stdout)
    assert task["state"] == "succeeded"
    assert task["result"] == 42
    for key in (
        "id",
        "tenant",
        "queue",
        "function",
        "priority",
        "attempts",
        "error",
        "labels",
        "created_at",
        "started_at",
        "finished_at",
    ):
        assert key in task
    assert task["created_at"].endswith("Z")
    assert daemon.cli("result", task["id"]).stdout.strip() == "42"
    failing = daemon.cli("submit", "tests.e2e.tasks:give_up", '["no"]', "--wait")
    assert failing.returncode == 1
    assert daemon.cli("status", "missing-id").returncode == 2
    slow = daemon.cli("submit", "tests.e2e.tasks:sleep", "[5]").stdout.strip()
    assert daemon.cli("wait", slow, "--timeout", "100ms").returncode == 4
    bad = daemon.cli("submit", "tests.e2e.tasks:add", "[1,")
    assert bad.returncode == 2
    assert "not valid JSON" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert daemon.cli("submit", "tests.e2e.tasks:add", "--delay", "soon").returncode == 2
    listed = json.loads(daemon.cli("list", "--json", "--state", "succeeded").stdout)
    assert [t["id"] for t in listed] == [task["id"]]
    assert daemon.cli("ping").returncode == 0


def test_cli_without_daemon_exits_3(make_daemon) -> None:
    absent = make_daemon()
    result = absent.cli("ping")
    assert result.returncode == 3
    assert "no daemon" in result.stderr
    assert "Traceback" not in result.stderr


def test_non_retryable_exceptions_end_the_task_at_once(daemon: DaemonProcess) -> None:
    from tests.e2e import tasks

    client = daemon.client()
    missing = client.submit(tasks.lookup, {"a": 1}, "b", retries=5).wait(timeout=30)
    assert (missing.state.value, missing.attempts) == ("failed", 1)
    assert missing.error is not None
    assert (missing.error["kind"], missing.error["type"]) == ("fail", "KeyError")
    transient = client.submit(tasks.lookup, {}, "flaky", retries=2, delay=0).wait(timeout=60)
    assert (transient.state.value, transient.attempts) == ("failed", 3)  # other errors retry
    assert client.submit(tasks.lookup, {"a": 1}, "a").result(timeout=30) == 1


def test_a_task_expires_at_its_deadline_while_it_waits(daemon: DaemonProcess) -> None:
    client = daemon.client(tenant="slow")
    client.pause(tenant="slow")  # it can never start
    handle = client.submit("tests.e2e.tasks:add", 1, 1, ttl="300ms")
    status = handle.wait(timeout=20)  # no resume: the deadline alone ends it
    assert status.state.value == "expired"
    assert status.attempts == 0
    assert status.finished_at is not None
    assert 0.25 <= status.finished_at - status.created_at < 5.0
    queues = daemon.client().queues()["tenants"]
    assert next(t for t in queues if t["tenant"] == "slow")["backlog"] == 0
