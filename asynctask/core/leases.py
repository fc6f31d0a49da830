"""Leases: which partitions this daemon may serve, and the lease writes that keep it so.

No I/O, no clock, no asyncio. ``plan`` takes the ``partitions`` table as this node last read
it, the live nodes' heartbeats, this node's own ``Holdings`` and ``now`` (this node's clock,
epoch seconds), and returns *actions*: ``Stop``, ``Release``, ``Renew``, ``HandOver``,
``Take``. The store adapter turns each write into one conditioned statement; ``LeaseTable`` is
the in-memory reference of those statements (what the ``WHERE`` clauses must say), used by the
property tests and the simulation.

The table. One row per partition: ``(partition, owner, epoch, expires_at)``. ``owner`` is a
node ID or NULL (free); ``expires_at`` is in the writer's clock. Plus one heartbeat row per
node, written in the same transaction as the renewals. Every write is a compare-and-set on
``(partition, epoch)``:

* ``Take``: ``epoch = read + 1, owner = me, expires_at = now + lease``
  ``WHERE epoch = read AND (owner IS NULL OR expires_at <= as_of)``;
* ``Renew``: ``expires_at = GREATEST(expires_at, now + lease)``
  ``WHERE epoch = held AND owner = me`` (and the heartbeat row);
* ``Release``: ``owner = NULL WHERE epoch = held AND owner = me``; ``Leave`` is the same for
  every lease held, and deletes the heartbeat row (a clean shutdown).

What a node believes. A node holds a partition only through its own *grants*: the rows its
own committed ``Take`` and ``Renew`` returned (``Holdings``). A read never creates or extends
a grant; it can only end one (a higher epoch seen means someone took it). A node may act for
a partition - dispatch its tasks, write their states - only while ``now < expires_at -
margin`` by its own clock (``held``); ``Stop`` is the planner noticing that it is over.

Invariants (``tests/core/test_leases.py`` checks each under arbitrary interleavings, delayed
and lost writes, pauses past the lease, crashes, joins and clock offsets within the bound):

* *Exclusive belief*: if every node's clock is within ``skew`` of true time and ``margin >=
  2 * skew``, then at every instant at most one node holds each partition, and that node is
  the table's owner at the table's epoch. Proof: a taker's ``as_of >= expires_at`` by its
  clock is true time ``>= expires_at - skew``; the holder's belief ended by true time
  ``expires_at - margin + skew``, which is no later. The table's ``expires_at`` only grows at
  a given epoch (``GREATEST``), and a grant is never longer than the row it came from, so the
  holder's deadline is never later than the one the taker compares with. A stale ``as_of``
  (a write delayed after its decision) only makes the take harder.
* *Fencing*: epochs only grow, every write is conditioned on the epoch it read, so a node
  that lost a partition (paused, cut off) can commit nothing for it afterwards. The store
  conditions every task write of a partition on the same epoch.
* *Stop before expiry*: a node whose renewals stop landing stops acting at ``expires_at -
  margin`` by its own clock, whether or not ``plan`` is called then (``held`` reads the
  clock); a release is issued only after the node has stopped (``Holdings.begin``).
* *Fair share and minimal movement* (``partitions.assign``): when membership is stable and
  the views agree, every partition ends with exactly one live owner, each node holds
  ``floor(P/N)`` or ``ceil(P/N)``, and a join or leave moves only the leases it must.

Graceful handover. A node above its share (a node joined) picks its excess deterministically,
so the newcomer computes the same set: ``HandOver`` stops dispatching it, running attempts end
within ``drain`` seconds, then ``Release``; the newcomer takes the free row at ``epoch + 1``.
Nothing else of the partition moves: the taker loads its live tasks from the table. An attempt
still running at the end of the drain is stopped by the daemon before the release and counts
as interrupted, as after a crash.

Liveness. A node is live while its heartbeat is younger than ``lease``. Heartbeats and
renewals share a transaction, so a dead node's leases and its membership lapse together, and
its partitions are taken within about one lease plus one heartbeat of its last renewal. A node
counts itself live only as the others see it - by its heartbeat in the table, or the last one
it knows landed - so a starting node's first round is a heartbeat alone: nodes that read the
same table then compute the same placement and never race for a partition (a race would be
safe, the CAS settles it, but it churns). A drain, once begun, runs to its release even if the
placement changes meanwhile; the partition may come back later at a higher epoch.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from asynctask.core.partitions import assign

NEVER = float("-inf")


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    """``[store] partitions`` and ``lease``, and the two derived bounds.

    ``heartbeat`` is the renewal period (``lease / 3`` by default, so two renewals may fail
    before a lease is at risk). ``margin`` is how early a holder stops before its lease ends:
    it must be at least twice the largest clock offset between any node and true time (NTP
    keeps it to milliseconds; the default second is generous). ``drain`` bounds a handover."""

    partitions: int = 64
    lease: float = 10.0
    heartbeat: float = 10.0 / 3
    margin: float = 1.0
    drain: float = 30.0

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError("partitions must be 1 or more")
        if self.lease <= 0 or self.heartbeat <= 0:
            raise ValueError("lease and heartbeat must be more than 0")
        if self.margin < 0 or self.drain < 0:
            raise ValueError("margin and drain must be 0 or more")
        if self.heartbeat + self.margin >= self.lease:
            raise ValueError("heartbeat + margin must be less than lease, or a lease lapses")

    @classmethod
    def for_lease(cls, lease: float, partitions: int = 64, **rest: float) -> LeaseSettings:
        """Settings with the heartbeat at a third of the lease and a margin of a tenth."""
        rest.setdefault("heartbeat", lease / 3)
        rest.setdefault("margin", lease / 10)
        return cls(partitions=partitions, lease=lease, **rest)


@dataclass(frozen=True, slots=True)
class Lease:
    """One row of the ``partitions`` table as read: ``owner`` None means free."""

    owner: str | None
    epoch: int
    expires_at: float


#: A partition with no row yet: free at epoch 0, so the first take writes epoch 1.
FREE = Lease(None, 0, NEVER)


@dataclass(frozen=True, slots=True)
class Grant:
    """What this node's own committed write established: its epoch, and when it lapses."""

    epoch: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class Take:
    """Take a free or expired partition: CAS from ``read_epoch`` to ``epoch``.

    ``as_of`` is the taker's clock at the decision; the table re-checks the expiry against it,
    so a holder's renewal that lands between the read and this write wins."""

    partition: int
    read_epoch: int
    epoch: int
    as_of: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Renew:
    """Heartbeat, and extend every held lease to ``expires_at``: one transaction, one UPDATE.

    Empty ``leases`` is a heartbeat alone, which is how a node with no partitions is seen."""

    leases: tuple[tuple[int, int], ...]  # (partition, epoch)
    at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Release:
    """Free a drained partition (the node has already stopped acting for it)."""

    partition: int
    epoch: int


