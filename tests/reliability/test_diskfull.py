"""A failing disk (benchmarks/reliability/diskfull.py): the home on a small tmpfs filled to the
last byte (root only: mount), and every fsync failing with EIO through faultshim. Either way
submits are refused, nothing acknowledged is lost, the daemon's view and the database agree
(also after a restart), reads keep working, and the same daemon process takes submits again once
the disk recovers (docs/contract.md "Robustness")."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.reliability import diskfull


@pytest.fixture(scope="module")
def full() -> diskfull.Report:
    try:
        return diskfull.run(size="24M")
    except diskfull.MountUnavailable as exc:
        pytest.skip(f"disk-full check needs a tmpfs mount: {exc}")


@pytest.fixture(scope="module")
def eio(shim_lib: Path) -> diskfull.Report:
    return diskfull.run_eio(shim_lib)


@pytest.fixture(params=["full", "eio"])
def report(request: pytest.FixtureRequest) -> diskfull.Report:
    result: diskfull.Report = request.getfixturevalue(request.param)
    return result


def test_the_check_ran_and_submits_were_refused(report: diskfull.Report) -> None:
    assert not report.error, report.summary()
    assert report.refused > 0, report.summary()


def test_nothing_acknowledged_is_lost_and_daemon_and_database_agree(
    report: diskfull.Report,
) -> None:
    assert report.reads_ok, report.summary()
    assert report.lost == [], report.summary()
    assert report.split == [], report.summary()
    assert report.changed_by_restart == [], report.summary()


def test_a_full_disk_resumes_without_a_restart(full: diskfull.Report) -> None:
    assert full.resumed_after_s is not None, full.summary()
    assert full.same_process, full.summary()


def test_an_io_error_stops_the_daemon_for_a_restart_that_resumes(eio: diskfull.Report) -> None:
    """fsyncgate: after a failed fsync the kernel may have dropped the unwritten pages, so the
    daemon must not go on writing to the same files; it exits 75 for its supervisor."""
    assert eio.exit_code == 75, eio.summary()
    assert eio.resumed_after_s is not None, eio.summary()
    assert len(eio.in_doubt) <= 1, eio.summary()  # only the request in flight at the error


def test_a_storage_failure_is_a_typed_storage_error(report: diskfull.Report) -> None:
    assert report.typed, report.summary()
