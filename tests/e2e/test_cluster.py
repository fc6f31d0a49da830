"""Several real daemons sharing one real PostgreSQL database (docs/scale-out.md).

Each daemon has a home of its own and the same ``[store] url``; each test gets a schema of its
own in the session's private cluster (``tests/pgcluster.py``: Unix socket only, no TCP). The
leases are short (2 s) so that takeovers happen within a test's patience, and every task
writes a ledger line per attempt (``tasks.ledgered``, ``tasks.run_when``) so that a test counts
runs where the daemons' own records could be wrong.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from asynctask.client import Client
from asynctask.core.partitions import partition_of
from asynctask.errors import UsageError
from tests import pgcluster
from tests.e2e.conftest import DaemonProcess, poll

PARTITIONS = 16
TENANTS = [f"tenant-{n:02d}" for n in range(12)]


def _config(url: str, workers: int = 2) -> str:
    return (
        f"[workers]\nmin_workers = {workers}\nmax_workers = {workers}\n"
        '[retry]\nbackoff_base = "10ms"\nretries = 3\n'
        '[daemon]\ndrain = "10s"\n'
        f'[store]\nurl = "{url}"\npartitions = {PARTITIONS}\nlease = "2s"\n'
    )


@pytest.fixture
def pg_url(tmp_path: Path) -> str:
    """A fresh schema's URL (skips the test where PostgreSQL cannot start)."""
    return asyncio.run(pgcluster.url_for(tmp_path))


def _query(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    async def run() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(record) for record in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def _owners(url: str) -> dict[int, str]:
    """Partition -> owner, for the leases that have not run out (by this machine's clock,
    which is every daemon's here)."""
    rows = _query(
        url,
        "SELECT partition, owner FROM partitions WHERE owner IS NOT NULL AND expires_at > $1",
        time.time(),
    )
    return {int(p): str(o) for p, o in rows}  # type: ignore[call-overload]


def _node_of(daemon: DaemonProcess) -> str:
    """The node ID of a daemon (host:pid:random), once its first heartbeat is stored."""
    assert daemon.proc is not None
    prefix = f":{daemon.proc.pid}:"

    def found() -> list[str]:
        rows = [str(node) for (node,) in _query(_url_of(daemon), "SELECT node FROM nodes")]
        return [node for node in rows if prefix in node]

    (node,) = poll(found, timeout=20, interval=0.05)
    return str(node)


def _url_of(daemon: DaemonProcess) -> str:
    assert daemon.config is not None
    line = next(line for line in daemon.config.splitlines() if line.startswith("url = "))
    return line.split('"')[1]


def _start(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path, url: str, count: int
) -> list[DaemonProcess]:
    return [make_daemon(_config(url), home=tmp_path / f"home{n}").start() for n in range(count)]


def _balanced(url: str, daemons: list[DaemonProcess]) -> None:
    """Wait until every partition is held and each daemon holds its fair share."""
    nodes = [_node_of(daemon) for daemon in daemons]
    low, high = PARTITIONS // len(nodes), -(-PARTITIONS // len(nodes))

    def fair() -> bool:
        owners = _owners(url)
        counts = Counter(owners.values())
        return len(owners) == PARTITIONS and all(low <= counts[n] <= high for n in nodes)

    poll(fair, timeout=40, interval=0.1)


def _ledger(path: Path) -> list[tuple[str, int, int]]:
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines() if line]
    return [(task_id, int(attempt), int(pid)) for task_id, attempt, pid in lines]


