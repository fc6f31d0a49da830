"""The wheel, built from this checkout, and a wheelhouse: the wheel plus every dependency's
wheel for each Python it is installed on, so the installs themselves read no index
(``pip install --no-index --find-links``). Filling the wheelhouse downloads the dependencies
once (pip's cache makes later runs quick); where the package index cannot be reached the tests
that install skip, saying so."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asynctask import __version__
from tests.e2e.conftest import ROOT, make_daemon

__all__ = ["ROOT", "Wheelhouse", "make_daemon", "make_venv", "pip"]

#: What the wheel is built from (a copy: building in place would leave build/ in the tree).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "asynctask")


def pip(
    *args: str, python: str = sys.executable, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("dist")
    # The project's own setuptools (a dev dependency), so the build reads no index either.
    built = pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(source))
    assert built.returncode == 0, built.stdout + built.stderr
    [found] = out.glob("asynctaskd-*.whl")
    assert found.name == f"asynctaskd-{__version__}-py3-none-any.whl"
    return found


@pytest.fixture(scope="session")
def wheelhouse(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    return Wheelhouse(tmp_path_factory.mktemp("wheelhouse"), wheel)


class Wheelhouse:
    """A directory of wheels; ``fill`` adds what ``requirement`` needs on Python ``version``."""

    def __init__(self, path: Path, wheel: Path) -> None:
        self.path = path
        shutil.copy2(wheel, path)
        self._filled: set[tuple[str, str]] = set()

    def fill(self, requirement: str, version: str) -> None:
        if (requirement, version) in self._filled:
            return
        done = pip(
            "download", "--only-binary=:all:", "--python-version", version,
            "--dest", str(self.path), "--find-links", str(self.path), requirement,
        )  # fmt: skip
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            pytest.skip(
                f"cannot fetch the dependencies' wheels (package index unreachable?): {last}"
            )
        self._filled.add((requirement, version))

    def install(self, venv: Path, requirement: str) -> None:
        done = pip(
            "install", "--no-index", "--find-links", str(self.path), requirement,
            python=str(venv / "bin" / "python"),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr


def interpreters() -> list[tuple[str, str | None]]:
    """(version, interpreter) for 3.11, 3.12 and 3.13: this one, then the newer ones found in
    pyenv's versions or on the PATH (Debian 12 packages only 3.11); None when not found. A
    candidate must start (pyenv's shims on the PATH exist for versions not selected, and fail)."""
    found: list[tuple[str, str | None]] = []
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for version in ("3.11", "3.12", "3.13"):
        if sys.version_info[:2] == tuple(int(p) for p in version.split(".")):
            found.append((version, getattr(sys, "_base_executable", sys.executable)))
            continue
        candidates = sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"))
        candidates.append(shutil.which(f"python{version}") or "")
        found.append((version, next((c for c in candidates if c and _starts(c)), None)))
    return found


def _starts(interpreter: str) -> bool:
    try:
        done = subprocess.run(
            [interpreter, "-c", "import venv, sqlite3"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return False
    return done.returncode == 0


def make_venv(interpreter: str, path: Path) -> Path:
    done = subprocess.run(
        [interpreter, "-m", "venv", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return path
