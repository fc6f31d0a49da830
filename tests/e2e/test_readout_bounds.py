"""Readouts cost what they show (docs/contract.md "Robustness", issue 14): one tenant with 20,000
queue names must not stall other clients while ``stats`` or ``metrics`` run, and neither
reply may grow with the number of queues.

The tenant is allowed that many queues on purpose (``max_queues``): the point is the cost of a
readout when the operator allows many, not the admission bound. Another client pings in a loop
on its own connection meanwhile; its worst round trip is the loop's longest stall, bounded
generously (250 ms) because the machine is small and shared. The figures are printed so a run
with ``-s`` shows them.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable

from tests.e2e.conftest import DaemonProcess

ADD = "tests.e2e.tasks:add"
QUEUES = 20_000
BATCH = 1_000
#: The longest another client's ping may take while a readout runs.
MAX_STALL = 0.25
#: Bytes a readout may take, whatever the number of queues.
MAX_STATS_BYTES = 1_000_000
MAX_METRICS_BYTES = 2_000_000

CONFIG = f"""
[tenants.many]
max_queues = {QUEUES + 10}
max_backlog = {QUEUES + 10}

[metrics]
http = "127.0.0.1:0"
"""


def _fill(daemon: DaemonProcess) -> None:
    """20,000 queues of the tenant ``many``, each with one task scheduled an hour ahead (so
    they stay in the backlog and the workers have nothing to do)."""
    many = daemon.client(tenant="many")
    for start in range(0, QUEUES, BATCH):
        many.submit_many(
            {"func": ADD, "args": (i, 1), "queue": f"q{i:05d}", "delay": 3600}
            for i in range(start, start + BATCH)
        )
    # A little activity on a few queues, so ranking by activity has something to rank.
    for i in range(5):
        many.submit(ADD, i, 2, queue=f"q{i:05d}").result(30)


def _while_pinging(daemon: DaemonProcess, readout: Callable[[], object]) -> tuple[float, float]:
    """Run ``readout`` while another client pings in a loop; (readout seconds, worst ping)."""
    pinger = daemon.client(tenant="other")
    pinger.ping()
    done = threading.Event()
    worst = [0.0]

    def ping_loop() -> None:
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            pinger.ping()
            worst[0] = max(worst[0], time.monotonic() - started)
            time.sleep(0.002)

    thread = threading.Thread(target=ping_loop)
    thread.start()
    started = time.monotonic()
    try:
        readout()
    except Exception as exc:  # measured all the same; the size check reports it
        print(f"readout failed: {exc!r:.200}")
    finally:
        took = time.monotonic() - started
        done.set()
        thread.join(130)
    return took, worst[0]


def _scrape(daemon: DaemonProcess) -> bytes:
    url = daemon.client().ping()["metrics_url"]
    token = (daemon.home / "metrics.token").read_text().strip()
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=120) as reply:
        body: bytes = reply.read()
    return body


def test_readouts_of_20000_queues_do_not_stall_other_clients(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon(CONFIG).start()
    _fill(daemon)
    admin = daemon.client()
    many = daemon.client(tenant="many")
    sizes: dict[str, int] = {"stats": -1, "metrics": -1, "http": -1, "queues": -1}
    shown: dict[str, object] = {}

    def stats() -> None:
        sizes["stats"] = len(json.dumps(many.stats(tenant="many")))

    def metrics() -> None:
        sizes["metrics"] = len(admin.metrics())

    def scrape() -> None:
        sizes["http"] = len(_scrape(daemon))

    def queues() -> None:
        report = many.queues()
        sizes["queues"] = len(json.dumps(report))
        shown.update(rows=len(report["queues"]), more=report.get("more"))

    figures = {}
    readouts = (("stats", stats), ("metrics", metrics), ("http", scrape), ("queues", queues))
    for name, readout in readouts:
        figures[name] = _while_pinging(daemon, readout)
    print()
    for name, (took, worst) in figures.items():
        print(
            f"{name}: {took * 1000:.0f} ms, worst ping {worst * 1000:.1f} ms, {sizes[name]} bytes"
        )
    for name, (_took, worst) in figures.items():
        assert worst < MAX_STALL, f"{name}: a ping waited {worst * 1000:.0f} ms"
    assert 0 < sizes["stats"] < MAX_STATS_BYTES
    assert 0 < sizes["metrics"] < MAX_METRICS_BYTES
    assert 0 < sizes["http"] < MAX_METRICS_BYTES
    assert shown == {"rows": 10_000, "more": {"queues": 10_000}}
