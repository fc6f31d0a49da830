"""Soak under a mixed failure load: does the daemon's footprint stay flat while tasks misbehave?

A steady submit rate for ``duration`` seconds, of which 10 % of tasks raise (retried, then
failed), ``hang_share`` sleep past their 1 s timeout (killed, retried), ``exit_share`` kill their
worker with ``os._exit`` (retried) and the rest sleep a few ms. Every ``interval`` the daemon's
RSS, open fds, threads and WAL size are sampled (benchmarks/reliability/common.sample). After a
final drain the report gives, per metric, the first sample, the peak and the final one (growth
from first to final under a steady load is the leak signal), and the tasks' outcomes: every
acknowledged task must end (succeeded or failed as its kind says), none lost, none stuck.

    .venv/bin/python -m benchmarks.reliability.mixedload [--duration 120] [--rate 20]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from asynctask.errors import AsynctaskError, NotFound
from benchmarks.reliability.common import Daemon, config_text, poll, sample, sweep_cgroups

CONFIG = (
    '[workers]\nmin_workers = 2\nmax_workers = 4\nkill_grace = "200ms"\n'
    '[retry]\nretries = 2\nbackoff_base = "50ms"\nbackoff_cap = "500ms"\n'
    # Timeouts and os._exit break workers, and a tenant that breaks workers is confined and
    # backs off up to 30 s per attempt by default (README, "Security model"): by design, but it
    # would stretch the drain to many minutes. The soak measures footprint, so shorter.
    '[scheduler]\nfault_backoff = "50ms"\nfault_backoff_max = "500ms"\n'
)
FUNCTION = "benchmarks.reliability.tasks:mixed"
METRICS = ("rss_mib", "fds", "threads", "wal_mib")


@dataclass
class Report:
    duration_s: float = 0.0
    rate: float = 0.0
    submitted: int = 0
    submit_errors: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    wrong_outcome: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    drain_s: float = 0.0
    daemon_died: bool = False

    def figures(self, metric: str) -> tuple[float, float, float]:
        """(first, peak, final) of one sampled metric."""
        values = [s[metric] for _, s in self.samples]
        return (values[0], max(values), values[-1]) if values else (0.0, 0.0, 0.0)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.stuck or self.wrong_outcome or self.daemon_died)

    def summary(self) -> str:
        metrics = ", ".join(
            f"{name} {first:.1f}/{peak:.1f}/{final:.1f}"
            for name in METRICS
            for first, peak, final in [self.figures(name)]
        )
        kinds = " ".join(f"{k}={v}" for k, v in sorted(self.kinds.items()))
        outcomes = " ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items()))
        return (
            f"{self.duration_s:.0f} s at {self.rate:.0f}/s: {self.submitted} acked ({kinds}); "
            f"outcomes {outcomes}; lost {len(self.lost)}, stuck {len(self.stuck)}, "
            f"wrong outcome {len(self.wrong_outcome)}, daemon died: "
            f"{'YES' if self.daemon_died else 'no'}; drain {self.drain_s:.1f} s; "
            f"first/peak/final: {metrics} ({len(self.samples)} samples)"
        )


def _kind(rng: random.Random, hang_share: float, exit_share: float) -> str:
    roll = rng.random()
    if roll < 0.10:
        return "raise"
    if roll < 0.10 + hang_share:
        return "hang"
    if roll < 0.10 + hang_share + exit_share:
        return "exit"
    return "ok"


def run(
    duration: float = 120.0,
    rate: float = 20.0,
    hang_share: float = 0.02,
    exit_share: float = 0.02,
    interval: float = 0.5,
    drain_timeout: float = 120.0,
    seed: int = 0,
) -> Report:
    rng = random.Random(seed)
    report = Report(duration_s=duration, rate=rate)
    with tempfile.TemporaryDirectory(prefix="asynctask-mixed-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        ledger = work / "ledger.txt"
        ledger.touch()
        ledger.chmod(0o666)
        daemon = Daemon(work / "home", config=config_text("full", CONFIG))
        stop = threading.Event()

        def sampler() -> None:
            while not stop.is_set():
                with contextlib.suppress(OSError, StopIteration):
                    report.samples.append((time.monotonic(), sample(daemon.pid, daemon.home)))
                stop.wait(interval)

        thread = threading.Thread(target=sampler, name="sampler", daemon=True)
        try:
            daemon.start()
            thread.start()
            client = daemon.client()
            kinds: dict[str, str] = {}
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < duration:
                kind = _kind(rng, hang_share, exit_share)
                task_id = f"m-{n:06d}"
                try:
                    client.submit(
                        FUNCTION,
                        str(ledger),
                        kind,
                        rng.uniform(0.0, 0.02),
                        task_id=task_id,
                        timeout="1s",
                    )
                except AsynctaskError:
                    report.submit_errors += 1
                else:
                    kinds[task_id] = kind
                n += 1
                next_at = start + n / rate
                time.sleep(max(0.0, next_at - time.monotonic()))
            report.submitted = len(kinds)
            report.kinds = Counter(kinds.values())
            t0 = time.monotonic()
            with contextlib.suppress(TimeoutError, AsynctaskError):
                poll(lambda: client.ping()["tasks"]["live"] == 0, drain_timeout, "drain")
            report.drain_s = time.monotonic() - t0
            time.sleep(interval * 2)  # a sample or two of the idle daemon after the drain
            stop.set()
            thread.join(10)
            report.daemon_died = not daemon.alive()
            if not report.daemon_died:
                _outcomes(report, daemon, kinds)
        finally:
            stop.set()
            daemon.kill9()
            sweep_cgroups()
    return report


def _outcomes(report: Report, daemon: Daemon, kinds: dict[str, str]) -> None:
    client = daemon.client()
    for task_id, kind in kinds.items():
        try:
            status = client.status(task_id)
        except NotFound:
            report.lost.append(task_id)
            continue
        state = str(status.state)
        report.outcomes[state] += 1
        if not status.done:
            report.stuck.append(f"{task_id} {kind} {state}")
        elif (state == "succeeded") != (kind == "ok"):
            report.wrong_outcome.append(f"{task_id} {kind} {state}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    print(run(args.duration, args.rate).summary())


if __name__ == "__main__":
    main()
