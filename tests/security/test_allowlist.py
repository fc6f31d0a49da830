"""What may run in multi-user mode: a tenant submits only the functions the config allows.

Issue 13, "Any mapped user becomes root": a user mapped in ``[auth.users]`` could submit
``os:system`` for its own tenant and run it with the daemon's authority. These tests run a real
daemon whose config maps the test's own user (root, also the default admin) to a tenant: the
policy holds for admins too, since the function would run as the tenant.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asynctask.client import Client
from asynctask.errors import UsageError
from tests.e2e.conftest import DaemonProcess, daemon, make_daemon
from tests.security.conftest import SharedCode

__all__ = ["daemon", "make_daemon"]  # the e2e fixtures, shared with this directory

MULTI_USER = """
[auth.users]
root = ["acme", "ops", "beta"]

[tenants.acme]
functions = ["tests.e2e.tasks:*", "{module}:run"]

[tenants.ops]
commands = true

[functions."tests.e2e.tasks:echo"]
retries = 0
"""

#: A module whose import leaves a trace: if the daemon ever let a worker import it, we'd see.
SIDE_EFFECT = """
from pathlib import Path

Path({marker!r}).write_text("imported")


def run():
    return "ran"
"""


@pytest.fixture
def multi_user(
    make_shared_daemon: Callable[..., DaemonProcess], shared_code: SharedCode, tmp_path: Path
) -> DaemonProcess:
    # The workers run as the tenant's own uid: the modules must be readable by it.
    modules = Path(tempfile.mkdtemp(dir=shared_code.public))
    modules.chmod(0o755)
    (modules / "tripwire.py").write_text(SIDE_EFFECT.format(marker=str(tmp_path / "imported")))
    (modules / "allowed_mod.py").write_text("def run():\n    return 'ran'\n")
    config = MULTI_USER.format(module="allowed_mod")
    config = f'[workers]\npaths = ["{modules}"]\n' + config
    return make_shared_daemon(config).start()


def _refused(result, *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.mark.parametrize("function", ["os:system", "subprocess:getoutput", "builtins:exec"])
def test_a_mapped_user_cannot_run_the_standard_library(
    multi_user: DaemonProcess, function: str
) -> None:
    result = multi_user.cli("submit", "--tenant", "acme", function, '["cat /etc/shadow"]')
    _refused(result, "acme", function, "may not run")
    assert multi_user.client("acme").list(limit=100) == []


def test_a_refused_module_is_never_imported(multi_user: DaemonProcess, tmp_path: Path) -> None:
    _refused(multi_user.cli("submit", "--tenant", "acme", "tripwire:run"), "tripwire:run")
    _refused(multi_user.cli("submit", "--tenant", "beta", "tripwire:run"), "tripwire:run")
    # Work that is allowed runs to the end, so a worker had every chance to import it.
    done = multi_user.client("acme").submit("allowed_mod:run").wait(timeout=30)
    assert done.result == "ran"
    assert not (tmp_path / "imported").exists()
    assert [t.function for t in multi_user.client("acme").list(limit=100)] == ["allowed_mod:run"]


def test_allowed_patterns_and_declared_functions_run(multi_user: DaemonProcess) -> None:
    acme = multi_user.client("acme")
    assert acme.submit("tests.e2e.tasks:add", 2, 3).result(timeout=30) == 5
    # A [functions."..."] section declares the function for every tenant.
    beta = multi_user.client("beta")
    assert beta.submit("tests.e2e.tasks:echo", 1).result(timeout=30) == {"args": [1], "kwargs": {}}
    with pytest.raises(UsageError, match="may not run"):
        beta.submit("tests.e2e.tasks:add", 2, 3)


def test_a_pattern_does_not_reach_through_a_module_attribute(multi_user: DaemonProcess) -> None:
    """``tests.e2e.tasks`` imports ``os``: ``tests.e2e.tasks:os.system`` is ``os.system``."""
    _refused(
        multi_user.cli("submit", "--tenant", "acme", "tests.e2e.tasks:os.system", '["id"]'),
        "may not run",
    )
    assert multi_user.client("acme").list(limit=100) == []


def test_command_tasks_need_commands_true(multi_user: DaemonProcess) -> None:
    refused = multi_user.cli("submit", "--tenant", "acme", "--cmd", "--", "id")
    _refused(refused, "command", "commands = true")
    with pytest.raises(UsageError, match="commands = true"):
        multi_user.client("acme").submit_cmd(["id"])
    assert multi_user.client("acme").list(limit=100) == []
    allowed = multi_user.client("ops").submit_cmd(["true"]).wait(timeout=30)
    assert (allowed.state.value, allowed.result) == ("succeeded", {"exit_code": 0})
    # commands = true allows commands only, not any Python function.
    _refused(multi_user.cli("submit", "--tenant", "ops", "os:system", '["id"]'), "may not run")


def test_cron_entries_are_checked_like_submits(multi_user: DaemonProcess) -> None:
    cron = ("cron", "add", "--tenant", "acme", "nightly", "* * * * *")
    _refused(multi_user.cli(*cron, "os:system", '["id"]'), "may not run")
    assert multi_user.client("acme").cron_list() == []
    ok = multi_user.cli(*cron, "tests.e2e.tasks:add", "[1, 2]")
    assert ok.returncode == 0, ok.stderr
    assert [c["name"] for c in multi_user.client("acme").cron_list()] == ["nightly"]


@pytest.mark.parametrize("option", ["--on-success", "--on-failure"])
def test_destinations_are_checked_at_submit(multi_user: DaemonProcess, option: str) -> None:
    submit = ("submit", "--tenant", "acme", "tests.e2e.tasks:add", "[1, 2]")
    _refused(multi_user.cli(*submit, option, "os:system"), "os:system", "may not run")
    assert multi_user.client("acme").list(limit=100) == []
    ok = multi_user.cli(*submit, option, "tests.e2e.tasks:echo")
    assert ok.returncode == 0, ok.stderr


def test_one_refused_task_refuses_the_whole_batch(multi_user: DaemonProcess, tmp_path) -> None:
    acme = multi_user.client("acme")
    with pytest.raises(UsageError, match=r"task 1: .*may not run"):
        acme.submit_many(
            [
                {"func": "tests.e2e.tasks:add", "args": [1, 2]},
                {"func": "builtins:exec", "args": ["import os"]},
            ]
        )
    lines = tmp_path / "bulk.jsonl"
    lines.write_text(
        json.dumps({"function": "tests.e2e.tasks:add", "args": [1, 2]})
        + "\n"
        + json.dumps({"function": "tests.e2e.tasks:add", "args": [1, 2], "on_success": "os:system"})
        + "\n"
    )
    _refused(multi_user.cli("submit", "--tenant", "acme", "--from-file", str(lines)), "os:system")
    assert acme.list(limit=100) == []


def test_single_user_mode_runs_any_importable_function(daemon: DaemonProcess) -> None:
    """No ``[auth.users]``: the daemon's own user is trusted, as before (passes on old code too:
    it guards against the policy leaking into single-user mode)."""
    assert daemon.client().submit("os:getpid").result(timeout=30) > 0
    assert daemon.client().submit_cmd(["true"]).result(timeout=30) == {"exit_code": 0}


@pytest.fixture
def local_user() -> Iterator[pwd.struct_passwd]:
    """A throwaway system user, removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating a throwaway user needs root")
    name = f"atsp{os.getpid() % 100000}"
    created = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
    )
    if created.returncode != 0:
        pytest.skip(f"useradd failed: {created.stderr.strip()}")
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)


