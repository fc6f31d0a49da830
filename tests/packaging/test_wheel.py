"""The wheel as a user gets it: its metadata and files, a client-only install in a clean venv
(what it pulls in, and that it talks to a real daemon), and the full install on each Python
from 3.11 to 3.13 found here (the command line, and a daemon that runs a task)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from asynctask import __version__
from tests.packaging.conftest import Wheelhouse, interpreters, make_venv

CLIENT_ONLY = {"asynctaskd", "msgpack", "msgspec"}
#: The most a client-only install may add to a venv (measured: 6.0 MB, 3.6 MB of it this package).
CLIENT_ONLY_MAX_BYTES = 8 * 1024 * 1024
HERE = f"{sys.version_info.major}.{sys.version_info.minor}"


def _metadata(wheel: Path) -> tuple[list[str], object]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        text = archive.read(f"asynctaskd-{__version__}.dist-info/METADATA").decode()
    return names, Parser().parsestr(text)


def test_the_wheel_carries_its_license_types_and_metadata(wheel: Path) -> None:
    names, meta = _metadata(wheel)
    assert "asynctask/py.typed" in names
    assert f"asynctaskd-{__version__}.dist-info/licenses/LICENSE" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/"))]
    assert meta["Name"] == "asynctaskd"
    assert meta["Version"] == __version__
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    assert {"3.11", "3.12", "3.13"} <= {
        c.rsplit(" ", 1)[1] for c in classifiers if "Python :: 3." in c
    }
    requires = meta.get_all("Requires-Dist")
    unconditional = {r.split(">")[0].split(";")[0].strip() for r in requires if "extra ==" not in r}
    assert unconditional == {"msgpack", "msgspec"}
    assert set(meta.get_all("Provides-Extra")) >= {"cli", "daemon"}
    entry = zipfile.ZipFile(wheel).read(f"asynctaskd-{__version__}.dist-info/entry_points.txt")
    assert b"asynctask = asynctask.cli.entry:main" in entry


def _installed(venv: Path) -> dict[str, int]:
    """Distribution name -> bytes of its files, in ``venv``."""
    code = textwrap.dedent(
        """
        import json, os
        from importlib.metadata import distributions
        sizes = {}
        for dist in distributions():
            total = 0
            for file in dist.files or []:
                path = file.locate()
                if os.path.isfile(path):
                    total += os.path.getsize(path)
            sizes[dist.metadata["Name"].lower()] = total
        print(json.dumps(sizes))
        """
    )
    # Run from the venv, not the checkout: `-c` puts the working directory on sys.path, and a
    # checkout's *.egg-info would be counted as installed.
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True, text=True, check=True, cwd=venv,
    )  # fmt: skip
    return json.loads(done.stdout)


def test_a_client_only_install_is_small_and_talks_to_a_daemon(
    wheelhouse: Wheelhouse, tmp_path: Path, make_daemon
) -> None:
    wheelhouse.fill(f"asynctaskd=={__version__}", HERE)
    venv = make_venv(sys._base_executable, tmp_path / "client")  # type: ignore[attr-defined]
    wheelhouse.install(venv, "asynctaskd")
    sizes = _installed(venv)
    ours = {name: size for name, size in sizes.items() if name not in ("pip", "setuptools")}
    assert set(ours) == CLIENT_ONLY, ours
    assert sum(ours.values()) < CLIENT_ONLY_MAX_BYTES, ours

    daemon = make_daemon().start()  # this checkout's daemon; the client is the wheel's
    code = textwrap.dedent(
        """
        import sys
        import asynctask
        client = asynctask.Client(sys.argv[1])
        print(client.submit("tests.e2e.tasks:add", 2, 3).result(timeout=30))
        heavy = {"typer", "rich", "click", "aiosqlite", "asyncpg", "uvloop", "croniter"}
        print(sorted(m for m in sys.modules if m.partition(".")[0] in heavy))
        print(asynctask.__file__)
        """
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code, str(daemon.socket)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result, loaded, location = done.stdout.splitlines()
    assert result == "5"
    assert loaded == "[]"
    assert location.startswith(str(venv))  # the installed package, not this checkout

    command = subprocess.run(
        [str(venv / "bin" / "asynctask"), "status", "abc"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert command.returncode == 2
    assert "pip install 'asynctaskd[cli]'" in command.stderr
    assert "Traceback" not in command.stderr
    version = subprocess.run(
        [str(venv / "bin" / "asynctask"), "--version"], capture_output=True, text=True, check=False
    )
    assert version.returncode == 0
    assert version.stdout.startswith(f"asynctask {__version__} ")


TASKS = """
def add(a, b):
    return a + b
"""


#: The newer interpreters' full installs take ~15 s each: `make test-slow` runs them, to keep
#: `make test` within its budget; `make test` installs on this Python and client-only.
PYTHONS = [
    pytest.param(
        version, interpreter, id=version, marks=() if version == "3.11" else pytest.mark.slow
    )
    for version, interpreter in interpreters()
]


@pytest.mark.parametrize(("version", "interpreter"), PYTHONS)
def test_the_full_install_runs_a_daemon(
    wheelhouse: Wheelhouse, tmp_path: Path, version: str, interpreter: str | None
) -> None:
    """``pip install 'asynctaskd[daemon]'`` in a clean venv: --help and --version work, and a
    detached daemon runs a task submitted by the installed command."""
    if interpreter is None:
        pytest.skip(
            f"no Python {version} here: Debian 12 packages 3.11 only, and none was found on "
            "the PATH or in pyenv's versions"
        )
    wheelhouse.fill(f"asynctaskd[daemon]=={__version__}", version)
    venv = make_venv(interpreter, tmp_path / "venv")
    wheelhouse.install(venv, "asynctaskd[daemon]")
    command = str(venv / "bin" / "asynctask")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ASYNCTASK_SOCKET")}
    env["ASYNCTASK_HOME"] = str(tmp_path / "home")
    work = tmp_path / "app"
    work.mkdir()
    (work / "mytasks.py").write_text(TASKS)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [command, *args], capture_output=True, text=True, timeout=120, cwd=work, env=env,
            check=False,
        )  # fmt: skip

    helped = run("--help")
    assert helped.returncode == 0, helped.stderr
    assert "health" in helped.stdout
    shown = run("--version")
    assert shown.stdout.startswith(f"asynctask {__version__} (Python {version}.")
    started = run("daemon", "--detach")
    assert started.returncode == 0, started.stderr
    try:
        submitted = run("submit", "mytasks:add", "[2, 3]", "--wait", "--json")
        assert submitted.returncode == 0, submitted.stderr
        assert json.loads(submitted.stdout)["result"] == 5
        assert run("health").returncode == 0
    finally:
        stopped = run("stop")
    assert stopped.returncode == 0, stopped.stderr
