"""Tasks are clients of their own tenant (README, "Security model"; issue 13).

A task runs as the daemon's uid, which is an admin on the socket; these tests submit real tasks
for tenant ``a`` that use ``asynctask.Client`` against the daemon running them and check that
they can act only for ``a``: tenant ``b``'s IDs are "not found" and admin operations are
refused, for the task and for the processes it starts (a child, an orphaned grandchild).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asynctask.errors import Unauthorized
from asynctask.executor.cgroups import detect_cgroups, sweep_stale
from asynctask.server.auth import AuthPolicy, Principal
from asynctask.server.ops import OPS, Ops
from tests.e2e.conftest import DaemonProcess, poll

PROBE = "tests.security.tasks_clients:probe"
TASKS = "tests.security.tasks_clients"
CONFIG = "[workers]\nmin_workers = 3\nmax_workers = 4\n"


class Tenants:
    """A daemon with tasks of tenant ``b`` for tenant ``a``'s tasks to go after."""

    def __init__(self, daemon: DaemonProcess, release: Path) -> None:
        self.daemon = daemon
        self.release = release
        b = daemon.client("b")
        self.b_done = b.submit(f"{TASKS}:say", "secret of b").id
        self.b_running = b.submit(f"{TASKS}:wait_for", str(release)).id
        self.b_scheduled = b.submit(f"{TASKS}:say", "later", delay=3600).id
        self.a_done = daemon.client("a").submit(f"{TASKS}:say", "mine").id
        assert b.result(self.b_done, timeout=30) == "secret of b"
        assert daemon.client("a").result(self.a_done, timeout=30) == "mine"
        poll(lambda: b.status(self.b_running).state.value == "running")

    def as_task(self, action: str, arg: Any = None, client_tenant: str | None = None) -> Any:
        """What a tenant-``a`` task got when it made one request (as ``client_tenant``)."""
        socket = str(self.daemon.socket)
        handle = self.daemon.client("a").submit(PROBE, socket, action, arg, client_tenant)
        return handle.result(timeout=30)


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    home = tmp_path_factory.mktemp("task-clients")
    daemon = DaemonProcess(home / "home", CONFIG).start()
    try:
        yield Tenants(daemon, home / "release")
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(10)
        sweep_stale(detect_cgroups())  # the groups of workers the kill -9 above left behind


@pytest.fixture
def own_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path / "home")
    try:
        yield daemon
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(10)
        sweep_stale(detect_cgroups())


def _like_unknown(answer: dict[str, Any], unknown: dict[str, Any], task_id: str) -> None:
    """``answer`` is the very answer an ID that does not exist gets."""
    if "error" in unknown:
        assert answer.get("error") == unknown["error"], (answer, unknown)
        assert answer["message"] == unknown["message"].replace("no-such-task", task_id)
    else:
        assert answer == unknown


def _not_found_like(answer: dict[str, Any], unknown: dict[str, Any], task_id: str) -> None:
    """``answer`` is "not found", as for an ID that does not exist."""
    assert unknown.get("error") == "NotFound", unknown
    _like_unknown(answer, unknown, task_id)


# -- admin operations ------------------------------------------------------------------------


def test_a_task_cannot_stop_the_daemon(own_daemon: DaemonProcess) -> None:
    daemon = own_daemon.start()
    handle = daemon.client("a").submit(PROBE, str(daemon.socket), "stop")
    answer = handle.result(timeout=30)
    assert answer.get("error") == "Unauthorized", answer
    assert "admin" in answer["message"]
    assert daemon.proc is not None
    assert daemon.proc.poll() is None
    assert daemon.client().ping()["accepting"]
    assert daemon.client("a").submit("tests.e2e.tasks:add", 2, 3).result(timeout=30) == 5


@pytest.mark.parametrize("action", ["metrics", "pause_function", "reload"])
def test_admin_operations_are_refused(tenants: Tenants, action: str) -> None:
    answer = tenants.as_task(action)
    assert answer.get("error") == "Unauthorized", answer


# -- what a task sees -------------------------------------------------------------------------