def _as_user(user: pwd.struct_passwd, call: Callable[[], Any]) -> dict[str, Any]:
    """``call()`` in a forked child running as ``user`` (the interpreter lives under /root, so
    that user could not start this venv's Python: the child uses what is already imported)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            outcome = {"value": call()}
        except BaseException as exc:
            outcome = {"error": type(exc).__name__, "message": str(exc)}
        finally:
            os.write(write, json.dumps(outcome, default=str).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_a_mapped_user_that_is_not_an_admin_is_refused_too(
    make_shared_daemon: Callable[..., DaemonProcess], local_user: pwd.struct_passwd
) -> None:
    """Issue 13's attack as it was found: a user in [auth.users], not an admin, submits
    ``os:system`` for its own tenant."""
    top = Path(tempfile.mkdtemp(prefix="asynctask-allowlist-", dir="/tmp"))
    try:
        top.chmod(0o711)  # the user must reach the socket inside
        config = (
            f'[auth.users]\n{local_user.pw_name} = ["acme"]\n\n'
            '[tenants.acme]\nfunctions = ["tests.e2e.tasks:*"]\n'
        )
        daemon = make_shared_daemon(config, home=top / "home").start()
        socket_path = daemon.socket

        def submit(function: str, *args: Any) -> str:
            return Client(socket_path, tenant="acme").submit(function, *args).id

        refused = _as_user(local_user, lambda: submit("os:system", f"id > {top}/owned"))
        assert refused.get("error") == "UsageError", refused
        assert "may not run" in refused["message"]
        allowed = _as_user(local_user, lambda: submit("tests.e2e.tasks:add", 1, 2))
        assert "value" in allowed, allowed
        assert daemon.client("acme").result(allowed["value"], timeout=30) == 3
        assert [t.function for t in daemon.client("acme").list(limit=10)] == ["tests.e2e.tasks:add"]
    finally:
        shutil.rmtree(top, ignore_errors=True)
