"""``nodes_view`` over the lease tables of the session's private cluster (``tests/pgcluster.py``),
written through ``PgLeases`` as daemons write them; and ``cluster_view``/``local_view``, the
pure shapes, from hand-made rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asynctask.core.leases import LeaseSettings, Renew, Take
from asynctask.daemon.nodesview import cluster_view, local_view, nodes_view
from asynctask.store.pgleases import NodeRow, PgLeases
from asynctask.store.postgres import PostgresStore
from tests import pgcluster

P = 8
SETTINGS = LeaseSettings.for_lease(10.0, partitions=P)
NOW = 1007.0


@pytest.fixture
async def leases(tmp_path: Path) -> AsyncIterator[dict[str, PgLeases]]:
    """Three nodes on a schema of this test's own, migrated by the store."""
    url = await pgcluster.url_for(tmp_path)
    store = await PostgresStore.open(url)
    await store.close()
    opened = {
        me: await PgLeases.open(url, me, pid=100 + i, host=f"host-{me}", started_at=900.0 + i)
        for i, me in enumerate(("a", "b", "c"))
    }
    yield opened
    for one in opened.values():
        await one.close()


async def test_the_view_lists_live_nodes_with_their_partitions_and_what_is_unowned(
    leases: dict[str, PgLeases],
) -> None:
    a, b, c = leases["a"], leases["b"], leases["c"]
    for p in (0, 1, 2):  # a holds 0-2 and renews them all
        await a.write(Take(p, 0, 1, 995.0, 1005.0))
    await a.write(Renew(((0, 1), (1, 1), (2, 1)), 1005.0, 1015.0), running=3)
    await b.write(Take(3, 0, 1, 994.0, 1004.0))
    await b.write(Take(4, 0, 1, 994.0, 1004.0))
    await b.write(Renew(((3, 1),), 1006.0, 1016.0), running=1)  # 4 not renewed: lapsed by NOW
    await c.write(Take(5, 0, 1, 996.0, 1010.0))  # unexpired at NOW, but ...
    await c.write(Renew(((5, 1),), 996.5, 1010.0))  # ... c's heartbeat is older than a lease

    view = await nodes_view(a, "a", SETTINGS, NOW)

    assert {k: v for k, v in view.items() if k != "nodes"} == {
        "cluster": True, "me": "a", "partitions": P, "lease": 10.0, "unowned": [4, 5, 6, 7],
    }  # fmt: skip
    assert view["nodes"] == [
        {"node": "a", "host": "host-a", "pid": 100, "started_at": 900.0, "heartbeat_at": 1005.0,
         "age": 2.0, "running": 3, "partitions": [0, 1, 2], "me": True},
        {"node": "b", "host": "host-b", "pid": 101, "started_at": 901.0, "heartbeat_at": 1006.0,
         "age": 1.0, "running": 1, "partitions": [3], "me": False},
    ]  # fmt: skip


async def test_any_node_sees_the_same_nodes_and_this_moments_running_count_replaces_its_own(
    leases: dict[str, PgLeases],
) -> None:
    a, b = leases["a"], leases["b"]
    await a.write(Renew((), 1005.0, 1015.0), running=3)
    await b.write(Take(7, 0, 1, 1005.5, 1015.5))
    await b.write(Renew(((7, 1),), 1006.0, 1016.0), running=1)

    from_b = await nodes_view(b, "b", SETTINGS, NOW, my_running=9)

    assert [(n["node"], n["running"], n["partitions"], n["me"]) for n in from_b["nodes"]] == [
        ("a", 3, [], False),
        ("b", 9, [7], True),
    ]
    assert from_b["unowned"] == [0, 1, 2, 3, 4, 5, 6]
    later = await nodes_view(b, "b", SETTINGS, 1015.0)  # a's heartbeat is now a lease old
    assert [n["node"] for n in later["nodes"]] == ["b"]


async def test_before_any_heartbeat_no_node_is_listed_and_every_partition_is_unowned(
    leases: dict[str, PgLeases],
) -> None:
    view = await nodes_view(leases["a"], "a", SETTINGS, NOW)
    assert (view["nodes"], view["unowned"]) == ([], list(range(P)))


def test_cluster_view_sorts_nodes_and_their_partitions() -> None:
    rows = [
        NodeRow("z", 99.0, 2, "h2", 1.0, 0, (6, 1)),
        NodeRow("m", 99.5, 1, None, None, 4, (3, 0, 2)),
    ]
    view = cluster_view(rows, "z", 8, 10.0, 100.0)
    assert [(n["node"], n["partitions"], n["age"], n["me"]) for n in view["nodes"]] == [
        ("m", [0, 2, 3], 0.5, False),
        ("z", [1, 6], 1.0, True),
    ]
    assert view["unowned"] == [4, 5, 7]


def test_a_heartbeat_from_a_clock_ahead_shows_age_zero_not_negative() -> None:
    (node,) = cluster_view([NodeRow("a", 101.0, 1, "h", 1.0, 0, ())], "a", 1, 10.0, 100.0)["nodes"]
    assert node["age"] == 0.0


def test_the_local_view_is_one_daemon_running_all_the_work() -> None:
    view = local_view(pid=42, host="box", started_at=50.0, running=2, now=60.0)
    assert view == {
        "cluster": False, "me": "local", "partitions": None, "lease": None, "unowned": [],
        "nodes": [{"node": "local", "host": "box", "pid": 42, "started_at": 50.0,
                   "heartbeat_at": 60.0, "age": 0.0, "running": 2, "partitions": None,
                   "me": True}],
    }  # fmt: skip
