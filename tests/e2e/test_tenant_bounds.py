"""Per-tenant bounds end to end: payload bytes waiting, queue names, cron entries, labels in
``max_payload``. A request over a bound gets a clear error; other tenants are unaffected."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from asynctask.errors import SubmitThrottled, UsageError
from tests.e2e.conftest import poll

ADD = "tests.e2e.tasks:add"


def _tenant_row(daemon, tenant: str) -> dict:
    (row,) = [t for t in daemon.client().queues()["tenants"] if t["tenant"] == tenant]
    return row


def test_payload_bytes_waiting_are_bounded_per_tenant(make_daemon) -> None:
    daemon = make_daemon('[tenants.big]\nmax_backlog_bytes = "2K"\n').start()
    big = daemon.client(tenant="big")
    big.pause(tenant="big")
    held = big.submit_many({"func": ADD, "args": ["x" * 500, "y"]} for _ in range(3))
    with pytest.raises(SubmitThrottled) as refused:
        big.submit(ADD, "x" * 600, "y")
    assert "max_backlog_bytes" in refused.value.message
    assert refused.value.retry_after >= 1
    cli = daemon.cli("submit", ADD, json.dumps(["x" * 600, "y"]), "--tenant", "big")
    assert cli.returncode == 2
    assert "throttled" in cli.stderr
    row = _tenant_row(daemon, "big")
    assert row["refused"] == 2
    assert 1500 < row["backlog_bytes"] <= 2048
    assert row["max_backlog_bytes"] == 2048
    # another tenant, under the default bound, is unaffected
    assert daemon.client(tenant="calm").submit(ADD, "x" * 5000, "y").result(20) == "x" * 5000 + "y"
    # the bytes are released as the tasks run
    big.resume(tenant="big")
    for handle in held:
        assert handle.result(20) == "x" * 500 + "y"
    poll(lambda: _tenant_row(daemon, "big")["backlog_bytes"] == 0)
    assert big.submit(ADD, "x" * 600, "y").result(20) == "x" * 600 + "y"


def test_concurrent_submits_stop_at_max_backlog_bytes(make_daemon) -> None:
    """Admitted submits count while they are being stored, so concurrent ones cannot all
    pass the bound (without that, 40 of these 40 tasks were accepted where 20 fit)."""
    daemon = make_daemon('[tenants.big]\nmax_backlog_bytes = "20K"\n').start()
    clients = [daemon.client(tenant="big") for _ in range(8)]
    clients[0].pause(tenant="big")

    def submit(index: int) -> int:
        try:
            clients[index].submit_many({"func": ADD, "args": ["x" * 1000, "y"]} for _ in range(5))
        except SubmitThrottled:
            return 0
        return 5

    with ThreadPoolExecutor(8) as pool:
        accepted = sum(pool.map(submit, range(8)))
    assert accepted == 20  # 4 submits of 5 tasks of about 1,008 bytes fit in 20K, 5 do not
    row = _tenant_row(daemon, "big")
    assert row["backlog"] == accepted
    assert row["backlog_bytes"] <= 20 * 1024


def test_a_new_queue_past_max_queues_is_refused(make_daemon) -> None:
    daemon = make_daemon("[tenants.many]\nmax_queues = 2\n").start()
    many = daemon.client(tenant="many")
    assert many.submit(ADD, 1, 1, queue="a").result(20) == 2
    assert many.submit(ADD, 1, 2, queue="b").result(20) == 3
    with pytest.raises(UsageError) as refused:
        many.submit(ADD, 1, 3, queue="c")
    assert "max_queues" in refused.value.message
    cli = daemon.cli("submit", ADD, "[1, 3]", "--tenant", "many", "--queue", "c")
    assert cli.returncode == 2
    assert "max_queues" in cli.stderr
    assert many.submit(ADD, 1, 4, queue="a").result(20) == 5  # a known queue is fine
    assert daemon.client(tenant="other").submit(ADD, 1, 5, queue="c").result(20) == 6
    assert {q["queue"] for q in many.queues()["queues"] if q["tenant"] == "many"} == {"a", "b"}


def test_cron_add_past_max_cron_is_refused(make_daemon) -> None:
    daemon = make_daemon('[tenants."*"]\nmax_cron = 2\n').start()
    client = daemon.client()
    client.cron_add("one", "0 3 * * *", ADD, 1, 1)
    client.cron_add("two", "0 4 * * *", ADD, 1, 1)
    cli = daemon.cli("cron", "add", "three", "0 5 * * *", ADD, "[1, 1]")
    assert cli.returncode == 2, cli.stderr
    assert "max_cron" in cli.stderr
    client.cron_add("two", "0 6 * * *", ADD, 2, 2)  # replacing an entry is not a new one
    names = [e["name"] for e in json.loads(daemon.cli("cron", "list", "--json").stdout)]
    assert names == ["one", "two"]
    daemon.client(tenant="other").cron_add("three", "0 5 * * *", ADD, 1, 1)  # unaffected
    assert daemon.cli("cron", "remove", "one").returncode == 0
    assert client.cron_add("three", "0 5 * * *", ADD, 1, 1)["name"] == "three"


def test_concurrent_cron_adds_stop_at_max_cron(make_daemon) -> None:
    daemon = make_daemon('[tenants."*"]\nmax_cron = 3\n').start()
    clients = [daemon.client() for _ in range(8)]

    def add(index: int) -> str:
        try:
            clients[index].cron_add(f"e{index}", "0 3 * * *", ADD, 1, 1)
        except UsageError as exc:
            return exc.message
        return "added"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(add, range(8)))
    assert outcomes.count("added") == 3
    assert all("max_cron" in outcome for outcome in outcomes if outcome != "added")
    assert len(clients[0].cron_list()) == 3


def test_labels_count_toward_max_payload(make_daemon) -> None:
    daemon = make_daemon('[daemon]\nmax_payload = "1K"\n').start()
    client = daemon.client()
    with pytest.raises(UsageError) as refused:
        client.submit(ADD, 1, 1, labels={"note": "v" * 1000, "more": "w" * 100})
    assert "labels (1108 bytes)" in refused.value.message
    assert "max_payload" in refused.value.message
    assert client.submit(ADD, 1, 1, labels={"note": "v" * 500}).result(20) == 2


def test_history_max_counts_each_tenants_own_finished_tasks(make_daemon) -> None:
    """A flood of one tenant's finished tasks evicts its own oldest, never another's."""
    daemon = make_daemon("[daemon]\nhistory_days = 0\nhistory_max = 3\n").start()
    quiet = daemon.client(tenant="quiet")
    kept = [quiet.submit(ADD, n, 0, task_id=f"q-{n}") for n in range(2)]
    for handle in kept:
        handle.wait(timeout=30)
    flood = daemon.client(tenant="flood")
    handles = flood.submit_many({"func": ADD, "args": [n, 0], "task_id": f"f-{n:02d}"}
                                for n in range(10))  # fmt: skip
    for handle in handles:
        handle.wait(timeout=30)
    # the pass at start-up already ran; the next is a minute away, so restart to run one now
    assert daemon.stop() == 0
    daemon.start()
    flood = daemon.client(tenant="flood")
    newest = ["f-09", "f-08", "f-07"]
    poll(lambda: [t.id for t in flood.list(tenant="flood", limit=100)] == newest, timeout=20)
    quiet = daemon.client(tenant="quiet")
    assert sorted(t.id for t in quiet.list(tenant="quiet", limit=100)) == ["q-0", "q-1"]
