"""What a tenant may run: the allowlist of multi-user mode, decided at submit.

Why: a worker imports the module a task names and calls the function, with the worker's
authority. When ``[auth.users]`` lets other local users submit (multi-user mode), "any importable
function" includes ``os:system``, ``subprocess:getoutput`` and ``builtins:exec``, so a mapped user
could run anything as the workers' user (issue 13, "Any mapped user becomes root"). In that mode a
tenant may run only:

* a function declared in the config, ``[functions."module:function"]`` (for every tenant): the
  daemon never imports tenant code, so it cannot see ``@asynctask.task`` decorators; a function
  is "registered" by declaring it in the file the operator controls;
* a function matching one of its ``[tenants.<t>] functions`` patterns (``[tenants."*"]`` is the
  default of tenants that set none);
* the command runner (``submit --cmd``, ``Client.submit_cmd``), only with
  ``[tenants.<t>] commands = true``; no pattern allows it.

Single-user mode (no ``[auth.users]``: only the daemon's own user can submit) allows everything,
as before. Admin callers get no exception: the function would run as the tenant.

Patterns are ``fnmatch`` globs (``*``, ``?``, ``[seq]``) on ``module:function``, matched in two
parts. The module part is one glob over the dotted name, so ``myapp.*:*`` covers a package. The
function part is matched one dotted name at a time, and a wildcard there never matches a name
starting with ``_`` unless the pattern's own name does: the worker resolves ``mod:a.b`` with
``getattr``, so if ``*`` could span a dot, ``myapp.tasks:*`` would allow
``myapp.tasks:os.system`` whenever ``myapp.tasks`` imports ``os``. A name the module imports
(``from os import system``) is still one of its names, and ``myapp.tasks:*.*`` reaches the
functions of every module it imports: for such modules, list functions or classes by name.

Prior art: cloud function platforms deploy a fixed set of entry points per tenant; Celery's
``CELERY_IMPORTS``/``include`` is the same idea (only registered tasks are accepted). Pure: no
I/O; ``config`` builds a ``RunPolicy``, the server asks it about every function a request names
and refuses the whole request on the first "no". ``tests/core/test_allowlist.py`` walks the
table of cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Final

#: The function a command task runs (``asynctask.executor.command.REF``; the core does not
#: import the executor, and a test checks the two agree).
COMMAND_FUNCTION: Final = "asynctask.executor.command:run_command"

#: Characters a pattern may hold: those of a function reference, and fnmatch's ``* ? [ ] !``.
_PATTERN_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:*?[]!"
)


@dataclass(frozen=True, slots=True)
class TenantRights:
    """One tenant's ``functions`` patterns and ``commands`` flag; ``None``: not set here (the
    ``[tenants."*"]`` default applies)."""

    functions: tuple[str, ...] | None = None
    commands: bool | None = None


@dataclass(frozen=True, slots=True)
class RunPolicy:
    """``multi_user`` is whether ``[auth.users]`` names anyone; ``declared`` the functions with a
    ``[functions."..."]`` section; ``default`` the rights of ``[tenants."*"]``."""

    multi_user: bool = False
    declared: frozenset[str] = frozenset()
    default: TenantRights = field(default_factory=TenantRights)
    tenants: Mapping[str, TenantRights] = field(default_factory=dict)

    def __repr__(self) -> str:
        mode = "multi-user" if self.multi_user else "single-user"
        return f"<RunPolicy {mode} declared={len(self.declared)} tenants={sorted(self.tenants)}>"

    def rights(self, tenant: str) -> tuple[tuple[str, ...], bool]:
        """The patterns and commands flag that apply to ``tenant``."""
        own = self.tenants.get(tenant, self.default)
        functions = own.functions if own.functions is not None else self.default.functions
        commands = own.commands if own.commands is not None else self.default.commands
        return functions or (), bool(commands)

    def refusal(self, tenant: str, function: str) -> str | None:
        """Why ``tenant`` may not run ``function``, or ``None`` when it may."""
        if not self.multi_user:
            return None
        patterns, commands = self.rights(tenant)
        if function == COMMAND_FUNCTION:
            if commands:
                return None
            return (
                f"tenant {tenant!r} may not run command tasks: in multi-user mode that needs "
                f"commands = true in [tenants.{tenant}]"
            )
        if function in self.declared or any(matches(p, function) for p in patterns):
            return None
        return (
            f"tenant {tenant!r} may not run {function!r}: in multi-user mode a tenant runs only "
            f'functions declared in [functions."module:function"] or matching its '
            f"[tenants.{tenant}] functions patterns"
        )


def matches(pattern: str, function: str) -> bool:
    """Whether ``module:function`` matches ``pattern`` (see the module's docstring)."""
    pattern_module, _, pattern_names = pattern.partition(":")
    module, _, names = function.partition(":")
    if not fnmatchcase(module, pattern_module):
        return False
    wanted, given = pattern_names.split("."), names.split(".")
    if len(wanted) != len(given):
        return False
    for glob, name in zip(wanted, given, strict=True):
        if name.startswith("_") and not glob.startswith("_"):
            return False
        if not fnmatchcase(name, glob):
            return False
    return True


def pattern_problem(pattern: object) -> str | None:
    """What is wrong with a ``functions`` pattern from the config, or ``None``."""
    if not isinstance(pattern, str) or not pattern:
        return f"a pattern is a non-empty string such as 'myapp.tasks:*', not {pattern!r}"
    if pattern.count(":") != 1 or pattern.startswith(":") or pattern.endswith(":"):
        return f"{pattern!r} is not module:function (e.g. 'myapp.tasks:*' or 'pkg.mod:fn')"
    bad = sorted(set(pattern) - _PATTERN_CHARS)
    if bad:
        return f"{pattern!r} has characters a function reference cannot: {''.join(bad)!r}"
    return None
