"""The security suite attacks a real daemon: the e2e fixtures, shared, and what multi-user
daemons need here.

Multi-user mode runs each tenant's workers under a uid of its own, and refuses to start when
that uid cannot run the workers' interpreter or read the task code. This machine's default
interpreter lives under /root (0700), so multi-user daemons in tests run their workers on a
venv of the system Python with a world-readable copy of the code (``shared_code``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from asynctask.isolation import probe_uid, worker_env
from tests.e2e.conftest import ROOT, DaemonProcess, daemon, make_daemon

__all__ = ["daemon", "make_daemon", "make_shared_daemon", "shared_code"]

SYSTEM_PYTHON = "/usr/bin/python3.11"
FIRST_UID = 61000  # the first of [workers] uids' default range


@dataclass(frozen=True)
class SharedCode:
    python: str  # an interpreter every uid may run
    root: Path  # a copy of asynctask, msgpack and tests/ every uid may read: the daemon's cwd
    public: Path  # a directory every uid may read, for a test's own modules

    def config(self, text: str) -> str:
        """``text`` with ``[workers] python`` set to the shared interpreter."""
        line = f'python = "{self.python}"\n'
        if "[workers]\n" in text:
            return text.replace("[workers]\n", "[workers]\n" + line, 1)
        return "[workers]\n" + line + "\n" + text


@pytest.fixture(scope="session")
def shared_code() -> Iterator[SharedCode]:
    if os.geteuid() != 0:
        pytest.skip("multi-user daemons run workers under other uids: this needs root")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"no system Python at {SYSTEM_PYTHON} to build a venv other users can run")
    base = Path(tempfile.mkdtemp(prefix="asynctask-shared-code-", dir="/tmp"))
    try:
        base.chmod(0o755)
        made = subprocess.run(
            [SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(base / "venv")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if made.returncode != 0:
            pytest.skip(f"cannot make a venv with {SYSTEM_PYTHON}: {made.stderr.strip()}")
        code = base / "code"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(ROOT / "asynctask", code / "asynctask", ignore=ignore)
        shutil.copytree(ROOT / "tests", code / "tests", ignore=ignore)
        import msgpack

        shutil.copytree(Path(msgpack.__file__).parent, code / "msgpack", ignore=ignore)
        (base / "public").mkdir()
        for directory, dirs, files in os.walk(base):
            for entry in dirs:
                os.chmod(os.path.join(directory, entry), 0o755)
            for entry in files:
                path = os.path.join(directory, entry)
                if not os.path.islink(path):
                    os.chmod(path, os.stat(path).st_mode | 0o444)
        python = str(base / "venv" / "bin" / "python")
        probe = probe_uid(python, str(code), worker_env((), str(code)), FIRST_UID)
        if not probe.ok:
            pytest.skip(f"uid {FIRST_UID} cannot run {python} even so: {probe.detail}")
        yield SharedCode(python, code, base / "public")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make_shared_daemon(
    make_daemon: Callable[..., DaemonProcess], shared_code: SharedCode
) -> Callable[..., DaemonProcess]:
    """``make_daemon`` for a multi-user config: workers on the shared interpreter and code."""

    def factory(config: str, home: Path | None = None) -> DaemonProcess:
        made: DaemonProcess = make_daemon(shared_code.config(config), home, shared_code.root)
        return made

    return factory