def test_three_daemons_share_twelve_tenants_and_a_kill9_loses_nothing(
    make_daemon: Callable[..., DaemonProcess], pg_url: str, tmp_path: Path
) -> None:
    daemons = _start(make_daemon, tmp_path, pg_url, 3)
    _balanced(pg_url, daemons)
    ledger = tmp_path / "ledger"
    ledger.touch(mode=0o666)
    submitted: dict[str, str] = {}  # task ID -> tenant
    for n in range(240):  # every daemon takes submits for every tenant
        tenant = TENANTS[n % len(TENANTS)]
        client = daemons[n % 3].client(tenant)
        handle = client.submit("tests.e2e.tasks:ledgered", str(ledger), 0.05, task_id=f"t{n:03d}")
        submitted[handle.id] = tenant
    victim = daemons[1]
    poll(lambda: len(_ledger(ledger)) >= 60, timeout=60, interval=0.05)
    victim_workers = set(victim.worker_pids())
    victim.kill9()

    survivors = daemons[0::2]
    for n, (task_id, tenant) in enumerate(submitted.items()):
        client = survivors[n % 2].client(tenant)  # wait on any daemon, for any tenant
        final = client.wait(task_id, timeout=60)
        assert final.state.value == "succeeded", final
    runs = Counter(task_id for task_id, _, _ in _ledger(ledger))
    assert set(runs) == set(submitted)
    twice = {task_id for task_id, count in runs.items() if count > 1}
    # Only attempts that were running on the dead daemon ran again: at most its 2 workers'.
    assert len(twice) <= 2, twice
    for task_id, _, pid in _ledger(ledger):
        if task_id in twice and pid in victim_workers:
            break
    else:
        assert not twice, f"ran twice, but not first on the killed daemon: {twice}"
    stored = {str(i): int(str(a)) for i, a in _query(pg_url, "SELECT id, attempts FROM tasks")}
    for task_id, count in runs.items():
        # Each run is counted, except an attempt begun on the killed daemon before its
        # "running" write committed: the taker runs it again under the same number
        # (docs/scale-out.md, "Attempt numbers"), so it is one short, and only for those.
        short = count - stored[task_id]
        assert short <= (1 if task_id in twice else 0), (task_id, stored[task_id], count)
    # An attempt the dead daemon had marked running counts even if its worker never began
    # it. Counted or not, the attempts in flight there were at most 2 (its workers).
    interrupted = {task_id for task_id, attempts in stored.items() if attempts != 1}
    assert len(interrupted | twice) <= 2, (interrupted, twice)
    states = _query(pg_url, "SELECT state, count(*) FROM tasks GROUP BY state")
    assert states == [("succeeded", 240)]
    assert _query(pg_url, "SELECT count(*) FROM inbox") == [(0,)]


@pytest.mark.slow  # `make test-slow`: keeps `make test` within its 15 minutes
def test_a_paused_daemon_commits_nothing_for_the_partition_it_lost(
    make_daemon: Callable[..., DaemonProcess], pg_url: str, tmp_path: Path
) -> None:
    first, second = _start(make_daemon, tmp_path, pg_url, 2)
    _balanced(pg_url, [first, second])
    node = _node_of(first)
    owners = _owners(pg_url)
    tenant = next(t for t in TENANTS if owners[partition_of(t, PARTITIONS)] == node)
    partition = partition_of(tenant, PARTITIONS)
    go, ledger = tmp_path / "go", tmp_path / "ledger"
    handle = first.client(tenant).submit("tests.e2e.tasks:run_when", str(go), str(ledger))
    poll(lambda: ledger.exists() and ledger.read_text() == "1\n", timeout=30)
    assert first.proc is not None
    first.proc.send_signal(signal.SIGSTOP)
    try:
        # The lease runs out; the second daemon takes the partition and runs attempt 2.
        poll(lambda: _owners(pg_url).get(partition) == _node_of(second), timeout=30)
        poll(lambda: ledger.read_text() == "1\n2\n", timeout=30)
        go.touch()  # both attempts end now: the paused daemon's worker too
        final = second.client(tenant).wait(handle.id, timeout=30)
        assert (final.state.value, final.result, final.attempts) == ("succeeded", 2, 2)
    finally:
        first.proc.send_signal(signal.SIGCONT)
    # Awake again, the first daemon hears its worker's outcome (attempt 1 succeeded) and
    # tries to store it; the fence refuses it, whatever it still believed.
    poll(lambda: "stopped serving partition" in first.log.read_text(), timeout=30)
    time.sleep(1.0)  # give a late write every chance to land: none may
    stored = _query(pg_url, "SELECT state, attempts, result IS NOT NULL FROM tasks")
    assert stored == [("succeeded", 2, True)]
    assert second.client(tenant).status(handle.id).result == 2
    # And it goes on serving: it takes partitions again and runs new work.
    _balanced(pg_url, [first, second])
    assert first.client(tenant).submit("tests.e2e.tasks:add", 2, 2).result(timeout=30) == 4


