from __future__ import annotations

import time
from unittest.mock import patch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynctask.model import (
    TRANSITIONS,
    InvalidTransition,
    TaskState,
    check_transition,
    format_time,
    is_function_ref,
    new_task_id,
    parse_duration,
    parse_size,
    parse_time,
)


@pytest.mark.parametrize("old", list(TaskState))
@pytest.mark.parametrize("new", list(TaskState))
def test_every_transition_follows_the_table(old, new):
    if new in TRANSITIONS[old]:
        check_transition(old, new)
    else:
        with pytest.raises(InvalidTransition):
            check_transition(old, new)


def test_final_states_have_no_way_out_but_failed_can_be_retried():
    assert TRANSITIONS[TaskState.SUCCEEDED] == frozenset()
    assert TRANSITIONS[TaskState.FAILED] == {TaskState.QUEUED}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("2s", 2), ("5m", 300), ("1h", 3600), ("1d", 86400), ("7", 7), ("1.5s", 1.5)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "-1s", "5 minutes", "1w", "abc", "1e3"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_sizes_are_binary():
    assert parse_size("256M") == 256 * 1024**2
    assert parse_size("2G") == 2 * 1024**3
    assert parse_size("512") == 512
    with pytest.raises(ValueError, match="size"):
        parse_size("lots")


def test_times_need_an_offset_and_round_trip():
    assert parse_time("2026-01-31T12:00:00Z") == parse_time("2026-01-31T13:00:00+01:00")
    with pytest.raises(ValueError, match="offset"):
        parse_time("2026-01-31T12:00:00")
    assert format_time(parse_time("2026-01-31T12:00:00.250Z")) == "2026-01-31T12:00:00.250Z"


def test_task_ids_sort_by_creation_time_and_are_unique():
    ids = [new_task_id(time.time() + i) for i in range(100)]
    assert ids == sorted(ids)
    assert len({new_task_id() for _ in range(10_000)}) == 10_000
    assert all(len(i) == 26 for i in ids)


@given(st.floats(min_value=0, max_value=8e12), st.binary(min_size=10, max_size=10))
def test_task_ids_are_the_ulid_of_the_time_and_random_bits(now, entropy):
    """The digits are the 128-bit value in Crockford base32, most significant first, whatever
    the encoder's shortcuts (the ID is on every submit's hot path)."""
    with patch("asynctask.model.os.urandom", return_value=entropy):
        task_id = new_task_id(now)
    value = (int(now * 1000) & ((1 << 48) - 1)) << 80 | int.from_bytes(entropy, "big")
    digits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    assert task_id == "".join(digits[(value >> (5 * i)) & 31] for i in range(25, -1, -1))


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        ("pkg.mod:fn", True),
        ("mod:Cls.method", True),
        ("mod", False),
        (":fn", False),
        ("a b:c", False),
    ],
)
def test_function_refs(ref, ok):
    assert is_function_ref(ref) is ok
