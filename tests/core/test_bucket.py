from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.core.bucket import TokenBucket

rates = st.floats(0.01, 10_000)
bursts = st.floats(1, 1_000)
starts = st.sampled_from([0.0, 1.0, 12_345.678, 1e6 + 0.1, 3e8 + 0.7])  # large clocks: rounding
fractions = st.floats(0, 1.5)  # of burst: requests above burst are never admitted
steps = st.floats(0, 5)  # seconds between requests


def _admit(
    bucket: TokenBucket, start: float, plan: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Run ``plan`` (a list of (dt, fraction of burst)); return [(time, n admitted)]."""
    now = start
    admitted: list[tuple[float, float]] = []
    for dt, fraction in plan:
        now += dt
        n = fraction * bucket.burst
        if bucket.try_take(now, n):
            admitted.append((now, n))
    return admitted


def _slack(*magnitudes: float) -> float:
    return 1e-9 * max(1.0, *magnitudes)


@settings(max_examples=150)
@given(rates, bursts, starts, st.lists(st.tuples(steps, fractions), max_size=40))
def test_admitted_in_any_window_is_at_most_rate_times_span_plus_burst(rate, burst, start, plan):
    bucket = TokenBucket(rate, burst, now=start)
    admitted = _admit(bucket, start, plan)
    for i, (t0, _) in enumerate(admitted):
        total = 0.0
        for t1, n in admitted[i:]:
            total += n
            bound = rate * (t1 - t0) + burst
            assert total <= bound + _slack(bound, t1 * rate)
        assert 0.0 <= bucket.tokens(t0) <= burst


@settings(max_examples=100)
@given(rates, bursts, starts, st.lists(st.tuples(steps, fractions), max_size=40))
def test_from_the_start_at_most_rate_times_elapsed_plus_burst(rate, burst, start, plan):
    bucket = TokenBucket(rate, burst, now=start)
    admitted = _admit(bucket, start, plan)
    if admitted:
        elapsed = admitted[-1][0] - start
        bound = rate * elapsed + burst
        assert sum(n for _, n in admitted) <= bound + _slack(bound, admitted[-1][0] * rate)


@settings(max_examples=200)
@given(
    rates,
    bursts,
    starts,
    st.lists(st.tuples(steps, fractions), max_size=10),
    st.floats(0, 1),
    st.floats(0, 3),
)
def test_a_request_at_wait_time_is_admitted(rate, burst, start, plan, fraction, late):
    bucket = TokenBucket(rate, burst, now=start)
    _admit(bucket, start, plan)
    now = start + sum(dt for dt, _ in plan)
    n = fraction * burst
    wait = bucket.wait_time(now, n)
    assert wait >= 0.0
    if wait > 0.0:
        ideal = (n - bucket.tokens(now)) / rate
        assert wait <= ideal + _slack(ideal, now)  # the nudge is a few ulps, not a real delay
        assert not bucket.try_take(now, n)
    later = now + wait + late * wait  # exactly at the wait time, or any time after
    assert bucket.try_take(later, n)


@given(starts, st.sampled_from([0.1, 0.3, 7.0, 1000.0, 123_456.789]))
def test_wait_time_then_take_never_spins(start, rate):
    """The dispatcher's loop: take until refused, sleep wait_time, take again."""
    bucket = TokenBucket(rate, 3.0, now=start)
    now = start
    for _ in range(50):
        while bucket.try_take(now):
            pass
        wait = bucket.wait_time(now)
        assert wait > 0.0
        now += wait
        assert bucket.try_take(now)


def test_starts_full_and_refills_lazily():
    bucket = TokenBucket(rate=2.0, burst=4.0, now=100.0)
    assert bucket.tokens(100.0) == 4.0
    assert all(bucket.try_take(100.0) for _ in range(4))
    assert not bucket.try_take(100.0)
    assert bucket.wait_time(100.0) == 0.5
    assert bucket.tokens(101.0) == 2.0
    assert bucket.tokens(1000.0) == 4.0  # never beyond burst
    assert bucket.wait_time(1000.0, 4.0) == 0.0


def test_fractional_and_multi_token_requests():
    bucket = TokenBucket(rate=1.0, burst=5.0)
    assert bucket.try_take(0.0, 2.5)
    assert not bucket.try_take(0.0, 3.0)
    assert bucket.wait_time(0.0, 3.0) == 0.5
    assert bucket.try_take(0.5, 3.0)
    assert bucket.try_take(0.5, 0.0)  # nothing asked, nothing taken
    assert bucket.tokens(0.5) == 0.0


def test_more_than_burst_is_never_admitted():
    bucket = TokenBucket(rate=10.0, burst=2.0)
    assert bucket.wait_time(0.0, 2.5) == math.inf
    assert not bucket.try_take(1e9, 2.5)
    assert bucket.tokens(1e9) == 2.0


def test_clock_going_backwards_mints_nothing():
    bucket = TokenBucket(rate=1.0, burst=10.0, now=50.0)
    assert bucket.try_take(50.0, 10.0)
    assert bucket.tokens(40.0) == 0.0  # ten seconds "earlier": no refill, no error
    assert not bucket.try_take(45.0)
    assert bucket.wait_time(45.0) == 6.0  # measured on the later clock: ready at 51
    assert bucket.tokens(51.0) == 1.0  # elapsed counts from 50, the later timestamp
    assert bucket.try_take(51.0)


def test_reconfigure_keeps_the_level_clipped_to_the_new_burst():
    bucket = TokenBucket(rate=10.0, burst=100.0)
    assert bucket.try_take(0.0, 40.0)
    bucket.reconfigure(rate=1.0, burst=50.0, now=1.0)  # accrued 10 at the old rate first
    assert bucket.tokens(1.0) == 50.0
    assert bucket.try_take(1.0, 45.0)
    assert bucket.tokens(2.0) == 6.0  # the new rate from here on
    bucket.reconfigure(rate=1.0, burst=3.0, now=2.0)
    assert bucket.tokens(2.0) == 3.0
    assert (bucket.rate, bucket.burst) == (1.0, 3.0)


def test_repr_shows_the_level_as_of_the_last_update():
    bucket = TokenBucket(rate=100.0, burst=100.0)
    assert repr(bucket) == "<TokenBucket rate=100/s burst=100 tokens=100.0>"
    assert bucket.try_take(0.0, 58.0)
    assert repr(bucket) == "<TokenBucket rate=100/s burst=100 tokens=42.0>"
    bucket.reconfigure(rate=0.5, burst=1.0, now=0.0)
    assert repr(bucket) == "<TokenBucket rate=0.5/s burst=1 tokens=1.0>"


@pytest.mark.parametrize(
    ("rate", "burst"),
    [(0.0, 1.0), (-1.0, 1.0), (math.inf, 1.0), (math.nan, 1.0), (1.0, 0.5), (1.0, math.inf)],
)
def test_invalid_settings_are_refused(rate, burst):
    with pytest.raises(ValueError, match=r"rate|burst"):
        TokenBucket(rate, burst)
    bucket = TokenBucket(1.0, 1.0)
    with pytest.raises(ValueError, match=r"rate|burst"):
        bucket.reconfigure(rate, burst, now=0.0)


def test_negative_requests_are_refused():
    bucket = TokenBucket(1.0, 1.0)
    with pytest.raises(ValueError, match="negative"):
        bucket.try_take(0.0, -1.0)
    with pytest.raises(ValueError, match="negative"):
        bucket.wait_time(0.0, -1.0)