@dataclass(frozen=True, slots=True)
class Leave:
    """Shutting down: release every lease held and delete the heartbeat, in one transaction.

    Deleting the heartbeat matters: while a leaver still counts as live, the others' placement
    keeps its share open for it and nobody takes what it freed until the heartbeat lapses."""

    leases: tuple[tuple[int, int], ...]  # (partition, epoch)


@dataclass(frozen=True, slots=True)
class HandOver:
    """Stop dispatching the partition and let its running attempts finish: graceful move."""

    partition: int


@dataclass(frozen=True, slots=True)
class Stop:
    """The lease lapsed or was lost: stop acting for the partition now, drop its tasks."""

    partition: int


Action = Take | Renew | Release | HandOver | Stop | Leave
Write = Take | Renew | Release | Leave


@dataclass
class Holdings:
    """This node's own knowledge: its grants, its drains, its last heartbeat.

    Separate from the table it reads because a read can be stale: only the node's own
    committed writes make it a holder. ``begin`` applies an action's local effect when it is
    issued (a stop or release takes effect before the write, never after); ``settle`` applies
    a write's outcome (``rows``: the row each partition has after the write, None where the
    CAS refused)."""

    me: str
    grants: dict[int, Grant] = field(default_factory=dict)
    draining: dict[int, float] = field(default_factory=dict)
    renewed_at: float = NEVER  # the last heartbeat sent (decided)
    beat: float = NEVER  # the last heartbeat that landed

    def begin(self, action: Action, now: float) -> None:
        match action:
            case Stop(partition) | Release(partition):
                self.grants.pop(partition, None)
                self.draining.pop(partition, None)
            case Leave():
                self.grants.clear()
                self.draining.clear()
            case HandOver(partition):
                self.draining.setdefault(partition, now)
            case Renew(at=at):
                self.renewed_at = max(self.renewed_at, at)
            case Take():
                pass

    def settle(self, write: Write, rows: Mapping[int, Lease | None]) -> None:
        match write:
            case Take(partition, epoch=epoch):
                row = rows.get(partition)
                if row is not None and row.owner == self.me and row.epoch == epoch:
                    self.grants[partition] = Grant(epoch, row.expires_at)
            case Renew(leases, at=at):
                self.beat = max(self.beat, at)
                for partition, epoch in leases:
                    grant = self.grants.get(partition)
                    if grant is None or grant.epoch != epoch:
                        continue  # stopped or released since: a late renewal revives nothing
                    row = rows.get(partition)
                    if row is None:  # refused: lost; stop at the next plan, act no more now
                        self.grants[partition] = Grant(epoch, NEVER)
                    else:
                        self.grants[partition] = Grant(epoch, max(grant.expires_at, row.expires_at))
            case Release() | Leave():
                pass


