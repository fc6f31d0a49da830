"""Fixtures of the reliability battery: the fault shim (or a skip saying why not), and daemons
that are always killed when a test ends, however it ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks.reliability import shim
from benchmarks.reliability.common import Daemon, sweep_cgroups


@pytest.fixture(scope="session")
def shim_lib() -> Path:
    try:
        return shim.build()
    except shim.ShimUnavailable as exc:
        pytest.skip(f"faultshim unavailable: {exc}")


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def factory(home: Path | None = None, **kwargs: object) -> Daemon:
        daemon = Daemon(home or tmp_path / "home", **kwargs)  # type: ignore[arg-type]
        made.append(daemon)
        return daemon

    yield factory
    for daemon in made:
        daemon.kill9()
    sweep_cgroups()
