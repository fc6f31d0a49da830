"""Real daemons for the deployment tests: the e2e fixtures, plus a daemon started under a
command prefix (``setpriv``, as a systemd unit's capability lines would) and with extra
environment (``NOTIFY_SOCKET``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from asynctask.client import Client
from asynctask.errors import DaemonUnavailable
from asynctask.executor.cgroups import detect_cgroups, sweep_stale
from tests.e2e.conftest import ROOT, DaemonProcess, daemon, make_daemon, poll

__all__ = [
    "ROOT", "DaemonProcess", "WrappedDaemon", "daemon", "make_daemon", "poll", "wrapped_daemon",
]  # fmt: skip


class WrappedDaemon(DaemonProcess):
    """A ``DaemonProcess`` run as ``prefix + [python -m asynctask daemon ...]`` with ``env``
    added to the environment. ``start`` returns once it answers ``ping``."""

    def __init__(
        self,
        home: Path,
        config: str | None = None,
        prefix: list[str] | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        super().__init__(home, config)
        self.prefix = prefix or []
        self.env = env or {}
        self.args = args or []

    def start(self) -> WrappedDaemon:
        argv = [*self.prefix, sys.executable, "-m", "asynctask", "daemon", "--home", str(self.home)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*argv, *self.args],
                cwd=self.root,
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONPATH": str(self.root), **self.env},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited at start-up:\n{self.log.read_text()}")
            try:
                Client(self.socket, connect_timeout=0.5).ping()
            except DaemonUnavailable:
                time.sleep(0.02)
                continue
            return self
        raise AssertionError(f"daemon did not answer within 30s:\n{self.log.read_text()}")


@pytest.fixture
def wrapped_daemon(tmp_path: Path) -> Iterator[Callable[..., WrappedDaemon]]:
    started: list[WrappedDaemon] = []

    def factory(name: str = "home", **kwargs: object) -> WrappedDaemon:
        made = WrappedDaemon(tmp_path / name, **kwargs)  # type: ignore[arg-type]
        started.append(made)
        return made

    yield factory
    for made in started:
        if made.proc is not None and made.proc.poll() is None:
            made.proc.kill()
            made.proc.wait(10)
    if started:
        sweep_stale(detect_cgroups())  # the groups of workers a kill -9 above left behind