@pytest.mark.slow  # `make test-slow`: keeps `make test` within its 15 minutes
def test_a_fourth_daemon_joins_and_no_task_runs_twice(
    make_daemon: Callable[..., DaemonProcess], pg_url: str, tmp_path: Path
) -> None:
    daemons = _start(make_daemon, tmp_path, pg_url, 3)
    _balanced(pg_url, daemons)
    ledger = tmp_path / "ledger"
    ledger.touch(mode=0o666)
    ids: dict[str, str] = {}
    for n in range(300):
        tenant = TENANTS[n % len(TENANTS)]
        handle = (
            daemons[n % 3]
            .client(tenant)
            .submit("tests.e2e.tasks:ledgered", str(ledger), 0.05, task_id=f"j{n:03d}")
        )
        ids[handle.id] = tenant
    poll(lambda: len(_ledger(ledger)) >= 30, timeout=60, interval=0.05)
    fourth = make_daemon(_config(pg_url), home=tmp_path / "home3").start()
    daemons.append(fourth)
    _balanced(pg_url, daemons)
    for task_id, tenant in ids.items():
        final = fourth.client(tenant).wait(task_id, timeout=90)
        assert (final.state.value, final.attempts) == ("succeeded", 1), final
    runs = Counter(task_id for task_id, _, _ in _ledger(ledger))
    assert runs == Counter(dict.fromkeys(ids, 1))
    # The newcomer ran some of them: it took partitions with work still in them.
    assert fourth.proc is not None
    assert "serving" in fourth.log.read_text()


def test_a_clean_stop_hands_partitions_over_at_once(
    make_daemon: Callable[..., DaemonProcess], pg_url: str, tmp_path: Path
) -> None:
    first, second = _start(make_daemon, tmp_path, pg_url, 2)
    _balanced(pg_url, [first, second])
    leaving = _node_of(first)
    listed = json.loads(second.cli("nodes", "--json").stdout)  # any daemon lists them all
    assert listed["cluster"] is True
    assert listed["partitions"] == PARTITIONS
    assert sorted(n["node"] for n in listed["nodes"]) == sorted([leaving, _node_of(second)])
    assert sum(len(n["partitions"]) for n in listed["nodes"]) == PARTITIONS
    assert [n["me"] for n in listed["nodes"] if n["node"] == leaving] == [False]
    assert first.stop() == 0
    assert leaving not in set(_owners(pg_url).values())  # released, not left to lapse
    assert _query(pg_url, "SELECT count(*) FROM nodes WHERE node = $1", leaving) == [(0,)]
    _balanced(pg_url, [second])
    listed = json.loads(second.cli("nodes", "--json").stdout)
    assert [(n["node"], len(n["partitions"])) for n in listed["nodes"]] == [
        (_node_of(second), PARTITIONS)
    ]
    assert listed["unowned"] == []
    client: Client = second.client(TENANTS[0])
    assert client.submit("tests.e2e.tasks:add", 1, 2).result(timeout=30) == 3
    assert os.path.exists(second.socket)


@pytest.mark.slow  # `make test-slow`: keeps `make test` within its 15 minutes
def test_a_function_rate_limit_holds_across_two_daemons(
    make_daemon: Callable[..., DaemonProcess], pg_url: str, tmp_path: Path
) -> None:
    """Each of the two daemons enforces half of the function's rate (docs/scale-out.md,
    "Per-function limits"), so the cluster starts it at the configured rate, within 10 %."""
    limited = '[functions."tests.e2e.tasks:add"]\nrate = "40/s"\nburst = 1\n'
    first, second = (
        make_daemon(_config(pg_url) + limited, home=tmp_path / f"home{n}").start() for n in range(2)
    )
    _balanced(pg_url, [first, second])
    owners = _owners(pg_url)
    nodes = [_node_of(first), _node_of(second)]
    tenants = [f"rated-{n}" for n in range(200)]
    # Three tenants on each daemon, with as many tasks each: both are busy for the whole run.
    chosen = [
        tenant
        for node in nodes
        for tenant in [t for t in tenants if owners[partition_of(t, PARTITIONS)] == node][:3]
    ]
    assert len(chosen) == 6
    handles = []
    for tenant in chosen:
        client = first.client(tenant)
        handles += client.submit_many(
            [{"func": "tests.e2e.tasks:add", "args": (n, 1)} for n in range(60)]
        )
    for handle in handles:
        assert handle.wait(timeout=60).state.value == "succeeded"
    starts = sorted(float(str(at)) for (at,) in _query(pg_url, "SELECT started_at FROM tasks"))
    assert len(starts) == 360
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 36.0 <= rate <= 44.0, rate


