"""The code's options in admission (``core/admission.py``): a submit's own options, then the
config file's, then the decorator's (sent with the spec, else the worker's last report for the
tenant), then the daemon's; and what a report may still change on a running task."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import given
from hypothesis import strategies as st

from asynctask.core.admission import TaskDefaults, admit, code_options, queue_of
from asynctask.model import PRIORITY_DEFAULT, SubmitSpec


@dataclass(frozen=True)
class Configured:
    queue: str | None = None
    retries: int | None = None
    timeout: float | None = None
    priority: int | None = None


DAEMON = TaskDefaults(retries=3, timeout=600.0)
maybe = st.none() | st.integers(0, 9)


@given(explicit=maybe, configured=maybe, sent=maybe, reported=maybe)
def test_retries_rank_submit_config_code_daemon(
    explicit: int | None, configured: int | None, sent: int | None, reported: int | None
) -> None:
    defaults = replace(
        DAEMON,
        functions={"m:f": Configured(retries=configured)},
        code={("t", "m:f"): {} if reported is None else {"retries": reported}},
    )
    spec = SubmitSpec(
        "m:f", b"", tenant="t", retries=explicit,
        defaults=None if sent is None else {"retries": sent},
    )  # fmt: skip
    task = admit(spec, "id", 1, 0.0, defaults)
    code = sent if sent is not None else reported  # what is sent replaces the report
    expected = next(v for v in (explicit, configured, code, 3) if v is not None)
    assert task.retries == expected


def test_the_reported_options_give_queue_priority_ttl_and_resources() -> None:
    report = {
        "queue": "reports", "priority": 8, "ttl": 60.0, "timeout": 2.0,
        "on_success": "m:done", "resources": {"memory": 1 << 20},
    }  # fmt: skip
    defaults = replace(DAEMON, code={("t", "m:f"): report})
    spec = SubmitSpec("m:f", b"", tenant="t")
    task = admit(spec, "id", 1, 100.0, defaults)
    assert (task.queue, task.priority, task.timeout) == ("reports", 8, 2.0)
    assert task.expires_at == 160.0
    assert task.options["on_success"] == "m:done"
    assert task.options["resources"] == {"memory": 1 << 20}
    assert queue_of(spec, defaults) == "reports"
    assert "fixed" not in task.options  # nothing set by the submit: nothing more stored


def test_a_report_is_its_tenants_alone() -> None:
    defaults = replace(DAEMON, code={("mallory", "m:f"): {"queue": "hijacked", "retries": 0}})
    task = admit(SubmitSpec("m:f", b"", tenant="honest"), "id", 1, 0.0, defaults)
    assert (task.queue, task.retries, task.priority) == ("honest", 3, PRIORITY_DEFAULT)


def test_explicit_resources_win_key_by_key() -> None:
    defaults = replace(DAEMON, code={("t", "m:f"): {"resources": {"memory": 1, "cpu": 2.0}}})
    spec = SubmitSpec("m:f", b"", tenant="t", resources={"memory": 5})
    assert admit(spec, "id", 1, 0.0, defaults).options["resources"] == {"memory": 5, "cpu": 2.0}


def test_a_report_changes_only_what_the_submit_and_the_config_left_to_the_code() -> None:
    defaults = replace(DAEMON, functions={"m:f": Configured(timeout=5.0)})
    spec = SubmitSpec("m:f", b"", tenant="t", on_failure="m:undo")
    task = admit(spec, "id", 1, 0.0, defaults)
    assert task.options["fixed"] == "timeout,on_failure"
    report = {"retries": 0, "timeout": 1.0, "on_success": "m:ok", "on_failure": "m:other"}
    changed = code_options(task.options, report)
    assert changed["retries"] == 0  # left to the code
    assert changed["on_success"] == "m:ok"
    assert changed["timeout"] == 5.0  # the config's
    assert changed["on_failure"] == "m:undo"  # the submit's
    assert task.options["retries"] == 3  # a new map: the task's (maybe shared) one is unchanged
    assert code_options(task.options, {}) == task.options
