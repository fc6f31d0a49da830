"""The isolation probe and choice (``asynctask/isolation.py``), per-tenant uid allocation and its
storage, and per-tenant uid mode at the executor level with a system-Python venv."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asynctask import isolation
from asynctask.config import ConfigError, parse_config
from asynctask.errors import UsageError
from asynctask.executor.sandbox import Spec
from asynctask.isolation import Probe, UidAllocator, choose, probe_uid, worker_env
from asynctask.store import AssignUid, Store, StoreError
from tests.executor.conftest import Harness, stop_and_check, value
from tests.security.conftest import SharedCode

REPO = Path(__file__).resolve().parents[2]
ROOT = os.geteuid() == 0
SYSTEM_PYTHON = "/usr/bin/python3.11"
TASKS = "tests.security.tasks_sandbox"
FIRST = 61000


# --- allocation -------------------------------------------------------------------------------


def test_a_tenant_keeps_its_uid_and_tenants_never_share_one() -> None:
    allocator = UidAllocator((FIRST, FIRST + 9))
    a, new_a = allocator.allocate("a")
    b, new_b = allocator.allocate("b")
    assert (a, new_a, b, new_b) == (FIRST, True, FIRST + 1, True)
    assert allocator.allocate("a") == (FIRST, False)
    restarted = UidAllocator((FIRST, FIRST + 9), known={"a": a, "b": b})
    assert restarted.allocate("b") == (b, False)
    assert restarted.allocate("c") == (FIRST + 2, True)


def test_allocation_skips_accounts_root_and_the_daemons_uid() -> None:
    daemon = os.getuid()
    allocator = UidAllocator((daemon, daemon + 3), taken={daemon + 1})
    assert allocator.allocate("a") == (daemon + 2, True)
    assert UidAllocator((0, 1)).allocate("a")[0] not in (0, daemon)


def test_a_configured_user_wins_and_is_never_given_to_another_tenant() -> None:
    allocator = UidAllocator((FIRST, FIRST + 1), fixed={"a": FIRST})
    assert allocator.allocate("a") == (FIRST, False)
    assert allocator.allocate("b") == (FIRST + 1, True)
    with pytest.raises(RuntimeError, match="no free uid left"):
        allocator.allocate("c")


async def test_assigned_uids_survive_a_restart_and_stay_unique(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite")
    store = await Store.open(path)
    try:
        await store.put(AssignUid("a", FIRST))
        await store.put(AssignUid("b", FIRST + 1))
        with pytest.raises(StoreError):
            await store.put(AssignUid("c", FIRST))  # one uid, two tenants: refused
    finally:
        await store.close()
    reopened = await Store.open(path)
    try:
        assert await reopened.load_tenant_uids() == {"a": FIRST, "b": FIRST + 1}
    finally:
        await reopened.close()


# --- configuration ----------------------------------------------------------------------------


def test_workers_python_uids_and_tenant_users_are_validated() -> None:
    workers = parse_config(
        {"workers": {"uids": "70000-70009", "python": "/usr/bin/python3"},
         "tenants": {"a": {"user": "nobody"}}}
    ).workers  # fmt: skip
    assert (workers.uids, workers.python) == ((70000, 70009), "/usr/bin/python3")
    assert workers.tenant_users == {"a": pwd.getpwnam("nobody").pw_uid}
    assert parse_config({}).workers.uids == (61000, 61999)
    for bad in ("61000", "5-10", "62000-61000", 61000):
        with pytest.raises(ConfigError, match=r"workers\.uids"):
            parse_config({"workers": {"uids": bad}})
    with pytest.raises(ConfigError, match="absolute"):
        parse_config({"workers": {"python": "python3"}})
    with pytest.raises(ConfigError, match="never run as root"):
        parse_config({"tenants": {"a": {"user": "root"}}})
    with pytest.raises(ConfigError, match="every tenant cannot share it"):
        parse_config({"tenants": {"*": {"user": "nobody"}}})


# --- the probe and the choice -----------------------------------------------------------------


def _readable_by(uid: int, python: str) -> bool:
    return probe_uid(python, str(REPO), worker_env((), str(REPO)), uid).ok


@pytest.mark.skipif(not ROOT, reason="the per-tenant uid probe needs root")
def test_an_interpreter_other_users_cannot_run_means_capability_mode(tmp_path: Path) -> None:
    python = shutil.which("python3", path=os.path.dirname(os.path.realpath(sys.executable)))
    if python is None or _readable_by(FIRST, python):
        pytest.skip("this interpreter can be run by other users: nothing to fall back from")
    chosen = choose(python=python, cwd=str(REPO), paths=(), home=str(tmp_path),
                    socket=str(tmp_path / "asynctask.sock"))  # fmt: skip
    assert chosen.mode == "capabilities"
    assert "own pid+mount namespace" in chosen.description
    assert f"per-tenant uids unavailable: {os.path.realpath(python)}" in chosen.description
    assert f"uid {FIRST}" in chosen.description
    with pytest.raises(UsageError, match=r"Set \[workers\] python to an interpreter"):
        choose(python=python, cwd=str(REPO), paths=(), home=str(tmp_path),
               socket=str(tmp_path / "asynctask.sock"), multi_user=True)  # fmt: skip


def test_a_tenant_user_that_is_the_daemons_own_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="the daemon's own or root"):
        choose(python=sys.executable, cwd=str(REPO), paths=(), home=str(tmp_path),
               socket=str(tmp_path / "s"), tenant_users={"a": os.getuid()})  # fmt: skip


# --- per-tenant uid mode with a system-Python venv ------------------------------------------


@pytest.fixture
def readable_python(shared_code: SharedCode) -> tuple[str, str]:
    """(interpreter, code dir) that uid 61000 can run and read: a venv of the system Python and
    a world-readable copy of the code (``conftest.shared_code``)."""
    return shared_code.python, str(shared_code.root)


def test_a_readable_interpreter_gives_per_tenant_uid_mode(
    readable_python: tuple[str, str], tmp_path: Path
) -> None:
    python, code = readable_python
    recorded: list[tuple[str, int]] = []
    chosen = choose(python=python, cwd=code, paths=(), home=str(tmp_path),
                    socket=str(tmp_path / "s"), multi_user=True,
                    known_uids={"old": FIRST})  # fmt: skip
    chosen = chosen.with_record(lambda tenant, uid: recorded.append((tenant, uid)))
    assert chosen.mode == "uids"
    assert chosen.description.startswith(f"per-tenant uids {FIRST}-61999")
    assert Spec.from_json(chosen.spec_for("old")).uid == FIRST
    new = Spec.from_json(chosen.spec_for("new")).uid
    assert new is not None
    assert new not in (FIRST, 0, os.getuid())
    assert Spec.from_json(chosen.spec_for("new")).uid == new
    assert recorded == [("new", new)]  # stored once, when first given
    assert Spec.from_json(chosen.spec_for(None)).uid is None  # unbound: capability mode


@pytest.fixture
async def uid_pool(
    readable_python: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    python, code = readable_python
    monkeypatch.setenv("PYTHONPATH", code)
    spec = Spec(uid=FIRST, gid=FIRST).to_json()
    harness = Harness(workers=1, python=python, cwd=code, sandbox=lambda tenant: spec)
    await harness.pool.start()
    yield harness
    await stop_and_check(harness)


async def test_a_worker_of_a_tenant_uid_runs_as_that_uid_without_capabilities(
    uid_pool: Harness,
) -> None:
    assert value(await uid_pool.run("os:getuid")) == FIRST
    assert value(await uid_pool.run("os:getgid")) == FIRST
    status = value(await uid_pool.run(f"{TASKS}:read_own_status"))
    assert "CapEff:\t0000000000000000" in status
    assert "NoNewPrivs:\t1" in status


async def test_a_tenant_uid_cannot_open_root_files_its_view_shows(uid_pool: Harness) -> None:
    secret = tempfile.NamedTemporaryFile(dir="/tmp", prefix="asynctask-secret-")  # noqa: SIM115
    try:
        os.chmod(secret.name, 0o600)  # root's: readable by the daemon's uid in capability mode
        assert value(await uid_pool.run(f"{TASKS}:open_read_write", secret.name)).startswith(
            "denied: PermissionError"
        )
    finally:
        secret.close()


def test_a_daemon_that_is_not_root_gets_the_same_sandbox_through_a_user_namespace(
    readable_python: tuple[str, str],
) -> None:
    python, code = readable_python
    nobody = pwd.getpwnam("nobody")
    entered = subprocess.run(
        [python, "-m", "asynctask.executor.sandbox"],
        cwd=code,
        env={**worker_env((), code), "ASYNCTASK_SANDBOX": Spec(hide=("/root",)).to_json()},
        user=nobody.pw_uid,
        group=nobody.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if "cannot enter the sandbox" in entered.stdout:  # the probe says why: a fallback, not open
        pytest.skip(f"no unprivileged user namespaces here: {entered.stdout.strip()}")
    assert entered.returncode == 0, entered.stderr
    seen = json.loads(entered.stdout)
    assert (seen["pid"], seen["caps"], seen["uid"]) == (2, 0, nobody.pw_uid)


# --- no namespaces at all --------------------------------------------------------------------


@pytest.mark.parametrize(("landlock", "mode"), [(7, "landlock"), (3, "minimal"), (0, "minimal")])
def test_without_namespaces_the_choice_says_what_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, landlock: int, mode: str
) -> None:
    def probe(python: str, cwd: str, env: object, spec: Spec) -> Probe:
        if spec.namespaces:
            return Probe(False, "unshare: Operation not permitted")
        return Probe(True, "", landlock)

    monkeypatch.setattr(isolation, "probe_namespaces", probe)
    chosen = choose(python=sys.executable, cwd=str(REPO), paths=(), home=str(tmp_path),
                    socket=str(tmp_path / "s"))  # fmt: skip
    assert chosen.mode == mode
    assert "unshare: Operation not permitted" in chosen.description
    if mode == "minimal":  # says what tasks can then reach
        assert "no_new_privs only" in chosen.description
        assert "signal the daemon" in chosen.description
    else:
        assert f"Landlock ABI {landlock}" in chosen.description
        assert "path Unix sockets stay reachable" in chosen.description
    assert Spec.from_json(chosen.spec_for(None)).namespaces is False
    with pytest.raises(UsageError):
        choose(python=sys.executable, cwd=str(REPO), paths=(), home=str(tmp_path),
               socket=str(tmp_path / "s"), multi_user=True)  # fmt: skip


async def test_a_worker_without_namespaces_still_has_no_capabilities() -> None:
    spec = Spec(namespaces=False).to_json()
    harness = Harness(workers=1, sandbox=lambda tenant: spec)
    await harness.pool.start()
    try:
        status = value(await harness.run(f"{TASKS}:read_own_status"))
        assert "CapEff:\t0000000000000000" in status
        assert "CapBnd:\t0000000000000000" in status or not ROOT
        assert "NoNewPrivs:\t1" in status
        assert value(await harness.run("os:getpid")) == harness.pool.pids[0]
    finally:
        await stop_and_check(harness)
