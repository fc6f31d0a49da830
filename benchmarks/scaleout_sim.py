"""Scale-out on paper: 100 daemons sharing the partition leases, simulated with the real planner.

    .venv/bin/python benchmarks/scaleout_sim.py [--nodes 100] [--tenants 10000]
        [--partitions 64 256 1024] [--lease 10] [--trials 5] [--seed 1]

Pure and discrete-time: no database, no asyncio. Every node runs the loop the daemon will run -
each heartbeat (``lease / 3``, at its own phase) it reads the table, calls
``asynctask.core.leases.plan`` and its writes land on a ``LeaseTable`` (the store's
compare-and-set semantics) - with clock offsets of up to 50 ms and running attempts that take
up to 2 s to drain. Prints, per partition count:

* balance: partitions and tenants per node once the cold start has settled;
* takeover: after ``kill -9`` of a node, until every partition it held is held again (seconds
  and lease periods), and how many leases moved;
* join: how many leases move to a new node, against the bound ``ceil(P / N)``, and how long
  the graceful handovers take; a clean leave (``Leave``): how many move;
* the database's load from the heartbeats.

It asserts the safety invariants as it goes (never two holders of one partition), so a run
that prints a table also exercised them at scale. Prints figures; asserts nothing else.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asynctask.core.leases import (
    Holdings,
    Lease,
    LeaseSettings,
    LeaseTable,
    Release,
    Renew,
    Take,
    held,
    leave,
    plan,
)
from asynctask.core.partitions import partition_of

SKEW = 0.05  # NTP-disciplined clocks
WORK = 2.0  # the longest running attempt a handover waits for
DT = 0.1  # simulation step, seconds


@dataclass
class Node:
    holdings: Holdings
    offset: float
    phase: float
    alive: bool = True
    next_round: float = 0.0
    view: dict[int, Lease] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)


class Sim:
    def __init__(self, nodes: int, settings: LeaseSettings, rng: random.Random) -> None:
        self.s = settings
        self.rng = rng
        self.t = 0.0
        self.table = LeaseTable()
        self.nodes: dict[str, Node] = {}
        self.renewals = 0
        self.takes = 0
        self.serial = 0
        for _ in range(nodes):
            self.join()

    def join(self) -> str:
        name = f"node-{self.serial:03d}"
        self.serial += 1
        phase = self.rng.uniform(0, self.s.heartbeat)
        offset = self.rng.uniform(-SKEW, SKEW)
        self.nodes[name] = Node(Holdings(name), offset, phase, next_round=self.t + phase)
        return name

    def clock(self, node: Node) -> float:
        return self.t + node.offset

    def live(self) -> list[Node]:
        return [node for node in self.nodes.values() if node.alive]

    def step(self) -> None:
        for node in self.live():
            if self.t < node.next_round:
                continue
            node.next_round += self.s.heartbeat
            node.view, node.seen = dict(self.table.rows), dict(self.table.nodes)
            now, h = self.clock(node), node.holdings
            busy = {p for p, since in h.draining.items() if now < since + WORK}
            for action in plan(node.view, node.seen, h, busy, now, self.s):
                h.begin(action, now)
                if isinstance(action, Take | Renew | Release):
                    rows = self.table.write(h.me, action)
                    h.settle(action, rows)
                    self.renewals += isinstance(action, Renew)
                    self.takes += isinstance(action, Take) and rows[action.partition] is not None
        self.t += DT
        self.check()

    def holders(self) -> dict[int, str]:
        found: dict[int, str] = {}
        for node in self.live():
            for partition in held(node.holdings, self.clock(node), self.s):
                assert partition not in found, f"partition {partition} held twice"
                found[partition] = node.holdings.me
        return found

    def check(self) -> None:
        self.holders()

    def balanced(self) -> bool:
        holders = self.holders()
        if len(holders) < self.s.partitions:
            return False
        n = len(self.live())
        counts = Counter(holders.values())
        low, high = self.s.partitions // n, -(-self.s.partitions // n)
        return all(low <= counts.get(node.holdings.me, 0) <= high for node in self.live())

    def run_until(self, done: Callable[[], bool], limit: float) -> float:
        start = self.t
        while not done():
            if self.t - start > limit:
                raise RuntimeError(f"not settled after {limit} s")
            self.step()
        return self.t - start

    def owners(self) -> dict[int, str]:
        return self.holders()


@dataclass
class Result:
    partitions: int
    parts: list[int]  # partitions per node
    load: list[int]  # tenants per node
    cold: float  # seconds until the cold start is balanced
    tx_rate: float  # heartbeat transactions per second, steady state
    takeover: list[float] = field(default_factory=list)  # seconds, per crash
    crash_moves: list[int] = field(default_factory=list)
    join_moves: list[int] = field(default_factory=list)
    join_time: list[float] = field(default_factory=list)
    leave_moves: int = 0
    leave_time: float = 0.0


def scenario(partitions: int, args: argparse.Namespace) -> Result:
    rng = random.Random(args.seed)
    s = LeaseSettings(partitions=partitions, lease=args.lease, heartbeat=args.lease / 3)
    sim = Sim(args.nodes, s, rng)
    cold = sim.run_until(sim.balanced, 60 * s.lease)
    settled = sim.t
    sim.run_until(lambda: sim.t >= settled + 2 * s.lease, 3 * s.lease)  # the churn is over

    # Balance: partitions and tenants per node.
    owners = sim.owners()
    per_node = Counter(owners.values())
    tenants = Counter(owners[partition_of(f"tenant-{n}", partitions)] for n in range(args.tenants))
    nodes = [node.holdings.me for node in sim.live()]
    parts = [per_node.get(node, 0) for node in nodes]
    load = [tenants.get(node, 0) for node in nodes]

    # Heartbeat load in a steady state: transactions and rows per second.
    renewals, t0 = sim.renewals, sim.t
    sim.run_until(lambda: sim.t >= t0 + 3 * s.lease, 4 * s.lease)
    tx_rate = (sim.renewals - renewals) / (sim.t - t0)

    r = Result(partitions, parts, load, cold, tx_rate)
    for _ in range(args.trials):
        # kill -9 a node that holds partitions, at a random moment of its heartbeat.
        for _ in range(int(rng.uniform(0, s.heartbeat) / DT)):
            sim.step()
        before = sim.owners()
        victim = rng.choice(sorted(set(before.values())))
        sim.nodes[victim].alive = False
        lost = {p for p, owner in before.items() if owner == victim}
        takes = sim.takes
        takeover = sim.run_until(lambda: lost <= set(sim.holders()), 5 * s.lease)  # noqa: B023
        r.takeover.append(takeover)
        sim.run_until(sim.balanced, 10 * s.lease)
        r.crash_moves.append(sim.takes - takes)
        # A new node joins: graceful handovers move its share to it.
        takes = sim.takes
        sim.join()
        r.join_time.append(sim.run_until(sim.balanced, 10 * s.lease))
        r.join_moves.append(sim.takes - takes)

    # A clean leave: drain, then Leave (release everything, delete the heartbeat).
    before, takes = sim.owners(), sim.takes
    leaver = sim.nodes[rng.choice(sorted(set(before.values())))]
    sim.table.write(leaver.holdings.me, leave(leaver.holdings, sim.clock(leaver), s))
    leaver.alive = False
    r.leave_time = sim.run_until(sim.balanced, 10 * s.lease)
    r.leave_moves = sim.takes - takes
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    lease, beat = args.lease, args.lease / 3
    print(
        f"# {args.nodes} daemons, {args.tenants} tenants, lease {lease:g} s, heartbeat "
        f"{beat:.2f} s, clock offsets <= {SKEW * 1000:.0f} ms, drain <= {WORK:g} s, "
        f"{args.trials} crash+join trials; {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.machine()}"
    )
    print()
    print(
        "| P | partitions/node | nodes with none | tenants/node min/mean/max | cold start s "
        "| takeover s (leases) median / max | moved on crash | moved on join (bound) "
        "| join settles s | moved on clean leave | heartbeat tx/s | rows updated/s |"
    )
    print("|" + "---|" * 12)
    for partitions in args.partitions:
        started = time.perf_counter()
        r = scenario(partitions, args)
        took = time.perf_counter() - started
        t, n = r.takeover, args.nodes
        print(
            f"| {partitions} | {min(r.parts)}-{max(r.parts)} "
            f"| {sum(1 for count in r.parts if count == 0)} "
            f"| {min(r.load)}/{statistics.mean(r.load):.0f}/{max(r.load)} | {r.cold:.1f} "
            f"| {statistics.median(t):.1f} ({statistics.median(t) / lease:.2f}) / "
            f"{max(t):.1f} ({max(t) / lease:.2f}) "
            f"| {'/'.join(map(str, r.crash_moves))} "
            f"| {'/'.join(map(str, r.join_moves))} ({math.ceil(partitions / (n + 1))}) "
            f"| {statistics.median(r.join_time):.1f} | {r.leave_moves} "
            f"| {r.tx_rate:.1f} | {r.tx_rate * (1 + partitions / n):.0f} |",
            flush=True,
        )
        print(f"<!-- P={partitions}: simulated in {took:.1f} s -->", file=sys.stderr)
    print()
    print(
        f"Limits. Partitions versus nodes: min(N, P) nodes hold partitions and the others "
        f"stand by (at N={args.nodes}, P=64 leaves {max(0, args.nodes - 64)} idle); P is fixed "
        f"for the cluster's life, so pick P >= the most nodes ever planned (256 or 1024)."
    )
    print(
        "Database writes: each node heartbeats once per heartbeat (lease / 3), one "
        "transaction updating its heartbeat row and its ~P/N lease rows:"
    )
    for nodes in (10, 100, 1000):
        rates = ", ".join(
            f"lease {lease:g} s: {nodes / (lease / 3):.0f} tx/s" for lease in (10.0, 30.0)
        )
        print(f"  N={nodes}: {rates}")


if __name__ == "__main__":
    main()