@pytest.mark.slow  # `make test-slow`: keeps `make test` within its 15 minutes
def test_cron_added_on_any_daemon_fires_once_per_slot_and_survives_its_owner(
    make_daemon: Callable[..., DaemonProcess], pg_url: str, tmp_path: Path
) -> None:
    first, second = _start(make_daemon, tmp_path, pg_url, 2)
    _balanced(pg_url, [first, second])
    owner_node = _owners(pg_url)[partition_of("default", PARTITIONS)]
    owner, other = (first, second) if _node_of(first) == owner_node else (second, first)
    ledger = tmp_path / "ledger"
    ledger.touch(mode=0o666)
    added = other.cli(  # on the daemon that does not serve the tenant: its owner follows
        "cron", "add", "tick", "* * * * * *", "tests.e2e.tasks:ledgered",
        json.dumps([str(ledger), 0.0]),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    poll(lambda: len(_ledger(ledger)) >= 3, timeout=30, interval=0.1)
    for daemon in (first, second):  # listed on both
        listed = json.loads(daemon.cli("cron", "list", "--json").stdout)
        assert [entry["name"] for entry in listed] == ["tick"]
    owner.kill9()  # the survivor takes the partition, and the entry with it
    before = len(_ledger(ledger))
    poll(lambda: len(_ledger(ledger)) >= before + 3, timeout=30, interval=0.1)
    # No slot fired twice: each (slot, attempt) ran once. An attempt the kill -9 cut short
    # may run again as the slot's next attempt (at-least-once; the interrupted one counts).
    runs = [(task_id, attempt) for task_id, attempt, _ in _ledger(ledger)]
    assert len(runs) == len(set(runs)), runs
    assert other.cli("cron", "remove", "tick").returncode == 0
    time.sleep(1.5)  # a slot in flight may still land
    settled = len(_ledger(ledger))
    time.sleep(2.0)
    assert len(_ledger(ledger)) == settled


def test_control_requests_for_a_tenant_served_elsewhere(
    make_daemon: Callable[..., DaemonProcess], pg_url: str, tmp_path: Path
) -> None:
    """A pause and a retry work from any daemon (stored, and followed by the owner); a
    cancel of a live task another daemon serves is refused with that daemon's name."""
    first, second = _start(make_daemon, tmp_path, pg_url, 2)
    _balanced(pg_url, [first, second])
    owners = _owners(pg_url)
    other_node = _node_of(second)
    tenant = next(t for t in TENANTS if owners[partition_of(t, PARTITIONS)] == other_node)
    here = first.client(tenant)  # the daemon that does not serve the tenant

    later = here.submit("tests.e2e.tasks:add", 1, 1, delay=60)
    with pytest.raises(UsageError, match=f"the daemon serving its tenant, {other_node}"):
        here.cancel(task_id=later.id)
    assert second.client(tenant).cancel(task_id=later.id) == 1
    assert here.status(later.id).state.value == "cancelled"

    flag = tmp_path / "down"
    flag.touch()
    broken = here.submit("tests.e2e.tasks:fail_while", str(flag), retries=0)
    assert broken.wait(timeout=30).state.value == "failed"
    flag.unlink()
    assert here.retry(task_id=broken.id) == 1  # the owner takes it from the inbox
    final = here.wait(broken.id, timeout=30)
    assert (final.state.value, final.result, final.attempts) == ("succeeded", 2, 2)

    assert here.pause(tenant=tenant) == 1  # stored; the owner follows within a heartbeat
    time.sleep(1.5)
    held = here.submit("tests.e2e.tasks:add", 2, 2)
    time.sleep(1.0)
    assert here.status(held.id).state.value == "queued"
    assert here.resume(tenant=tenant) == 1
    assert held.result(timeout=30) == 4
