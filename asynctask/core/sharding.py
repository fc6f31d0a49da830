"""Shuffle sharding of the worker pool, and confinement of tenants whose tasks break workers.

The pool's workers are split into ``W`` shards (``[scheduler] shards``; by default one worker per
shard). Every tenant owns a fixed combination of ``k`` of them (``shards_per_tenant``), drawn
from a generator seeded with its name, so the set is the same on every start and needs no
storage. A tenant that is *confined* may start attempts only on idle workers of its own shards.

Isolation arithmetic. Each tenant's set is a uniformly random k-subset of W shards, so for a
poison tenant P and any other tenant T:

* T shares *all* its shards with P with probability ``1 / C(W, k)``; only such tenants can lose
  their whole capacity to P;
* T shares *no* shard with P with probability ``C(W - k, k) / C(W, k)``; P cannot touch it;
* on average T shares ``k * k / W`` shards with P, and keeps the rest.

With W = 8 and k = 2: C(8, 2) = 28 combinations, so 1 tenant in 28 (3.6 %) is fully exposed,
15 in 28 (53.6 %) share nothing, and the other 12 in 28 (42.9 %) share one shard of their two.
With W = 16 and k = 2: 1 in 120 (0.8 %) fully exposed, 91 in 120 (75.8 %) untouched. A poison
tenant confined to its shards also holds at most ``k / W`` of the pool.

When to confine. Confining everyone (``shard_confinement = "always"``) is strict shuffle sharding:
it also caps a lone tenant at ``k / W`` of the pool, which wastes idle workers in the common case
of one or a few tenants. The default, ``"faults"``, keeps the pool work-conserving once a tenant
has shown it is healthy:

* *probation*: a tenant is confined until ``probation`` of its attempts have ended without
  breaking their worker (20 by default; counted since the daemon started). A task that raises,
  fails or is throttled ends cleanly; only a worker death or a timeout does not. A tenant whose
  every task crashes or hangs never leaves its shards, so it cannot take the whole pool in the
  moment before its first fault is seen - a hang is only seen at its timeout;
* *faults*: a tenant whose attempts kill or hang workers (error kinds ``worker_died`` and
  ``timeout``) is confined when, within ``fault_window`` seconds, there were at least
  ``fault_threshold`` such attempts *and* they were at least ``fault_ratio`` of all its attempts
  that ended (1 in 10 by default). Real work has the odd timeout and worker exit; a tenant whose
  attempts break workers at a low rate among many clean ones is not poison. The confinement
  lasts until a whole window passes without a fault that meets the same rule, so a release
  comes at most ``fault_window`` after the last one, whether or not the tenant got to run.

Work conservation, and taking it back. Confinement exists to protect *other* tenants, so in
``"faults"`` mode it never idles a worker nobody else is waiting for. After the eligible tenants
are served, if exactly one tenant is held back by its confinement alone (its shards busy, or at
its slow-start width) and no other tenant is, it is served again (``Confinement.spare_pass``)
with two bounds lifted up to its *allowance* ``a = clean // (faults + 1)`` (``FaultRecord.spare``,
attempts that ended in the window): it may run ``1 + max(s, a)`` attempts at once, and hold up
to ``a`` of them on workers outside its shards. The allowance is what cannot hurt: with a fault
rate ``p = faults / (clean + faults)``, ``a * p < 1``, so among its attempts outside its shards
less than one is expected to hang a worker for its whole timeout. A poison tenant (every
attempt a fault) has ``a = 0`` and stays where it is; a tenant with 3 % faults has
``a`` of about 30, the whole pool. The back-off is not lifted: it holds only a tenant with
nothing but faults since its last success.

Take-back is immediate for new work: the spare pass runs only while no other tenant waits, so
the moment another tenant has eligible work, the confined tenant is back on its shards for
every further dispatch. Its *idle* workers outside its shards need no special step: the pool
retires another tenant's idle worker and starts one for the tenant it needs it for
(``slots.place`` rule 3), as for any move of capacity between tenants. Its *busy* ones end when
their attempts do, and there are at most ``a`` of them. ``"always"`` stays strict.

A tenant confined for either reason also *starts slowly*: it may run at most ``1 + s``
attempts at once, where ``s`` counts its successes since its last fault. A healthy new tenant
is at full speed after a few successes; a tenant whose tasks all hang holds one worker, not
``k`` shards' worth, so the others lose ``1 / workers`` of the pool rather than ``k / W``.

A confined tenant also backs off after each fault: its next attempt waits ``fault_backoff``
seconds, doubling per consecutive fault up to ``fault_backoff_max``, and a success resets it. On
a 2-core machine this matters as much as the shards: each dead worker costs a process start, and
a crash loop of even two workers would otherwise burn a core that every tenant shares.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from math import comb
from typing import Final

ALWAYS: Final = "always"
FAULTS: Final = "faults"
PROBATION: Final = "probation"
CONFINEMENTS: Final = (FAULTS, ALWAYS)


@dataclass(frozen=True, slots=True)
class ShardSettings:
    shards: int = 1  # W: shards of the worker pool (the daemon sets it from the pool)
    per_tenant: int = 2  # k: shards each tenant owns
    confinement: str = FAULTS
    fault_threshold: int = 3
    fault_ratio: float = 0.1
    fault_window: float = 60.0
    fault_backoff: float = 1.0
    fault_backoff_max: float = 30.0
    probation: int = 20

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError("shards must be 1 or more")
        if self.per_tenant < 1:
            raise ValueError("shards_per_tenant must be 1 or more")
        if self.confinement not in CONFINEMENTS:
            raise ValueError(f"shard_confinement must be one of {', '.join(CONFINEMENTS)}")
        if self.fault_threshold < 1:
            raise ValueError("fault_threshold must be 1 or more")
        if not 0.0 <= self.fault_ratio <= 1.0:
            raise ValueError("fault_ratio must be between 0 and 1")
        if self.fault_window <= 0:
            raise ValueError("fault_window must be more than 0")
        if self.probation < 0:
            raise ValueError("probation must be 0 or more")

    @property
    def sharded(self) -> bool:
        """Whether confinement can restrict anything (a tenant owning every shard is free)."""
        return self.per_tenant < self.shards


def shard_set(tenant: str, shards: int, per_tenant: int) -> tuple[int, ...]:
    """The tenant's own shards: a k-subset of ``range(shards)``, stable for its name."""
    if per_tenant >= shards:
        return tuple(range(shards))
    rng = random.Random(f"asynctask-shards:{tenant}")
    return tuple(sorted(rng.sample(range(shards), per_tenant)))