def held(holdings: Holdings, now: float, settings: LeaseSettings) -> dict[int, int]:
    """The partitions this node may act for now, with their epochs: the safety rule.

    Read the clock and call this before every dispatch and every fenced write, not only at
    plan time: a process can pause between two plans."""
    return {
        partition: grant.epoch
        for partition, grant in holdings.grants.items()
        if now < grant.expires_at - settings.margin
    }


def leave(holdings: Holdings, now: float, settings: LeaseSettings) -> Leave:
    """The last write of a clean shutdown, once its drain is over: free everything still held.

    Leases already lapsed by this node's clock are left to expire (the others treat them as
    free from then on); releasing them could free a partition someone has since taken - the
    epoch condition would refuse it, but there is nothing to gain."""
    return Leave(tuple(sorted(held(holdings, now, settings).items())))


def dispatching(holdings: Holdings, now: float, settings: LeaseSettings) -> set[int]:
    """The partitions whose tasks this node may start: held and not draining."""
    return set(held(holdings, now, settings)) - set(holdings.draining)


def live_nodes(nodes: Mapping[str, float], now: float, lease: float) -> set[str]:
    """Nodes whose heartbeat is younger than a lease."""
    return {node for node, seen in nodes.items() if now - seen < lease}


def owners_seen(
    table: Mapping[int, Lease], mine: Iterable[int], me: str, now: float
) -> dict[int, str]:
    """Valid owners as this node sees them: others from the table, itself from its grants.

    A table row naming this node that is not among its grants (released, stopped, or a take
    whose answer was lost) is not counted as its own: it becomes takeable when it expires."""
    owners = {
        partition: row.owner
        for partition, row in table.items()
        if row.owner is not None and row.owner != me and now < row.expires_at
    }
    owners.update(dict.fromkeys(mine, me))
    return owners