def test_list_without_tenant_shows_only_the_own_tenant(tenants: Tenants) -> None:
    answer = tenants.as_task("list")
    seen = answer["ok"]
    assert {tenant for tenant, _ in seen} == {"a"}, seen
    assert ["a", tenants.a_done] in seen
    assert tenants.as_task("list_tenant", "b")["error"] == "Unauthorized"
    assert ["a", tenants.a_done] in tenants.as_task("list_tenant", "a")["ok"]


@pytest.mark.parametrize("action", ["status", "result", "logs", "inspect"])
def test_another_tenants_id_is_not_found(tenants: Tenants, action: str) -> None:
    for task_id in (tenants.b_done, tenants.b_running):
        for client_tenant in ("b", "a"):
            unknown = tenants.as_task(action, "no-such-task", client_tenant)
            answer = tenants.as_task(action, task_id, client_tenant)
            _not_found_like(answer, unknown, task_id)


def test_the_command_line_in_a_task(tenants: Tenants) -> None:
    def run(*args: str) -> list[Any]:
        handle = tenants.daemon.client("a").submit(
            f"{TASKS}:cli", str(tenants.daemon.socket), *args
        )
        return list(handle.result(timeout=60))

    code, unknown = run("status", "no-such-task", "--tenant", "b")
    assert (code, run("status", tenants.b_done, "--tenant", "b")) == (
        2,
        [2, unknown.replace("no-such-task", tenants.b_done)],
    )
    code, message = run("stop")
    assert code == 2, message
    assert "admin" in message
    code, message = run("metrics")
    assert code == 2, message
    assert tenants.daemon.client().ping()["accepting"]


@pytest.mark.parametrize("action", ["queues", "stats"])
def test_queues_and_stats_show_only_the_own_tenant(tenants: Tenants, action: str) -> None:
    admin = tenants.daemon.client()
    everything = admin.queues() if action == "queues" else admin.stats()
    assert {row["tenant"] for row in everything["tenants"]} == {"a", "b"}
    answer = tenants.as_task(action)
    assert answer.get("ok", {}).get("tenants") == ["a"], answer
    assert answer["ok"]["queues"] == ["a"], answer
    assert f"{TASKS}:wait_for" not in answer["ok"]["functions"], answer


# -- acting on another tenant's tasks ---------------------------------------------------------


def test_cancel_of_another_tenants_task_is_not_found(tenants: Tenants) -> None:
    for client_tenant in ("b", "a"):
        unknown = tenants.as_task("cancel", "no-such-task", client_tenant)
        answer = tenants.as_task("cancel", tenants.b_running, client_tenant)
        _not_found_like(answer, unknown, tenants.b_running)
    assert tenants.as_task("cancel_tenant", "b", "b").get("error") == "Unauthorized"
    b = tenants.daemon.client("b")
    assert b.status(tenants.b_running).state.value == "running"
    tenants.release.touch()
    assert b.result(tenants.b_running, timeout=30) == "done"


def test_pause_of_another_tenants_task_is_not_found(tenants: Tenants) -> None:
    unknown = tenants.as_task("pause", "no-such-task", "b")
    answer = tenants.as_task("pause", tenants.b_scheduled, "b")
    _not_found_like(answer, unknown, tenants.b_scheduled)
    assert tenants.as_task("pause_tenant", "b", "b")["error"] == "Unauthorized"
    status = tenants.daemon.client("b").status(tenants.b_scheduled)
    assert (status.state.value, status.paused) == ("scheduled", False)
    assert all(not row["paused"] for row in tenants.daemon.client().queues()["tenants"])


def test_submit_only_for_the_own_tenant(tenants: Tenants) -> None:
    refused = tenants.as_task("submit", None, "b")
    assert refused.get("error") == "Unauthorized", refused
    assert "'b'" in refused["message"]
    assert [t.id for t in tenants.daemon.client("b").list(function="tests.e2e.tasks:add")] == []
    assert tenants.as_task("submit_and_status")["ok"] == 3
    own = tenants.as_task("submit")["ok"]
    assert tenants.as_task("status", own)["ok"] in {"queued", "running", "succeeded"}
    assert tenants.daemon.client("a").result(own, timeout=30) == 3
    assert tenants.as_task("ping")["ok"] == tenants.daemon.proc.pid  # type: ignore[union-attr]


