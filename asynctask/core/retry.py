"""RetryPolicy: after an attempt fails, when (if ever) the next one starts.

Algorithm: exponential backoff with *full jitter* (the AWS architecture blog's "Exponential
Backoff And Jitter"): the n-th retry waits ``uniform(0, min(cap, base * 2 ** (n - 1)))``. Full
jitter spreads a thundering herd of failures evenly over the window instead of re-synchronising
it at every step, at the price of an occasional short wait.

The policy is pure: it takes the random source (``random.Random``) as an argument, so a failing
Hypothesis example replays exactly, and it never reads a clock.

Invariants (checked by ``tests/core/test_retry.py``): a task makes at most ``retries + 1``
attempts; a delay is never negative and never above ``cap`` (or the task's own ``retry_after``
hint, when that is larger, itself at most ``MAX_SECONDS``: task code chooses it); only
retryable error kinds are retried; limit kills are retried only when the function opted in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from asynctask.model import MAX_SECONDS, RETRYABLE_KINDS, ErrorKind

DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_CAP = 60.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: float = DEFAULT_BACKOFF_BASE
    cap: float = DEFAULT_BACKOFF_CAP

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("backoff base and cap cannot be negative")

    def should_retry(
        self,
        kind: ErrorKind,
        attempts: int,
        retries: int,
        *,
        retry_limit_kills: bool = False,
    ) -> bool:
        """Whether an attempt that ended with ``kind`` gets another one.

        ``attempts`` counts the attempts made so far, the one that just ended included.
        """
        if attempts > retries:
            return False
        if kind in RETRYABLE_KINDS:
            return True
        return retry_limit_kills and kind in (
            ErrorKind.MEMORY_LIMIT,
            ErrorKind.CPU_LIMIT,
            ErrorKind.FILE_SIZE_LIMIT,
        )

    def delay(self, attempts: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempts + 1`` (full jitter, capped)."""
        exponent = max(attempts - 1, 0)
        # 2 ** 1100 overflows a float; an exponent past 64 is far beyond every sane cap.
        window = min(self.cap, self.base * (2.0 ** min(exponent, 64)))
        chosen = rng.uniform(0.0, window)
        if retry_after is not None and retry_after > chosen:
            return min(float(retry_after), MAX_SECONDS)  # 1e308 would be no date at all
        return chosen
