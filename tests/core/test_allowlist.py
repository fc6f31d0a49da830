"""The multi-user allowlist (``asynctask.core.allowlist``), case by case."""

from __future__ import annotations

import pytest

from asynctask.config import parse_config
from asynctask.core.allowlist import (
    COMMAND_FUNCTION,
    RunPolicy,
    TenantRights,
    matches,
    pattern_problem,
)
from asynctask.errors import ConfigError
from asynctask.executor import command

POLICY = RunPolicy(
    multi_user=True,
    declared=frozenset({"shared.jobs:report"}),
    default=TenantRights(functions=("common.tasks:*",)),
    tenants={
        "acme": TenantRights(functions=("myapp.tasks:*", "pkg.mod:fn", "myapp.jobs:Job.run")),
        "ops": TenantRights(commands=True),
        "lone": TenantRights(functions=()),
    },
)

# (tenant, function, allowed)
CASES = [
    ("acme", "myapp.tasks:resize", True),
    ("acme", "myapp.tasks:os.system", False),  # * never spans an attribute path
    ("acme", "myapp.tasks:_private", False),  # nor matches a private name
    ("acme", "myapp.tasks:__builtins__", False),
    ("acme", "myapp.tasks.sub:resize", False),  # the module part is the whole module
    ("acme", "pkg.mod:fn", True),
    ("acme", "pkg.mod:fn2", False),
    ("acme", "myapp.jobs:Job.run", True),
    ("acme", "os:system", False),
    ("acme", "subprocess:getoutput", False),
    ("acme", "builtins:exec", False),
    ("acme", "shared.jobs:report", True),  # declared in [functions."..."]: every tenant
    ("acme", COMMAND_FUNCTION, False),
    ("acme", "common.tasks:x", False),  # its own patterns replace the "*" default
    ("ops", COMMAND_FUNCTION, True),
    ("ops", "common.tasks:x", True),  # no patterns of its own: the "*" default
    ("ops", "os:system", False),
    ("lone", "common.tasks:x", False),  # functions = [] is a list of its own, empty
    ("lone", "shared.jobs:report", True),
    ("nobody-configured", "common.tasks:x", True),
    ("nobody-configured", COMMAND_FUNCTION, False),
]


@pytest.mark.parametrize(("tenant", "function", "allowed"), CASES)
def test_multi_user_mode(tenant: str, function: str, allowed: bool) -> None:
    refusal = POLICY.refusal(tenant, function)
    assert (refusal is None) is allowed, refusal
    if refusal is not None:
        assert repr(tenant) in refusal
        if function == COMMAND_FUNCTION:
            assert "commands = true" in refusal
        else:
            assert repr(function) in refusal


@pytest.mark.parametrize(("tenant", "function", "_"), CASES)
def test_single_user_mode_allows_everything(tenant: str, function: str, _: bool) -> None:
    single = RunPolicy(multi_user=False, tenants=POLICY.tenants, default=POLICY.default)
    assert single.refusal(tenant, function) is None


def test_a_pattern_cannot_allow_commands() -> None:
    policy = RunPolicy(
        multi_user=True, tenants={"t": TenantRights(functions=("*:*", "asynctask.*:*"))}
    )
    assert policy.refusal("t", "anything.at:all") is None
    assert policy.refusal("t", COMMAND_FUNCTION) is not None
    declared = RunPolicy(multi_user=True, declared=frozenset({COMMAND_FUNCTION}))
    assert declared.refusal("t", COMMAND_FUNCTION) is not None


def test_the_command_function_is_the_executors() -> None:
    assert command.REF == COMMAND_FUNCTION


@pytest.mark.parametrize(
    ("pattern", "function", "expected"),
    [
        ("myapp.*:*", "myapp.tasks:run", True),
        ("myapp.*:*", "myapp.a.b:run", True),
        ("myapp.*:*", "myapp:run", False),
        ("myapp.tasks:re?ize", "myapp.tasks:resize", True),
        ("myapp.tasks:[rs]*", "myapp.tasks:size", True),
        ("myapp.tasks:_*", "myapp.tasks:_private", True),
        ("myapp.tasks:*.*", "myapp.tasks:Job.run", True),
        ("myapp.tasks:*", "MYAPP.tasks:run", False),  # case-sensitive everywhere
    ],
)
def test_matches(pattern: str, function: str, expected: bool) -> None:
    assert matches(pattern, function) is expected


@pytest.mark.parametrize(
    "pattern", ["", "myapp.tasks", ":fn", "mod:", "a:b:c", "mod:fn;rm", "mod :fn", 5, None]
)
def test_bad_patterns_are_named(pattern: object) -> None:
    assert pattern_problem(pattern) is not None


def test_the_config_builds_the_policy() -> None:
    config = parse_config(
        {
            "auth": {"users": {"0": ["acme"]}},
            "tenants": {
                "*": {"functions": ["common.tasks:*"]},
                "acme": {"functions": ["myapp.tasks:*"], "commands": True, "weight": 2},
            },
            "functions": {"shared.jobs:report": {"retries": 1}},
        }
    )
    assert config.run_policy == RunPolicy(
        multi_user=True,
        declared=frozenset({"shared.jobs:report"}),
        default=TenantRights(functions=("common.tasks:*",)),
        tenants={"acme": TenantRights(functions=("myapp.tasks:*",), commands=True)},
    )
    assert repr(config.run_policy) == "<RunPolicy multi-user declared=1 tenants=['acme']>"
    assert parse_config({}).run_policy.multi_user is False


@pytest.mark.parametrize(
    ("tenant", "message"),
    [
        ({"functions": "myapp.tasks:*"}, "tenants.acme.functions"),
        ({"functions": ["myapp.tasks"]}, "not module:function"),
        ({"functions": ["myapp.tasks:run\n"]}, "characters"),
        ({"commands": "yes"}, "tenants.acme.commands"),
    ],
)
def test_bad_tenant_rights_are_config_errors(tenant: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"tenants": {"acme": tenant}})
