"""Fixtures shared across test folders: the storage-fault shim of the reliability battery
(``benchmarks/reliability/shim.py``), used by tests/reliability and the e2e storage-fault
tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.reliability import shim


@pytest.fixture(scope="session")
def shim_lib() -> Path:
    """The built fault shim, or a skip that says why it cannot be built here."""
    try:
        return shim.build()
    except shim.ShimUnavailable as exc:
        pytest.skip(f"faultshim unavailable: {exc}")
