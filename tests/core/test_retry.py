from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynctask.core.retry import RetryPolicy
from asynctask.model import RETRYABLE_KINDS, ErrorKind


@given(st.integers(1, 5000), st.integers(0, 2**32), st.floats(0, 10), st.floats(0, 600))
def test_delay_is_within_the_full_jitter_window(attempts, seed, base, cap):
    policy = RetryPolicy(base=base, cap=cap)
    delay = policy.delay(attempts, random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(attempts - 1, 64)) + 1e-9


def test_windows_double_until_the_cap():
    policy = RetryPolicy(base=0.5, cap=60.0)
    rng = random.Random(1)
    maxima = [max(policy.delay(n, rng) for _ in range(2000)) for n in (1, 2, 3, 4)]
    for n, observed in enumerate(maxima, start=1):
        window = 0.5 * 2 ** (n - 1)
        assert window * 0.9 < observed <= window


def test_same_seed_same_delays():
    policy = RetryPolicy()
    first = [policy.delay(n, random.Random(7)) for n in range(1, 10)]
    second = [policy.delay(n, random.Random(7)) for n in range(1, 10)]
    assert first == second


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_only_retryable_kinds_retry(kind):
    policy = RetryPolicy()
    assert policy.should_retry(kind, attempts=1, retries=3) == (kind in RETRYABLE_KINDS)
    assert not policy.should_retry(kind, attempts=4, retries=3)


def test_limit_kills_retry_only_when_opted_in():
    policy = RetryPolicy()
    assert not policy.should_retry(ErrorKind.MEMORY_LIMIT, 1, 3)
    assert policy.should_retry(ErrorKind.MEMORY_LIMIT, 1, 3, retry_limit_kills=True)
    assert not policy.should_retry(ErrorKind.FAIL, 1, 3, retry_limit_kills=True)