def exposure(shards: int, per_tenant: int) -> tuple[float, float]:
    """(share of other tenants sharing every shard with one tenant, share sharing none)."""
    k = min(per_tenant, shards)
    total = comb(shards, k)
    return 1 / total, comb(shards - k, k) / total


#: Sub-windows a ``FaultRecord`` counts ended attempts in: memory per tenant is bounded, and
#: the count is exact to within one sub-window (1/16 of ``fault_window``).
_BUCKETS = 16


class FaultRecord:
    """One tenant's recent worker-breaking attempts and the confinement they earned.

    Ended attempts and faults are counted per sub-window of ``fault_window / 16`` seconds, so a
    tenant running thousands of attempts a minute costs 17 counters, not a deque of each."""

    __slots__ = ("backoff_until", "buckets", "confined_until", "streak")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()  # [sub-window index, attempts, faults]
        self.streak = 0  # faults since the last success
        self.confined_until = 0.0
        self.backoff_until = 0.0

    def __repr__(self) -> str:
        attempts = sum(b[1] for b in self.buckets)
        faults = sum(b[2] for b in self.buckets)
        return (
            f"<FaultRecord recent={faults}/{attempts} streak={self.streak} "
            f"confined_until={self.confined_until:.1f}>"
        )

    def recent(self, settings: ShardSettings, now: float) -> tuple[int, int]:
        """(attempts ended, faults among them) in the last ``fault_window`` (to a sub-window)."""
        oldest = int(now // (settings.fault_window / _BUCKETS)) - _BUCKETS
        kept = [b for b in self.buckets if b[0] > oldest]
        return sum(b[1] for b in kept), sum(b[2] for b in kept)

    def _count(self, settings: ShardSettings, now: float, fault: bool) -> None:
        index = int(now // (settings.fault_window / _BUCKETS))
        buckets = self.buckets
        while buckets and buckets[0][0] <= index - _BUCKETS:
            buckets.popleft()
        if buckets and buckets[-1][0] >= index:
            buckets[-1][1] += 1
            buckets[-1][2] += fault
        else:
            buckets.append([index, 1, int(fault)])

    def on_clean_end(self, settings: ShardSettings, now: float) -> None:
        """Count an attempt that ended without breaking its worker (success or task error)."""
        self._count(settings, now, False)

    def on_fault(self, settings: ShardSettings, now: float) -> None:
        """Count a worker-breaking attempt; confine the tenant when the window's faults are
        both ``fault_threshold`` or more and ``fault_ratio`` or more of its ended attempts."""
        self._count(settings, now, True)
        self.streak += 1
        attempts, faults = self.recent(settings, now)
        if faults >= settings.fault_threshold and faults >= settings.fault_ratio * attempts:
            self.confined_until = now + settings.fault_window

    def spare(self, settings: ShardSettings, now: float) -> int:
        """The allowance of the work-conserving pass: clean ends per fault in the window, as
        ``clean // (faults + 1)`` (see the module docstring: ``a * p < 1``)."""
        attempts, faults = self.recent(settings, now)
        return (attempts - faults) // (faults + 1)

    def back_off(self, settings: ShardSettings, now: float) -> None:
        """Hold a confined tenant's next attempt: doubling per fault since its last success."""
        delay = settings.fault_backoff * 2 ** min(self.streak - 1, 30)
        self.backoff_until = now + min(delay, settings.fault_backoff_max)

    def on_success(self) -> None:
        self.streak = 0
        self.backoff_until = 0.0
