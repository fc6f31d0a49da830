"""``@asynctask.task``: submit defaults and the function's own limits, checked at import."""

from __future__ import annotations

import pytest

import asynctask
from asynctask.client._calls import _Calls
from asynctask.errors import UsageError
from asynctask.server.requests import parse_spec


@asynctask.task(concurrency=2, rate="30/m", burst=3, retries=5)
def limited(x: int) -> int:
    return x


def test_limits_are_kept_apart_from_submit_defaults_and_travel_with_each_submit():
    assert limited.__asynctask_limits__ == {"concurrency": 2, "rate": 0.5, "burst": 3.0}
    assert limited.__asynctask_options__ == {"retries": 5}
    spec = _Calls("default").spec(limited, (1,), None)
    assert spec["limits"] == {"concurrency": 2, "rate": 0.5, "burst": 3.0}
    assert spec["retries"] == 5
    parsed = parse_spec(spec, max_payload=1024)
    assert parsed.limits == {"concurrency": 2, "rate": 0.5, "burst": 3.0}


def test_a_function_without_limits_sends_none():
    @asynctask.task(priority=7)
    def plain() -> None:
        return None

    assert "limits" not in _Calls("default").spec(plain, (), None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 1.5}, "concurrency"),
        ({"rate": "fast"}, "not a rate"),
        ({"rate": -1}, "positive"),
        ({"burst": 0}, "burst"),
        ({"speed": 3}, "unknown task option"),
        ({"non_retryable": ("KeyError",)}, "exception classes"),
        ({"non_retryable": 3}, "exception classes"),
    ],
)
def test_bad_limits_fail_when_the_module_is_imported(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        asynctask.task(**options)


@pytest.mark.parametrize(
    "limits",
    [
        "fast",
        {"concurrency": 0},
        {"concurrency": True},
        {"rate": 0},
        {"rate": float("inf")},
        {"burst": 0.5},
        {"colour": 1},
    ],
)
def test_the_daemon_refuses_bad_limits_on_the_wire(limits):
    spec = {"function": "m:f", "payload": b"\x92\x90\x80", "limits": limits}
    with pytest.raises(UsageError, match="limit"):
        parse_spec(spec, max_payload=1024)


def test_non_retryable_stays_in_the_worker_and_never_travels():
    @asynctask.task(non_retryable=ValueError)
    def parse(text: str) -> int:
        return int(text)

    assert parse.__asynctask_non_retryable__ == (ValueError,)
    spec = _Calls("default").spec(parse, ("1",), None)
    assert "non_retryable" not in spec
    assert "limits" not in spec
