"""Partitions: which partition a tenant lives in, and which live node should hold each one.

Two pure functions the lease planner (``leases.py``) and the simulation build on.

``partition_of`` maps a tenant to one of ``P`` partitions with a keyed BLAKE2b of its UTF-8
name, not Python's ``hash`` (salted per process, so two daemons would disagree). The map is
fixed for the life of a cluster: changing ``[store] partitions`` moves almost every tenant,
so it is a migration, not a reload. 64 bits of digest modulo ``P`` (at most a few thousand)
is uniform to within ``P / 2**64``.

``assign`` is the placement every node computes from its own view of the table. It is a
function of the current owners and the live set alone (no node ID of the caller, no clock, no
randomness), so nodes that see the same table agree on who should take what without talking.
Its rules:

* *fair share*: with ``N`` live nodes each gets ``floor(P/N)`` or ``ceil(P/N)`` partitions; the
  ``P mod N`` larger shares go to the nodes that hold the most now (ties by node ID), so a
  node is not asked to give up a partition only to receive another;
* *stickiness*: a live node keeps ``min(held, share)`` of the partitions it holds - the ones
  ranked highest by a hash of (node, partition), so the choice is stable from one call to
  the next and the same on every node;
* *minimal movement*: only the unowned partitions (free, expired, or held by a node that is no
  longer live) and each node's excess go to the pool, and the pool fills exactly the nodes
  below their share (``len(pool) == sum of deficits``). A partition moves only if its owner is
  gone or above its share, so a join moves ``floor(P/N_new)`` or ``ceil(P/N_new)`` leases
  (the newcomer's share) and a leave moves exactly the leaver's partitions.

With more nodes than partitions (``N > P``) the shares are 0 or 1: ``N - P`` nodes hold
nothing and serve only as standbys and as entry points for requests.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Collection, Mapping

#: Separates this digest from any other use of BLAKE2b on tenant names (the personalisation).
_PERSON = b"asynctask-part"


def partition_of(tenant: str, partitions: int) -> int:
    """The tenant's partition in ``range(partitions)``: stable across processes and machines.

    ``surrogatepass`` keeps the function total for any ``str`` (names are validated elsewhere;
    a hash that raises would take a daemon down on a bad name)."""
    if partitions < 1:
        raise ValueError("partitions must be 1 or more")
    digest = hashlib.blake2b(
        tenant.encode("utf-8", "surrogatepass"), digest_size=8, person=_PERSON
    ).digest()
    return int.from_bytes(digest, "big") % partitions


def shares(live: Collection[str], held: Mapping[str, int], partitions: int) -> dict[str, int]:
    """Each live node's fair share: ``P // N`` plus one for the ``P % N`` nodes holding most.

    Giving the larger shares to the nodes that already hold more is what keeps movement
    minimal: a node with ``ceil`` partitions is never cut to ``floor`` while another node with
    ``floor`` is raised to ``ceil``."""
    nodes = sorted(set(live))
    if not nodes:
        return {}
    base, extra = divmod(partitions, len(nodes))
    order = sorted(nodes, key=lambda node: (-held.get(node, 0), node))
    return {node: base + (1 if i < extra else 0) for i, node in enumerate(order)}


def _rank(node: str, partition: int) -> int:
    """A node's preference for keeping a partition: any fixed, well-mixed order would do."""
    return zlib.crc32(f"{partition}/{node}".encode("utf-8", "surrogatepass"))


def assign(owners: Mapping[int, str], live: Collection[str], partitions: int) -> dict[int, str]:
    """Who should hold each partition: ``{partition: node}`` over ``range(partitions)``.

    ``owners`` holds the partitions whose lease is valid now, by owner; an owner that is not in
    ``live`` counts as gone. Empty when no node is live."""
    nodes = sorted(set(live))
    if not nodes:
        return {}
    mine: dict[str, list[int]] = {node: [] for node in nodes}
    pool: list[int] = []
    for partition in range(partitions):
        owner = owners.get(partition)
        if owner is not None and owner in mine:
            mine[owner].append(partition)
        else:
            pool.append(partition)
    share = shares(nodes, {node: len(held) for node, held in mine.items()}, partitions)
    placed: dict[int, str] = {}
    slots: list[str] = []
    for node in nodes:
        kept = [p for _, p in sorted((-_rank(node, p), p) for p in mine[node])]
        for partition in kept[: share[node]]:
            placed[partition] = node
        pool.extend(kept[share[node] :])
        slots.extend([node] * max(0, share[node] - len(kept)))
    # Every partition not kept is in the pool and every share not filled is a slot: the two
    # counts are equal (both are P - sum of min(held, share)), so strict zip cannot fail.
    for partition, node in zip(sorted(pool), slots, strict=True):
        placed[partition] = node
    return placed
