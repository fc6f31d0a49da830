"""kill -9 of the daemon (3 times) and of its workers while producers submit: nothing
acknowledged is lost or stuck, and every extra execution is an attempt a kill interrupted
(benchmarks/reliability/killnine.py; `make soak` runs 30 daemon kills)."""

from __future__ import annotations

from benchmarks.reliability import killnine


def test_kill9_daemon_and_workers_loses_nothing_acknowledged() -> None:
    report = killnine.run(kills=3, worker_kills=2, rate=20.0, seed=3)
    assert report.daemon_kills == 3
    assert report.acked > 0
    assert report.executed_ids >= report.acked
    assert report.ok, (
        report.summary()
        + f"\nlost {report.lost[:5]} stuck {report.stuck[:5]} "
        + (
            f"failed {report.failed[:5]} unexplained {report.duplicates_unexplained[:5]} "
            f"unexpected {report.unexpected[:5]}"
        )
    )


def test_analysis_explains_only_duplicates_a_kill_interrupted() -> None:
    # the analysis itself must be able to fail: a re-run with no kill in between is a finding
    runs = {
        "a": [killnine.Execution("a", 1, 10, 1.0), killnine.Execution("a", 2, 11, 3.0)],
        "b": [killnine.Execution("b", 1, 10, 5.0, 5.1), killnine.Execution("b", 1, 12, 6.0)],
        "c": [killnine.Execution("c", 1, 10, 7.0, 7.1)],
    }
    report = killnine.Report()
    killnine.analyse(report, runs, kills=[2.0], tried={"a", "b"})
    assert report.duplicates_explained == 1
    assert len(report.duplicates_unexplained) == 1
    assert report.attempt_not_counted == ["b attempt 1 twice"]
    assert report.unexpected == ["c"]
    assert not report.ok
