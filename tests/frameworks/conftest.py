"""A real daemon for the framework examples: run from the repository root, so its workers
import ``examples.*`` as the examples' README lines say, through ``asynctask.testing``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from asynctask.testing.daemon import DaemonProcess, run_daemon

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root_daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[DaemonProcess]:
    """A daemon whose workers import from the repository root; ``ASYNCTASK_SOCKET`` points at it,
    as it would for an app started beside it."""
    with run_daemon(cwd=ROOT) as daemon:
        monkeypatch.setenv("ASYNCTASK_SOCKET", str(daemon.socket))
        yield daemon
