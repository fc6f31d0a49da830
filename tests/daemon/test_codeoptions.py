"""What the daemon makes of a worker's report of a function's options (``daemon/codeoptions.py``):
checked as tenant input, kept per (tenant, function), bounded, stored when it changes, and applied
to a running task where its submit and the config left an option to the code."""

from __future__ import annotations

from typing import Any

import pytest

from asynctask.core.admission import TaskDefaults, admit
from asynctask.core.allowlist import RunPolicy, TenantRights
from asynctask.daemon import codeoptions
from asynctask.daemon.codeoptions import CodeOptions
from asynctask.model import SubmitSpec


def _registry(policy: RunPolicy | None = None) -> tuple[CodeOptions, list[Any]]:
    changes: list[Any] = []
    registry = CodeOptions(lambda: policy or RunPolicy(), lambda *change: changes.append(change))
    return registry, changes


@pytest.mark.parametrize(
    "raw",
    [
        {"timeout": -5},
        {"retries": "many"},
        {"priority": 42},
        {"queue": "two words"},
        {"colour": "red"},
        {"resources": {"user": "root"}},
        {"resources": {"memory": "lots"}},
        {"on_success": "not a ref"},
        "not a map",
    ],
)
def test_a_bad_report_is_refused_and_changes_nothing(raw: Any, caplog) -> None:
    registry, changes = _registry()
    registry.report("t", "m:f", {"retries": 1})
    assert registry.report("t", "m:f", raw) is None
    assert registry.known == {("t", "m:f"): {"retries": 1}}
    assert len(changes) == 1
    assert "code_options_refused" in [getattr(r, "event", None) for r in caplog.records]


def test_a_report_is_kept_per_tenant_and_replaced_by_the_next() -> None:
    registry, changes = _registry()
    registry.report("a", "m:f", {"retries": 0, "timeout": 1.0})
    registry.report("b", "m:f", {"queue": "q"})
    registry.report("a", "m:f", {"retries": 0, "timeout": 1.0})  # the same again: not stored
    assert registry.known[("a", "m:f")] == {"retries": 0, "timeout": 1.0}
    assert registry.known[("b", "m:f")] == {"queue": "q"}
    registry.report("a", "m:f", {})  # the decorator was removed
    assert ("a", "m:f") not in registry.known
    assert changes == [
        ("a", "m:f", {"retries": 0, "timeout": 1.0}),
        ("b", "m:f", {"queue": "q"}),
        ("a", "m:f", None),
    ]


def test_a_tenant_cannot_fill_the_daemons_memory(monkeypatch) -> None:
    monkeypatch.setattr(codeoptions, "MAX_PER_TENANT", 3)
    registry, _ = _registry()
    for n in range(5):
        assert registry.report("a", f"m:f{n}", {"retries": n}) == {"retries": n}
    registry.report("b", "m:f0", {"retries": 9})
    assert sorted(f for t, f in registry.known if t == "a") == ["m:f0", "m:f1", "m:f2"]
    assert registry.known[("b", "m:f0")] == {"retries": 9}


def test_destinations_the_tenant_may_not_run_are_dropped() -> None:
    policy = RunPolicy(multi_user=True, tenants={"t": TenantRights(functions=("app.tasks:*",))})
    registry, _ = _registry(policy)
    checked = registry.report(
        "t", "app.tasks:f", {"retries": 1, "on_success": "app.tasks:g", "on_failure": "os:system"}
    )
    assert checked == {"retries": 1, "on_success": "app.tasks:g"}


def test_apply_sets_what_was_left_to_the_code_and_says_if_it_changed() -> None:
    registry, _ = _registry()
    defaults = TaskDefaults(retries=3, timeout=600.0)
    task = admit(SubmitSpec("m:f", b"", tenant="t"), "id", 1, 0.0, defaults)
    assert registry.apply(task) is False  # nothing reported yet
    registry.report("t", "m:f", {"retries": 0, "timeout": 1.0, "queue": "q"})
    assert registry.apply(task) is True
    assert (task.retries, task.timeout) == (0, 1.0)
    assert registry.apply(task) is False  # already applied
    pinned = admit(SubmitSpec("m:f", b"", tenant="t", timeout=9.0), "id2", 2, 0.0, defaults)
    assert registry.apply(pinned) is True  # its retries, not its timeout (the submit's)
    assert (pinned.retries, pinned.timeout) == (0, 9.0)
