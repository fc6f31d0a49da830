"""A daemon restarted on a long stored backlog serves while the rest loads: it says READY=1
(it answers), its status line and ``health`` say it is still loading (not ready: nothing is
dispatched yet), and both change once the load is over."""

from __future__ import annotations

from pathlib import Path

from asynctask.cli.probe import probe
from asynctask.daemon.recovery import BEFORE_SERVING
from tests.deploy.test_notify import NotifySocket
from tests.e2e.conftest import poll


def test_health_and_status_follow_a_long_backlogs_load(wrapped_daemon, tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    notify = NotifySocket(str(path))
    try:
        daemon = wrapped_daemon(env={"NOTIFY_SOCKET": str(path)}).start()
        notify.until("READY")
        client = daemon.client(tenant="bulk")
        client.pause(tenant="bulk")  # kept queued: the next start has them all to load
        count = BEFORE_SERVING + 30_000
        for _ in range(count // 5_000):
            client.submit_many(
                {"func": "tests.e2e.tasks:add", "args": [1, 2]} for _ in range(5_000)
            )
        assert daemon.stop() == 0
        notify.until("STOPPING")

        daemon.start()
        ready, _, _ = notify.until("READY")
        found, info = probe(daemon.socket, daemon.home, 5.0, live=False)
        assert info is not None
        assert info["loading"] is True  # the rest of the backlog still loads
        assert "loading the stored backlog" in ready["STATUS"]
        assert (found.ok, found.code) == (False, 2)
        assert found.reason.startswith("loading the stored backlog: nothing is dispatched yet")
        assert probe(daemon.socket, daemon.home, 5.0, live=True)[0].ok

        loaded, _, _ = notify.until("STATUS")
        while "stored tasks loaded" not in loaded["STATUS"]:
            loaded, _ = notify.receive()
        assert loaded["STATUS"] == f"serving on {daemon.socket}; {count} stored tasks loaded"
        poll(lambda: probe(daemon.socket, daemon.home, 5.0, live=False)[0].ok, timeout=60)
    finally:
        notify.close()
