"""Fixtures of the reliability battery. Each check (benchmarks/reliability/) starts its own
daemons and kills them, and sweeps their cgroups, however it ends."""

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
