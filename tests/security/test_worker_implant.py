"""A tenant's code left in a worker process never reaches another tenant's attempt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import DaemonProcess

ONE_WORKER = "[workers]\nmin_workers = 1\nmax_workers = 1\n"
TASKS = "tests.security.tasks_implant"


def test_an_implant_in_a_worker_sees_nothing_of_the_next_tenant(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    daemon = make_daemon(ONE_WORKER).start()
    spy = tmp_path / "spy.jsonl"
    implanted = daemon.client("mallory").submit(f"{TASKS}:implant", str(spy))
    implanted_pid = implanted.result(timeout=30)
    victim = daemon.client("victim").submit(f"{TASKS}:echo", "the victim's secret")
    secret, victim_pid = victim.result(timeout=30)
    assert secret == "the victim's secret"  # not the implant's forged result
    assert victim_pid != implanted_pid
    assert not spy.exists() or "the victim's secret" not in spy.read_text()
