"""kill -9 checker: the daemon and its workers die at random while producers submit.

docs/contract.md "At-least-once execution": a task whose worker or daemon dies runs again (the
interrupted attempt counts), and nothing acknowledged is ever lost. Here producers submit tasks
with known IDs (an ID is "acknowledged" once a submit of it returned; a failed submit is retried
with the same ID after a restart, which de-duplication makes safe), each task appends ``start``
and ``end`` lines to a ledger (benchmarks/reliability/tasks.py), and the harness kill -9s the
daemon ``kills`` times - and a random process below it (worker, fork server) between some of
those - restarting the daemon each time. After a final drain it reports:

* lost       acknowledged, but the daemon does not know the ID (NotFound)
* stuck      known, but not finished after the drain
* failed     finished ``failed`` (retries exhausted; retries are set high, so this is a finding)
* duplicated executions of one ID beyond the first, each *explained* when a kill (of the daemon
  or a worker) fell between the earlier execution's start and the next one's start - the
  at-least-once case - and *unexplained* otherwise; also whether the attempt number went up
* unexpected executed IDs that no producer ever tried to submit
* orphans    processes of a killed daemon still alive after it died

    .venv/bin/python -m benchmarks.reliability.killnine [--kills 30] [--worker-kills 15]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import signal
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from asynctask.client import Client
from asynctask.errors import AsynctaskError, NotFound
from benchmarks.reliability.common import Daemon, config_text, poll, sweep_cgroups

CONFIG = (
    "[workers]\nmin_workers = 2\nmax_workers = 2\n"
    '[retry]\nretries = 100\nbackoff_base = "10ms"\nbackoff_cap = "200ms"\n'
)
FUNCTION = "benchmarks.reliability.tasks:ledger"


@dataclass
class Execution:
    task_id: str
    attempt: int
    pid: int
    start: float
    end: float | None = None


@dataclass
class Report:
    daemon_kills: int = 0
    worker_kills: int = 0
    acked: int = 0
    submit_errors: int = 0
    executed_ids: int = 0
    executions: int = 0
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    duplicates_explained: int = 0
    duplicates_unexplained: list[str] = field(default_factory=list)
    attempt_not_counted: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    orphans: int = 0
    restart_s: list[float] = field(default_factory=list)
    drain_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.stuck
            or self.failed
            or self.duplicates_unexplained
            or self.attempt_not_counted
            or self.unexpected
            or self.orphans
        )

    def summary(self) -> str:
        restart = (
            f"restart median {statistics.median(self.restart_s):.2f} s, "
            f"max {max(self.restart_s):.2f} s"
            if self.restart_s
            else "no restarts"
        )
        return (
            f"{self.daemon_kills} daemon kills, {self.worker_kills} worker kills; "
            f"{self.acked} acked ({self.submit_errors} submit errors retried), "
            f"{self.executions} executions of {self.executed_ids} IDs; "
            f"lost {len(self.lost)}, stuck {len(self.stuck)}, failed {len(self.failed)}, "
            f"duplicated {self.duplicates_explained} explained / "
            f"{len(self.duplicates_unexplained)} unexplained, "
            f"attempt not counted {len(self.attempt_not_counted)}, "
            f"unexpected {len(self.unexpected)}, orphans {self.orphans}; "
            f"{restart}; drain {self.drain_s:.1f} s"
        )


class Producer(threading.Thread):
    """Submits IDs ``<prefix>-<n>`` at ``rate`` per second until stopped; rides out restarts."""

    def __init__(self, daemon: Daemon, prefix: str, ledger: Path, rate: float, seed: int) -> None:
        super().__init__(daemon=True, name=f"producer-{prefix}")
        self.daemon_ = daemon
        self.prefix = prefix
        self.ledger = ledger
        self.rate = rate
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.acked: list[str] = []
        self.tried: set[str] = set()
        self.errors = 0

    def run(self) -> None:
        client = Client(self.daemon_.socket)
        n = 0
        while not self.stop.is_set():
            task_id = f"{self.prefix}-{n:06d}"
            self.tried.add(task_id)
            try:
                client.submit(
                    FUNCTION, str(self.ledger), self.rng.uniform(0.0, 0.05), task_id=task_id
                )
            except AsynctaskError:
                # DaemonUnavailable while it restarts, or a refusal: the same ID again, later
                self.errors += 1
                self.stop.wait(0.05)
                continue
            self.acked.append(task_id)
            n += 1
            self.stop.wait(1 / self.rate)


def read_ledger(path: Path) -> dict[str, list[Execution]]:
    """Executions per task ID, in ledger order (an ``end`` closes its ``start``)."""
    runs: dict[str, list[Execution]] = defaultdict(list)
    if not path.exists():
        return runs
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        event, task_id, attempt, pid, at = parts
        if event == "start":
            runs[task_id].append(Execution(task_id, int(attempt), int(pid), float(at)))
        else:
            for execution in reversed(runs[task_id]):
                if execution.attempt == int(attempt) and execution.end is None:
                    execution.end = float(at)
                    break
    return runs


def analyse(
    report: Report,
    runs: dict[str, list[Execution]],
    kills: list[float],
    tried: set[str],
) -> None:
    """Fill the ledger half of ``report``: duplicates (explained or not), unexpected IDs."""
    report.executed_ids = len(runs)
    report.executions = sum(len(v) for v in runs.values())
    kills = sorted(kills)
    for task_id, executions in runs.items():
        if task_id not in tried:
            report.unexpected.append(task_id)
        for first, again in itertools.pairwise(executions):
            if any(first.start <= k <= again.start for k in kills):
                report.duplicates_explained += 1
            else:
                report.duplicates_unexplained.append(
                    f"{task_id} attempt {first.attempt} at {first.start:.3f} and "
                    f"attempt {again.attempt} at {again.start:.3f}"
                )
            if again.attempt <= first.attempt:
                report.attempt_not_counted.append(f"{task_id} attempt {again.attempt} twice")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purpose
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _reap_orphans(pids: list[int], grace: float = 10.0) -> int:
    """How many of a killed daemon's processes outlive it by ``grace`` (they should die with
    it); those are killed so the run goes on."""
    try:
        poll(lambda: not any(_alive(p) for p in pids), grace, "workers of a dead daemon")
        return 0
    except TimeoutError:
        alive = [p for p in pids if _alive(p)]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(alive)


def run(
    kills: int = 30,
    worker_kills: int = 15,
    rate: float = 20.0,
    producers: int = 2,
    interval: tuple[float, float] = (0.3, 1.0),
    drain_timeout: float = 120.0,
    seed: int = 0,
) -> Report:
    """The whole check on a fresh home; every process it started is gone when it returns."""
    rng = random.Random(seed)
    report = Report()
    kill_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="asynctask-kill9-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # workers may run as another uid and write the ledger here
        ledger = work / "ledger.txt"
        ledger.touch()
        os.chmod(ledger, 0o666)
        daemon = Daemon(work / "home", config=config_text("full", CONFIG))
        threads: list[Producer] = []
        try:
            daemon.start()
            threads = [
                Producer(daemon, f"p{i}", ledger, rate / producers, seed + i)
                for i in range(producers)
            ]
            for thread in threads:
                thread.start()
            worker_slots = set(rng.sample(range(kills), min(worker_kills, kills)))
            for round_ in range(kills):
                time.sleep(rng.uniform(*interval))
                if round_ in worker_slots:
                    pids = daemon.worker_pids()
                    if pids:
                        os.kill(rng.choice(pids), signal.SIGKILL)
                        kill_times.append(time.time())
                        report.worker_kills += 1
                        time.sleep(rng.uniform(*interval))
                below = daemon.worker_pids()
                kill_times.append(time.time())
                daemon.kill9()
                report.daemon_kills += 1
                report.orphans += _reap_orphans(below)
                t0 = time.monotonic()
                daemon.start()
                report.restart_s.append(time.monotonic() - t0)
            for thread in threads:
                thread.stop.set()
            for thread in threads:
                thread.join(30)
            acked = [task_id for thread in threads for task_id in thread.acked]
            report.acked = len(acked)
            report.submit_errors = sum(thread.errors for thread in threads)
            client = daemon.client()
            t0 = time.monotonic()
            with contextlib.suppress(TimeoutError):  # what is left is reported as stuck
                poll(lambda: client.ping()["tasks"]["live"] == 0, drain_timeout, "final drain")
            report.drain_s = time.monotonic() - t0
            for task_id in acked:
                try:
                    status = client.status(task_id)
                except NotFound:
                    report.lost.append(task_id)
                    continue
                if not status.done:
                    report.stuck.append(f"{task_id} {status.state}")
                elif not status.succeeded:
                    report.failed.append(f"{task_id} {status.state}")
            tried = set().union(*(thread.tried for thread in threads))
            analyse(report, read_ledger(ledger), kill_times, tried)
        finally:
            for thread in threads:
                thread.stop.set()
            daemon.kill9()
            sweep_cgroups()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--worker-kills", type=int, default=15)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    print(run(args.kills, args.worker_kills, args.rate).summary())


if __name__ == "__main__":
    main()
