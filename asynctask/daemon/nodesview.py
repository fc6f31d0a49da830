"""What ``asynctask nodes`` shows: the live daemons of a cluster, or the one daemon of SQLite.

The reply of the ``nodes`` op, as plain values for the wire:

``{"cluster", "me", "partitions", "lease", "nodes": [...], "unowned": [...]}``

* ``cluster``: true when the daemons share a PostgreSQL store (``[store] url``).
* ``me``: the ID of the daemon that answered (``"local"`` on SQLite).
* ``partitions``, ``lease``: ``[store] partitions`` and ``lease`` (seconds); null on SQLite,
  where nothing is partitioned.
* ``nodes``: one map per live daemon, sorted by ID: ``node``, ``host``, ``pid``,
  ``started_at`` and ``heartbeat_at`` (epoch seconds), ``age`` (seconds since that heartbeat,
  by the answering daemon's clock), ``running`` (attempts running there at that heartbeat),
  ``partitions`` (the partitions whose lease it holds, ascending; null on SQLite: all work is
  local) and ``me`` (whether it is the daemon that answered).
* ``unowned``: the partitions no live daemon holds (ascending): free, or leased to a daemon
  whose heartbeat is older than one lease (it is dead or cut off; the survivors take them).

A node is live while its heartbeat is younger than one lease (``core.leases.live_nodes``;
``PgLeases.nodes`` applies it). A daemon that has just started is not listed until its first
heartbeat is in the table, so ``me`` may name no row.

Read-only, and no clock here: the caller passes ``now``, as everywhere in the lease code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from asynctask.core.leases import LeaseSettings
    from asynctask.store.pgleases import NodeRow

#: The one daemon of a SQLite store, as ``nodes`` names it.
LOCAL_NODE = "local"


class NodeSource(Protocol):
    """What ``nodes_view`` reads: ``PgLeases.nodes`` (or anything answering as it does)."""

    async def nodes(self, now: float, lease: float) -> list[NodeRow]: ...


async def nodes_view(
    leases: NodeSource,
    me: str,
    settings: LeaseSettings,
    now: float,
    *,
    my_running: int | None = None,
) -> dict[str, Any]:
    """The cluster's live nodes from the lease tables (one read). ``now`` is the caller's
    epoch seconds; ``my_running``, when given, replaces this node's ``running`` from its last
    heartbeat with the figure of this moment."""
    rows = await leases.nodes(now, settings.lease)
    return cluster_view(rows, me, settings.partitions, settings.lease, now, my_running)


def cluster_view(
    rows: Sequence[NodeRow],
    me: str,
    partitions: int,
    lease: float,
    now: float,
    my_running: int | None = None,
) -> dict[str, Any]:
    """``nodes_view``'s answer from rows already read (a pure function: the tests feed it)."""
    nodes = []
    owned: set[int] = set()
    for row in sorted(rows, key=lambda r: r.node):
        held = sorted(row.partitions)
        owned.update(held)
        mine = row.node == me
        nodes.append(
            {
                "node": row.node,
                "host": row.host,
                "pid": row.pid,
                "started_at": row.started_at,
                "heartbeat_at": row.heartbeat_at,
                "age": max(0.0, now - row.heartbeat_at),
                "running": my_running if mine and my_running is not None else row.running,
                "partitions": held,
                "me": mine,
            }
        )
    return {
        "cluster": True,
        "me": me,
        "partitions": partitions,
        "lease": lease,
        "nodes": nodes,
        "unowned": [p for p in range(partitions) if p not in owned],
    }


def local_view(
    *, pid: int, host: str | None, started_at: float, running: int, now: float
) -> dict[str, Any]:
    """The one daemon of a SQLite store, in the same shape: it is its own heartbeat (age 0),
    holds no partition because nothing is partitioned (``partitions`` null), and runs all work."""
    return {
        "cluster": False,
        "me": LOCAL_NODE,
        "partitions": None,
        "lease": None,
        "nodes": [
            {
                "node": LOCAL_NODE,
                "host": host,
                "pid": pid,
                "started_at": started_at,
                "heartbeat_at": now,
                "age": 0.0,
                "running": running,
                "partitions": None,
                "me": True,
            }
        ],
        "unowned": [],
    }
