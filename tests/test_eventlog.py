"""EventLog: the daemon's log lines about limit kills, AIMD moves, refusals and confinement.

Driven by a real ``Scheduler`` and a fake clock and timer, as the daemon drives it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import pytest

from asynctask.core.limits import SchedulerSettings
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Scheduler
from asynctask.core.sharding import ShardSettings
from asynctask.daemon.eventlog import REFUSAL_LOG_INTERVAL, EventLog
from asynctask.errors import SubmitThrottled
from asynctask.model import ErrorKind, LiveTask, error_dict
from tests.core.helpers import make_task

THROTTLED = error_dict(ErrorKind.THROTTLED, "Throttled", "slow down")
DIED = error_dict(ErrorKind.WORKER_DIED, "WorkerDied", "worker exited")


class Harness:
    """A scheduler, an EventLog on it, a settable clock and the timers it asked for."""

    def __init__(self, settings: SchedulerSettings | None = None) -> None:
        self.scheduler = Scheduler(RetryPolicy(base=0.5, cap=1.0), random.Random(0), settings)
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.events = EventLog(self.scheduler, lambda: self.now, self._later)

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        self.timers.append((self.now + delay, callback))

    def fire_due(self) -> None:
        due = [entry for entry in self.timers if entry[0] <= self.now]
        self.timers = [entry for entry in self.timers if entry[0] > self.now]
        for _, callback in due:
            callback()

    def run_one(self, tenant: str = "default", shard_count: int = 0) -> LiveTask:
        self.scheduler.add(make_task(tenant=tenant, retries=0), self.now)
        free: int | list[int] = [1] * shard_count if shard_count else 1
        (action,) = [a for a in self.scheduler.dispatch(self.now, free) if isinstance(a, Dispatch)]
        return action.task

    def succeed(self, task: LiveTask) -> None:
        self.scheduler.succeeded(task, b"\xc0", self.now)
        self.events.outcome(task, None, 42, self.now)

    def fail(self, task: LiveTask, error: dict[str, str]) -> None:
        self.scheduler.attempt_failed(task, error, self.now)
        self.events.outcome(task, error, 42, self.now)


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def test_an_aimd_cut_is_logged_once_with_its_numbers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "asynctask")
    harness = Harness(SchedulerSettings(capacity=8))
    for _ in range(5):
        harness.succeed(harness.run_one())  # at its start value: nothing to say
    assert events(caplog, "aimd") == []
    for _ in range(3):  # the third throttle meets min_throttles (3) and the ratio: one cut
        harness.now += 0.1
        harness.fail(harness.run_one(), THROTTLED)
    (cut,) = events(caplog, "aimd")
    fields = cut.__dict__
    assert (fields["function"], fields["previous"], fields["limit"]) == ("m:f", 8, 4)
    assert fields["reason"] == "cut"
    assert (fields["window_attempts"], fields["window_throttles"]) == (8, 3)
    assert cut.getMessage().startswith("aimd: m:f may run 4 at once (was 8)")


def test_an_aimd_increase_is_logged_as_such(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "asynctask")
    harness = Harness(SchedulerSettings(capacity=8))
    for _ in range(3):
        harness.now += 0.1
        harness.fail(harness.run_one(), THROTTLED)
    # Successes with backlog add increase / L each: 5 of them take the limit from 4 to 5.
    harness.scheduler.add(make_task(retries=0), harness.now)  # the backlog
    for _ in range(5):
        harness.now += 0.1
        harness.succeed(harness.run_one())
    moves = [
        (r.__dict__["previous"], r.__dict__["limit"], r.__dict__["reason"])
        for r in events(caplog, "aimd")
    ]
    assert moves == [(8, 4, "cut"), (4, 5, "increase")]


def test_limit_kills_timeouts_and_crashes_are_logged_other_errors_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "asynctask")
    harness = Harness()
    kinds = [
        ErrorKind.MEMORY_LIMIT,
        ErrorKind.CPU_LIMIT,
        ErrorKind.TIMEOUT,
        ErrorKind.WORKER_DIED,
        ErrorKind.EXCEPTION,
        ErrorKind.FAIL,
    ]
    for kind in kinds:
        harness.fail(harness.run_one(), error_dict(kind, "E", f"{kind} happened"))
    logged = [
        (r.__dict__["event"], r.__dict__["kind"]) for r in caplog.records if hasattr(r, "kind")
    ]
    assert logged == [
        ("limit_kill", "memory_limit"),
        ("limit_kill", "cpu_limit"),
        ("timeout", "timeout"),
        ("worker_died", "worker_died"),
    ]
    first = events(caplog, "limit_kill")[0]
    assert first.levelno == logging.WARNING
    assert first.__dict__["pid"] == 42
    assert "memory_limit happened" in first.getMessage()


def test_refusals_are_logged_once_per_interval_with_the_rest_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "asynctask")
    harness = Harness()
    refusal = SubmitThrottled("throttled", retry_after=3.0)
    for _ in range(5):
        harness.events.refused("acme", 10, refusal, harness.now)
        harness.now += 0.5
    harness.events.refused("other", 1, refusal, harness.now)  # another tenant: its own line
    harness.now = REFUSAL_LOG_INTERVAL + 0.1
    harness.events.refused("acme", 2, refusal, harness.now)
    lines = [
        (r.__dict__["tenant"], r.__dict__["tasks"], r.__dict__["suppressed"])
        for r in events(caplog, "refused")
    ]
    assert lines == [("acme", 10, 0), ("other", 1, 0), ("acme", 2, 40)]
    assert events(caplog, "refused")[0].__dict__["retry_after"] == 3.0


def test_a_fault_confinement_and_its_release_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "asynctask")
    sharding = ShardSettings(
        shards=4,
        per_tenant=1,
        fault_threshold=2,
        fault_window=60.0,
        probation=0,
        fault_backoff=0.001,
    )
    harness = Harness(SchedulerSettings(capacity=8, sharding=sharding))
    own = list(harness.scheduler.shards_of("bad"))
    harness.fail(harness.run_one("bad", 4), DIED)
    assert events(caplog, "confined") == []  # one fault: below the threshold
    harness.now = 1.0
    harness.fail(harness.run_one("bad", 4), DIED)
    (confined,) = events(caplog, "confined")
    assert confined.__dict__["tenant"] == "bad"
    assert confined.__dict__["shards"] == own
    assert confined.__dict__["seconds"] == 60.0
    harness.now = 30.0  # another fault pushes the end on to 90 s: the timer at 61 s waits on
    harness.fail(harness.run_one("bad", 4), DIED)
    assert len(events(caplog, "confined")) == 1
    harness.now = 61.0
    harness.fire_due()
    assert events(caplog, "released") == []
    harness.now = 90.0
    harness.fire_due()
    (released,) = events(caplog, "released")
    assert released.__dict__["reason"] == "faults"
    assert released.__dict__["confinement"] is None


def test_leaving_probation_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "asynctask")
    sharding = ShardSettings(shards=4, per_tenant=1, probation=3)
    harness = Harness(SchedulerSettings(capacity=8, sharding=sharding))
    for _ in range(5):
        harness.succeed(harness.run_one("new", 4))
    (released,) = events(caplog, "released")
    assert released.__dict__["tenant"] == "new"
    assert released.__dict__["reason"] == "probation"


def test_repr_shows_what_it_tracks() -> None:
    harness = Harness()
    harness.events.refused("acme", 1, SubmitThrottled("x", 1.0), 0.0)
    assert repr(harness.events) == "<EventLog refusing=1>"
