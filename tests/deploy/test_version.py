"""``asynctask --version`` from one version source, and the line a command prints when the
extra it needs is not installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib

import pytest

import asynctask
from asynctask.cli.entry import EXTRA_OF
from tests.e2e.conftest import ROOT


def _run(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "asynctask"]
    return subprocess.run(
        [*argv, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_package_version(flag: str) -> None:
    done = _run(flag)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"asynctask {asynctask.__version__} (Python ")


def test_version_is_listed_in_help() -> None:
    done = _run("--help")
    assert done.returncode == 0
    assert "--version" in done.stdout
    assert "health" in done.stdout


def test_the_version_has_one_source() -> None:
    """pyproject reads the version from ``asynctask.__version__``; it states none itself."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "asynctask.__version__"


_WITHOUT = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder

    class Missing(MetaPathFinder):
        # The import system as it is where the package was installed without an extra.
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in {missing!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Missing())
    sys.argv = ["asynctask", *sys.argv[1:]]
    from asynctask.cli.entry import main
    main()
    """
)


def test_a_client_only_install_is_told_to_install_the_cli_extra() -> None:
    done = _run("status", "abc", code=_WITHOUT.format(missing={"typer", "rich", "click"}))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "asynctask: the asynctask command needs the 'cli' extra of asynctaskd (module 'typer' "
        "is not installed); install it with: pip install 'asynctaskd[cli]'"
    )
    version = _run("--version", code=_WITHOUT.format(missing={"typer", "rich", "click"}))
    assert version.returncode == 0  # answered without the command line's packages


def test_the_daemon_without_its_extra_says_which_one(tmp_path) -> None:
    missing = {"aiosqlite", "asyncpg", "uvloop", "croniter"}
    done = _run("daemon", "--home", str(tmp_path / "h"), code=_WITHOUT.format(missing=missing))
    assert done.returncode == 2
    assert "needs the 'daemon' extra of asynctaskd" in done.stderr
    assert "pip install 'asynctaskd[daemon]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_every_extra_dependency_is_mapped_to_its_extra() -> None:
    """A dependency added to an extra must be in ``EXTRA_OF``, or a user who lacks it gets a
    traceback instead of the install line."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    imports = {"python-dateutil": "dateutil", "markdown-it-py": "markdown_it"}
    for extra in ("cli", "daemon"):
        for requirement in extras[extra]:
            name = requirement.split(">")[0].split("=")[0].split("[")[0].strip()
            if name == "asynctaskd":
                continue
            module = imports.get(name, name.replace("-", "_"))
            assert EXTRA_OF.get(module) == extra, f"{name} ({extra}) is not in EXTRA_OF"
