"""What every check of the battery shares: a daemon process it can kill, poll, and sample.

``start_daemon``/``stop_daemon`` in benchmarks/bench_daemon.py start a daemon with the caller's
environment and log into the home; the battery needs an extra environment (the fault shim's
LD_PRELOAD) and a log outside the home (the shim faults every write under the home, log lines
included), so ``Daemon`` starts the process itself and reuses bench_daemon's ``stop_daemon`` and
``rss_mib``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from asynctask.client import Client
from asynctask.errors import DaemonUnavailable
from asynctask.executor.cgroups import detect_cgroups, sweep_stale
from benchmarks.bench_daemon import rss_mib, stop_daemon

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def poll(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Call ``condition`` until it returns something truthy; ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(interval)


def sweep_cgroups() -> None:
    """Remove the worker cgroups that daemons killed with -9 left behind (as tests/e2e does)."""
    sweep_stale(detect_cgroups())


def config_text(durability: str = "full", extra: str = "") -> str:
    return f'[daemon]\ndurability = "{durability}"\nlog_level = "warning"\n{extra}'


@dataclass
class Daemon:
    """One daemon home, started and killed as often as a check likes.

    The log (``log``) is appended across restarts and lives next to the home, not in it.
    """

    home: Path
    config: str = field(default_factory=config_text)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if not (self.home / "asynctask.toml").exists():
            (self.home / "asynctask.toml").write_text(self.config)

    @property
    def log(self) -> Path:
        return self.home.with_name(self.home.name + "-daemon.log")

    @property
    def socket(self) -> Path:
        return self.home / "asynctask.sock"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def client(self, tenant: str = "default") -> Client:
        return Client(self.socket, tenant=tenant)

    def start(self, timeout: float = 60.0) -> Daemon:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "asynctask", "daemon", "--home", str(self.home)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **self.env},
            )
        proc = self.proc

        def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited at start-up:\n{self.tail()}")
            try:
                info = Client(self.socket, connect_timeout=0.5).ping()
            except DaemonUnavailable:
                return False
            return bool(info["pid"] == proc.pid and info["accepting"])

        try:
            poll(answers, timeout, "daemon answering ping")
        except TimeoutError:
            self.kill9()
            raise RuntimeError(f"daemon did not answer in {timeout}s:\n{self.tail()}") from None
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM and wait; kill -9 if it does not exit (cleanup must never hang)."""
        if not self.alive():
            return
        assert self.proc is not None
        try:
            stop_daemon(self.proc)
        except subprocess.TimeoutExpired:
            self.kill9()

    def worker_pids(self) -> list[int]:
        """Every process below the daemon (its fork server, workers and what they started)."""
        found: list[int] = []
        parents = [self.pid]
        while parents:
            parent = parents.pop()
            try:
                text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            pids = [int(p) for p in text.split()]
            found.extend(pids)
            parents.extend(pids)
        return found

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def ping(self) -> dict[str, Any]:
        return self.client().ping()


def sample(pid: int, home: Path) -> dict[str, float]:
    """The daemon's RSS (MiB), open fds, threads and WAL size (MiB) right now."""
    status = Path(f"/proc/{pid}/status").read_text()
    threads = next(int(line.split()[1]) for line in status.splitlines() if line[:8] == "Threads:")
    wal = home / "asynctask.db-wal"
    return {
        "rss_mib": rss_mib(pid),
        "fds": float(len(os.listdir(f"/proc/{pid}/fd"))),
        "threads": float(threads),
        "wal_mib": (wal.stat().st_size if wal.exists() else 0) / 2**20,
    }


def machine() -> str:
    """One line naming the machine, for RELIABILITY.md."""
    import platform

    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} cpus, {mem:.0f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )
