"""A real daemon process on a real socket and SQLite file, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asynctask.client import Client
from asynctask.errors import DaemonUnavailable
from asynctask.executor.cgroups import detect_cgroups, sweep_stale
from asynctask.testing.daemon import thread_stacks
from benchmarks.reliability.common import poll as poll_until

ROOT = Path(__file__).resolve().parents[2]


def poll(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02) -> Any:
    """``benchmarks.reliability.common.poll`` with a test's default and a test's failure."""
    try:
        return poll_until(condition, timeout, f"condition {condition}", interval)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


class DaemonProcess:
    def __init__(self, home: Path, config: str | None = None, root: Path = ROOT) -> None:
        self.root = root  # the daemon's working directory and PYTHONPATH: where code is
        self.home = home
        self.socket = home / "asynctask.sock"
        self.log = home / "daemon-test.log"
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        home.mkdir(parents=True, exist_ok=True)
        if config is not None:
            (home / "asynctask.toml").write_text(config)

    def start(self) -> DaemonProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "asynctask", "daemon", "--home", str(self.home)],
                cwd=self.root,
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONPATH": str(self.root)},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited at start-up:\n{self.log.read_text()}")
            try:
                info = Client(self.socket, connect_timeout=0.5).ping()
            except DaemonUnavailable:
                time.sleep(0.02)
                continue
            if info["pid"] == self.proc.pid:
                # A daemon that answers must take tasks: clients submit right after a ping.
                assert info["accepting"], f"daemon answered before accepting tasks: {info}"
                return self
        raise AssertionError(f"daemon did not answer within 30s:\n{self.log.read_text()}")

    def client(self, tenant: str = "default") -> Client:
        return Client(self.socket, tenant=tenant)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and the exit status. A daemon still running after ``timeout`` fails the
        test with the end of its log and its threads' stacks (py-spy, when installed), so a
        rare hang in a stop can be read from the failure alone."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stacks = thread_stacks(self.proc.pid)
            log = self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""
            raise AssertionError(
                f"the daemon did not stop within {timeout:g}s\n--- its log ---\n{log}"
                f"\n--- its threads ---\n{stacks}"
            ) from None

    def worker_pids(self) -> list[int]:
        """PIDs of every process below the daemon: its workers (children of its fork server,
        or its own children when started as interpreters) and what they started."""
        assert self.proc is not None
        found: list[int] = []
        parents = [self.proc.pid]
        while parents:
            parent = parents.pop()
            children = Path(f"/proc/{parent}/task/{parent}/children")
            try:
                pids = [int(p) for p in children.read_text().split()]
            except FileNotFoundError:
                continue
            found.extend(pids)
            parents.extend(pids)
        return found

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "asynctask", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "ASYNCTASK_HOME": str(self.home), "PYTHONPATH": str(self.root)},
        )


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def factory(
        config: str | None = None, home: Path | None = None, root: Path = ROOT
    ) -> DaemonProcess:
        daemon = DaemonProcess(home or tmp_path / "home", config, root)
        started.append(daemon)
        return daemon

    yield factory
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(10)
    sweep_stale(detect_cgroups())  # the groups of workers the kill -9 above left behind


@pytest.fixture
def daemon(make_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    return make_daemon().start()
