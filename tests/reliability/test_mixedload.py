"""A short run of the soak's mixed failure load (benchmarks/reliability/mixedload.py): tasks
that raise, time out and kill their worker, at a steady rate; every acknowledged one ends as
its kind says, and the daemon is sampled throughout (`make soak` runs it for minutes)."""

from __future__ import annotations

import pytest

from benchmarks.reliability import mixedload


@pytest.mark.slow  # `make test-slow`: keeps `make test` within its 15 minutes
def test_mixed_failure_load_every_task_ends_as_its_kind_says() -> None:
    report = mixedload.run(duration=6.0, rate=20.0, hang_share=0.05, exit_share=0.05, seed=4)
    assert report.submitted > 50, report.summary()
    assert report.ok, report.summary() + f"\n{report.stuck[:5]} {report.wrong_outcome[:5]}"
    assert report.samples, "the sampler saw nothing"
    first, peak, _ = report.figures("rss_mib")
    assert peak < first + 100, report.summary()  # a short run cannot grow by 100 MiB