# -- the task's own processes ----------------------------------------------------------------


def _check_descendant(answer: dict[str, Any], tenants: Tenants) -> None:
    assert {tenant for tenant, _ in answer["list"]["ok"]} == {"a"}, answer
    assert ["a", tenants.a_done] in answer["own_tenant"]["ok"]
    assert answer["metrics"]["error"] == "Unauthorized", answer


def test_a_tasks_child_process_acts_for_the_same_tenant(tenants: Tenants) -> None:
    socket = str(tenants.daemon.socket)
    answer = tenants.daemon.client("a").submit(f"{TASKS}:descendant", socket, "child")
    _check_descendant(answer.result(timeout=60), tenants)


def test_an_orphaned_grandchild_acts_for_the_same_tenant(tenants: Tenants) -> None:
    socket = str(tenants.daemon.socket)
    answer = tenants.daemon.client("a").submit(f"{TASKS}:descendant", socket, "orphan")
    answer = answer.result(timeout=60)
    assert answer["reparented"]
    _check_descendant(answer, tenants)


def test_a_grandchild_in_its_own_session_acts_for_the_same_tenant(tenants: Tenants) -> None:
    socket = str(tenants.daemon.socket)
    answer = tenants.daemon.client("a").submit(f"{TASKS}:descendant", socket, "orphan_setsid")
    answer = answer.result(timeout=60)
    assert answer["reparented"]
    _check_descendant(answer, tenants)


# -- the policy itself --------------------------------------------------------------------------


class _Backend:
    """Every op answers; a refusal must come from ``Ops`` before the backend is reached."""

    def __getattr__(self, name: str) -> Any:
        def answer(*_: Any, **__: Any) -> Any:
            raise AssertionError(f"the backend was reached: {name}")

        return answer


def test_a_worker_that_has_run_nothing_may_do_nothing() -> None:
    uid = os.getuid()
    ops = Ops(_Backend(), AuthPolicy((uid,), {}), 1 << 20)  # type: ignore[arg-type]
    worker = Principal(uid=uid, pid=1234, is_worker=True, worker_tenant=None)
    for op in OPS:
        with pytest.raises(Unauthorized):
            ops(worker, op, {"op": op, "id": "x", "tenant": "default", "tasks": []})


def test_a_worker_is_never_an_admin_whatever_its_uid() -> None:
    uid = os.getuid()
    policy = AuthPolicy((uid,), {uid: frozenset({"b"})})
    worker = Principal(uid=uid, pid=1234, is_worker=True, worker_tenant="a")
    assert not policy.is_admin(worker)
    assert policy.tenants_of(worker) == frozenset({"a"})
    with pytest.raises(Unauthorized):
        policy.check(worker, "b")
    policy.check(worker, "a")
    user = Principal(uid=uid)
    assert policy.is_admin(user)
    assert policy.tenants_of(user) is None


def test_any_user_and_a_task_may_list_the_nodes_as_they_may_ping() -> None:
    """``nodes`` carries daemons' IDs, hosts, pids, partitions and running counts, no tenant's
    name or task: every caller that may ``ping`` may ask it."""

    class Nodes:
        def nodes(self) -> dict[str, Any]:
            return {"cluster": False}

    uid = os.getuid()
    ops = Ops(Nodes(), AuthPolicy((0,), {uid + 1: frozenset({"a"})}), 1 << 20)  # type: ignore[arg-type]
    callers = (
        Principal(uid=uid + 1),  # a user with one tenant
        Principal(uid=uid + 2),  # a user with none
        Principal(uid=uid, pid=1234, is_worker=True, worker_tenant="a"),  # a task
    )
    for who in callers:
        assert ops(who, "nodes", {"op": "nodes"}) == {"cluster": False}
