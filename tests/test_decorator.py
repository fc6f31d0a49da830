"""``@asynctask.task``: its options and the function's own limits, checked at import, and the
calls it gives the function (``submit``, ``delay``, ``apply_async``, ``options``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import asynctask
from asynctask.client._calls import _Calls
from asynctask.decorator import _celery_options
from asynctask.errors import UsageError
from asynctask.protocol.requests import CODE_DEFAULTS, CodeDefaults, decode
from asynctask.server.requests import parse_spec


@asynctask.task(concurrency=2, rate="30/m", burst=3, retries=5)
def limited(x: int) -> int:
    return x


def test_limits_are_kept_apart_from_submit_defaults_and_travel_with_each_submit():
    assert limited.__asynctask_limits__ == {"concurrency": 2, "rate": 0.5, "burst": 3.0}
    assert limited.__asynctask_options__ == {"retries": 5}
    spec = _Calls("default").spec(limited, (1,), None)
    assert spec["limits"] == {"concurrency": 2, "rate": 0.5, "burst": 3.0}
    assert "retries" not in spec  # not the submit's own: below the config's keys
    assert spec["defaults"] == {"retries": 5}
    parsed = parse_spec(spec, max_payload=1024)
    assert parsed.limits == {"concurrency": 2, "rate": 0.5, "burst": 3.0}
    assert parsed.defaults == {"retries": 5}


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


@asynctask.task(
    queue="reports", priority=8, retries=0, timeout="1500ms", ttl="1h", memory="64M",
    on_success="app.tasks:done", on_failure=limited,
)  # fmt: skip
def decorated(path: str, width: int = 1) -> str:
    return f"{path}:{width}"


def test_the_options_in_the_daemons_form_are_what_a_submit_and_the_worker_send():
    """``__asynctask_defaults__``: durations in seconds, sizes in bytes, references as text;
    what the daemon checks them as (``CodeDefaults``) takes them unchanged."""
    wire = decorated.__asynctask_defaults__
    assert wire == {
        "queue": "reports", "priority": 8, "retries": 0, "timeout": 1.5, "ttl": 3600.0,
        "on_success": "app.tasks:done", "on_failure": "tests.test_decorator:limited",
        "resources": {"memory": 64 << 20},
    }  # fmt: skip
    assert CodeDefaults.__struct_fields__ == CODE_DEFAULTS
    assert decode(CodeDefaults, wire).to_dict() == wire
    spec = _Calls("default").spec(decorated, ("a",), None, priority=3)
    assert parse_spec(spec, max_payload=1024).defaults == wire
    assert spec["priority"] == 3  # the submit's own, apart


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": 10}, "priority"),
        ({"priority": True}, "priority"),
        ({"retries": -1}, "retries"),
        ({"timeout": "soon"}, "duration"),
        ({"queue": "two words"}, "queue"),
        ({"memory": "lots"}, "memory"),
        ({"user": "root"}, "user"),
    ],
)
def test_bad_options_fail_when_the_module_is_imported(options, message):
    with pytest.raises(ValueError, match=message):
        asynctask.task(**options)


def test_old_style_submit_options_still_work_with_a_warning():
    """``f.submit(x, kwargs={...}, priority=7, client=...)``, the shape before ``options``."""
    calls: list[tuple[Any, ...]] = []

    class Recorder:
        def submit(self, func: Any, *args: Any, kwargs: Any = None, **options: Any) -> str:
            calls.append((func, args, kwargs, options))
            return "handle"

    with pytest.warns(DeprecationWarning, match="priority"):
        handle = decorated.submit("a", kwargs={"width": 2}, priority=7, client=Recorder())
    assert handle == "handle"
    assert calls == [(decorated, ("a",), {"width": 2}, {"priority": 7})]


def test_apply_async_speaks_celerys_names():
    options = _celery_options(30, "2030-01-01T00:00:00Z", 60, 9, "job-1", "q")
    assert options == {
        "delay": 30, "run_at": "2030-01-01T00:00:00Z", "ttl": 60, "priority": 9,
        "task_id": "job-1", "queue": "q",
    }  # fmt: skip
    soon = datetime.now(UTC) + timedelta(seconds=100)
    ttl = _celery_options(None, None, soon, None, None, None)["ttl"]
    assert 90 < ttl <= 100
    past = _celery_options(None, None, soon - timedelta(days=1), None, None, None)
    assert past == {"ttl": 0.0}
    with pytest.raises(ValueError, match="timezone-aware"):
        _celery_options(None, None, datetime(2030, 1, 1), None, None, None)


def test_a_blocking_call_refuses_an_async_client_and_back():
    from asynctask import AsyncClient, Client

    with pytest.raises(TypeError, match="asubmit"):
        decorated.options(client=AsyncClient(socket="/nonexistent")).submit("a")
    with pytest.raises(TypeError, match="submit, delay or apply_async"):
        asyncio.run(decorated.options(client=Client(socket="/nonexistent")).asubmit("a"))
