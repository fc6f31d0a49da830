"""Fixtures shared across test folders: the storage-fault shim of the reliability battery
(``benchmarks/reliability/shim.py``), used by tests/reliability and the e2e storage-fault
tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.reliability import shim
from tests import pgcluster


@pytest.fixture(scope="session")
def shim_lib() -> Path:
    """The built fault shim, or a skip that says why it cannot be built here."""
    try:
        return shim.build()
    except shim.ShimUnavailable as exc:
        pytest.skip(f"faultshim unavailable: {exc}")


@pytest.fixture(scope="session", autouse=True)
def _stop_pgcluster() -> Iterator[None]:
    """Stop the private PostgreSQL cluster (``tests/pgcluster.py``) at the session's end, if a
    test started one."""
    yield
    pgcluster.stop()
