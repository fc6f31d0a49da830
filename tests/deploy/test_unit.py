"""config/asynctask.service: what it says is consistent with the daemon (its command line,
its drain, its readiness), systemd itself accepts it where ``systemd-analyze`` is installed,
and its capability bounding set and ``NoNewPrivileges`` leave the worker sandbox as it is
without them (a daemon run under ``setpriv`` with exactly that set)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asynctask.config import Config
from asynctask.daemon.notify import STOP_GRACE
from asynctask.model import parse_duration
from tests.deploy.units import unit_settings
from tests.e2e.conftest import ROOT

UNIT = ROOT / "config" / "asynctask.service"


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return unit_settings(UNIT)["Service"]


def _one(service: dict[str, list[str]], key: str) -> str:
    [value] = service[key]
    return value


def test_the_unit_is_a_notify_service_that_drains(service) -> None:
    assert _one(service, "Type") == "notify"
    assert _one(service, "Delegate") == "yes"
    # SIGTERM to the daemon alone: control-group would kill every worker at once, no drain.
    assert _one(service, "KillMode") == "mixed"
    stop = parse_duration(_one(service, "TimeoutStopSec"))
    assert stop == Config().daemon.drain + STOP_GRACE
    assert _one(service, "Restart") == "on-failure"
    assert "2" in _one(service, "RestartPreventExitStatus").split()  # a config error


def test_the_unit_runs_a_command_line_the_daemon_accepts(service) -> None:
    argv = _one(service, "ExecStart").split()
    assert argv[0].endswith("/bin/asynctask")
    assert argv[1] == "daemon"
    done = subprocess.run(
        [sys.executable, "-m", "asynctask", *argv[1:], "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # every flag it gives exists
    home = argv[argv.index("--home") + 1]
    assert home == f"/var/lib/{_one(service, 'StateDirectory')}"


def test_the_unit_keeps_what_the_sandbox_needs(service) -> None:
    """The options that would break per-worker cgroups or the workers' namespaces are not
    set; the namespaces allowed are the ones the sandbox makes."""
    for breaking in ("ProtectControlGroups", "ProtectKernelTunables", "MemoryDenyWriteExecute",
                     "PrivateUsers", "DynamicUser", "User"):  # fmt: skip
        assert breaking not in service, f"{breaking} would break the worker sandbox"
    assert set(_one(service, "RestrictNamespaces").split()) == {"mnt", "pid", "ipc", "net", "user"}


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    # The unit names /opt/asynctask; verify checks that the binary exists: point it at ours.
    text = UNIT.read_text().replace(
        "/opt/asynctask/bin/asynctask", str(Path(sys.executable).with_name("asynctask"))
    )
    unit = tmp_path / "asynctask.service"
    unit.write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )  # fmt: skip
    complaints = [
        line for line in (done.stdout + done.stderr).splitlines()
        if "asynctask.service" in line
    ]  # fmt: skip
    assert not complaints, "\n".join(complaints)


def _capabilities(service: dict[str, list[str]]) -> list[str]:
    return _one(service, "CapabilityBoundingSet").split()


def _isolation(log: str) -> tuple[str, str]:
    """The daemon's start-up lines that say how workers are contained."""
    isolation = re.search(r"isolation: (.*)", log)
    sandbox = re.search(r"sandbox: (.*)", log)
    assert isolation, log
    assert sandbox, log
    return isolation.group(1).strip(), sandbox.group(1).strip()


def test_the_bounding_set_keeps_the_sandbox(service, wrapped_daemon) -> None:
    """Two daemons, one with every capability and one under ``setpriv`` with the unit's
    bounding set and no_new_privs: the same isolation and cgroups are chosen, a task runs,
    and a task still cannot open the daemon's database."""
    if os.geteuid() != 0:
        pytest.skip("the bounding set is the root daemon's; this runs as a plain user")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed here")
    caps = ",".join("+" + c.removeprefix("CAP_").lower() for c in _capabilities(service))
    prefix = [setpriv, f"--bounding-set=-all,{caps}", "--inh-caps=-all", "--no-new-privs", "--"]
    found = []
    for name, wrap in (("full", []), ("unit", prefix)):
        daemon = wrapped_daemon(name, prefix=wrap).start()
        client = daemon.client()
        assert client.submit("tests.e2e.tasks:add", 2, 3).result(timeout=60) == 5
        database = str(daemon.home / "asynctask.db")
        opened = client.submit("tests.security.tasks_sandbox:open_read_write", database)
        assert opened.result(timeout=60).startswith("denied"), name
        assert daemon.stop() == 0
        found.append(_isolation(daemon.log.read_text()))
    assert found[0] == found[1], f"with every capability: {found[0]}\nunder the unit: {found[1]}"
