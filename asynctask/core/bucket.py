"""TokenBucket: a rate limit with a burst allowance, for one tenant, queue or function.

Algorithm: the classic token bucket (Turner 1986; RFC 2697's "committed burst"), filled *lazily*.
The bucket stores only a level and the time it was last updated; any call with a later ``now``
first adds ``(now - last) * rate`` tokens, never beyond ``burst``. A request for ``n`` tokens is
admitted when the level covers it and then subtracts ``n``. There is no timer and no background
refill, so 10,000 idle buckets cost nothing. Unlike dramatiq's ``rate_limits/bucket.py`` the bucket
never reads a clock: ``now`` (seconds, float) is always an argument.

Time going backwards (a ``now`` smaller than one already seen) mints nothing: the elapsed time
counts as zero and the later timestamp is kept.

``wait_time`` is computed with the very arithmetic ``try_take`` uses and nudged up by a few ulps
until that arithmetic agrees, so ``try_take(now + wait_time(now, n), n)`` succeeds whatever the
rounding: the dispatcher arms a timer with it and must not spin. A request larger than ``burst``
can never be admitted; its ``wait_time`` is ``math.inf``.

Invariants (checked by ``tests/core/test_bucket.py`` with Hypothesis): for any sequence of
``(time, n)`` requests at non-decreasing times, the tokens admitted in any window ``[t0, t1]``
total at most ``rate * (t1 - t0) + burst`` (and from the start over ``T``, at most
``rate * T + burst``); a request for ``n <= burst`` made at or after ``t + wait_time(t, n)`` (with
no take in between) is admitted; the level stays within ``[0, burst]``.
"""

from __future__ import annotations

import math


class TokenBucket:
    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        _check(rate, burst)
        self._rate = float(rate)
        self._burst = float(burst)
        self._tokens = self._burst  # starts full
        self._last = float(now)

    def __repr__(self) -> str:
        return (
            f"<TokenBucket rate={self._rate:g}/s burst={self._burst:g} tokens={self._tokens:.1f}>"
        )

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def try_take(self, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens if the bucket holds them at ``now``; report whether it did."""
        if n < 0:
            raise ValueError("cannot take a negative number of tokens")
        self._refill(now)
        if self._tokens < n:
            return False
        self._tokens -= n
        return True

    def tokens(self, now: float) -> float:
        """The level at ``now`` (after refill); takes nothing."""
        self._refill(now)
        return self._tokens

    def wait_time(self, now: float, n: float = 1.0) -> float:
        """Seconds from ``now`` until ``n`` tokens are there: 0.0 if they are, ``inf`` if never."""
        if n < 0:
            raise ValueError("cannot take a negative number of tokens")
        self._refill(now)
        if self._tokens >= n:
            return 0.0
        if n > self._burst:
            return math.inf
        # The ideal answer, then a nudge until ``_level_at`` (the expression ``try_take`` will
        # evaluate) agrees. The nudge starts at an ulp of ``now`` and doubles, so it ends in a
        # round or two in practice and in a few dozen in the worst case.
        wait = max(self._last - now, 0.0) + (n - self._tokens) / self._rate
        nudge = max(math.ulp(now), math.ulp(wait))
        while self._level_at(now + wait) < n:
            wait += nudge
            nudge *= 2.0
        return wait

    def reconfigure(self, rate: float, burst: float, now: float) -> None:
        """Apply a config reload: the level accrued so far is kept, clipped to the new burst."""
        _check(rate, burst)
        self._refill(now)
        self._rate = float(rate)
        self._burst = float(burst)
        self._tokens = min(self._tokens, self._burst)

    def _level_at(self, now: float) -> float:
        if now <= self._last:
            return self._tokens
        return min(self._burst, self._tokens + (now - self._last) * self._rate)

    def _refill(self, now: float) -> None:
        if now > self._last:  # a clock that went backwards mints nothing and keeps the later time
            self._tokens = self._level_at(now)
            self._last = now


def _check(rate: float, burst: float) -> None:
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive finite number of tokens per second, not {rate}")
    if not (burst >= 1 and math.isfinite(burst)):
        raise ValueError(f"burst must be a finite number >= 1, not {burst}")
