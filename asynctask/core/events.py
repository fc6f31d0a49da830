"""Events: what the scheduler changed on its own that an operator wants to hear about.

Actions are what the daemon must *do*; events are what it may *say*. The core is the only
place that knows when an adaptive limit moved or a tenant was confined or let out, so it reports
each change as a record here, with the figures worth logging, instead of leaving the daemon to
re-derive it by keeping copies of the core's state and comparing (``daemon/eventlog.py``
formats them). Changes are rare, so building a record costs nothing on the common path.

They collect in ``Scheduler.take_events()`` rather than in each method's return value: most
callers (recovery, cancel, the dispatch pass) never cause one, and the one consumer drains them
after each attempt outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from asynctask.core.aimd import AimdLimit


@dataclass(frozen=True, slots=True)
class AimdMoved:
    """A function's adaptive concurrency limit moved (``aimd.CUT``, ``INCREASE``, ``RESET``)."""

    function: str
    previous: int
    limit: int
    reason: str
    max_limit: int
    window_attempts: int
    window_throttles: int

    @classmethod
    def of(cls, function: str, previous: int, aimd: AimdLimit, reason: str) -> AimdMoved:
        attempts, throttles = aimd.window_counts
        return cls(
            function, previous, aimd.limit, reason, aimd.config.max_limit, attempts, throttles
        )


@dataclass(frozen=True, slots=True)
class Confined:
    """A tenant's worker faults confined it (``sharding.FAULTS``) until ``until``: to
    ``shards`` when the pool is sharded, and backing off after each further fault."""

    tenant: str
    reason: str
    shards: tuple[int, ...] | None
    faults: int
    until: float
    seconds: float


@dataclass(frozen=True, slots=True)
class Released:
    """A tenant left a confinement (``was``: ``faults`` or ``probation``); ``still`` is the
    one it remains under, if any."""

    tenant: str
    was: str
    still: str | None


Event = AimdMoved | Confined | Released