def plan(
    table: Mapping[int, Lease],
    nodes: Mapping[str, float],
    holdings: Holdings,
    busy: Collection[int],
    now: float,
    settings: LeaseSettings,
) -> list[Action]:
    """This node's lease actions, in the order to perform them: stops, releases, renewal,
    handovers, takes. Deterministic: the same inputs give the same list.

    ``table``: the rows as last read (missing means never taken). ``nodes``: heartbeat times
    by node ID. ``busy``: partitions with attempts running here (a drain waits for them)."""
    me = holdings.me
    actions: list[Action] = []
    valid: dict[int, Grant] = {}
    for partition in sorted(holdings.grants):
        grant = holdings.grants[partition]
        if (
            now >= grant.expires_at - settings.margin
            or table.get(partition, FREE).epoch > grant.epoch
        ):
            actions.append(Stop(partition))
        else:
            valid[partition] = grant
    owners = owners_seen(table, valid, me, now)
    for partition, since in sorted(holdings.draining.items()):
        if partition in valid and (partition not in busy or now >= since + settings.drain):
            actions.append(Release(partition, valid.pop(partition).epoch))
    if now - holdings.renewed_at >= settings.heartbeat / 2:
        leases = tuple((partition, grant.epoch) for partition, grant in valid.items())
        actions.append(Renew(leases, now, now + settings.lease))
    # This node counts itself live as the others see it, by its heartbeat (or the last one it
    # knows landed, if its read is older). Until then it only sends heartbeats: a node that
    # counted itself while the others did not would plan a different placement and race them.
    beats = {**nodes, me: max(nodes.get(me, NEVER), holdings.beat)}
    live = live_nodes(beats, now, settings.lease)
    if me not in live:
        return actions
    target = assign(owners, live, settings.partitions)
    takes: list[Action] = []
    for partition in range(settings.partitions):
        who = target.get(partition)
        if who != me:
            if partition in valid and partition not in holdings.draining:
                actions.append(HandOver(partition))
        elif partition not in holdings.grants:
            row = table.get(partition, FREE)
            if row.owner is None or now >= row.expires_at:
                expires_at = now + settings.lease
                takes.append(Take(partition, row.epoch, row.epoch + 1, now, expires_at))
    return actions + takes


class LeaseTable:
    """The ``partitions`` and heartbeat tables in memory, with the store's CAS semantics.

    The reference for the PostgreSQL statements (each method's docstring is its ``WHERE``)
    and the shared table of the property tests and the simulation. ``write`` returns the row
    each partition has after the write, None where the condition failed."""

    def __init__(self) -> None:
        self.rows: dict[int, Lease] = {}
        self.nodes: dict[str, float] = {}

    def row(self, partition: int) -> Lease:
        return self.rows.get(partition, FREE)

    def write(self, me: str, write: Write) -> dict[int, Lease | None]:
        match write:
            case Take():
                return {write.partition: self._take(me, write)}
            case Renew():
                self.nodes[me] = max(self.nodes.get(me, NEVER), write.at)
                return {p: self._renew(me, p, e, write.expires_at) for p, e in write.leases}
            case Release():
                return {write.partition: self._release(me, write.partition, write.epoch)}
            case Leave():
                self.nodes.pop(me, None)
                return {p: self._release(me, p, e) for p, e in write.leases}

    def _take(self, me: str, take: Take) -> Lease | None:
        """``WHERE partition = $p AND epoch = $read AND (owner IS NULL OR expires_at <=
        $as_of)``, setting ``epoch = epoch + 1``."""
        row = self.row(take.partition)
        if row.epoch != take.read_epoch or take.epoch != row.epoch + 1:
            return None
        if row.owner is not None and row.expires_at > take.as_of:
            return None
        self.rows[take.partition] = new = Lease(me, take.epoch, take.expires_at)
        return new

    def _renew(self, me: str, partition: int, epoch: int, expires_at: float) -> Lease | None:
        """``WHERE partition = $p AND epoch = $e AND owner = $me``, setting ``expires_at =
        GREATEST(expires_at, $expires_at)`` so a late renewal never shortens a lease."""
        row = self.row(partition)
        if row.epoch != epoch or row.owner != me:
            return None
        self.rows[partition] = new = Lease(me, epoch, max(row.expires_at, expires_at))
        return new

    def _release(self, me: str, partition: int, epoch: int) -> Lease | None:
        """``WHERE partition = $p AND epoch = $e AND owner = $me``, setting ``owner = NULL``;
        the epoch stays, and the next take raises it."""
        row = self.row(partition)
        if row.epoch != epoch or row.owner != me:
            return None
        self.rows[partition] = new = Lease(None, epoch, row.expires_at)
        return new
