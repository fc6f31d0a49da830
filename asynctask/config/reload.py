"""Re-reading the config file (SIGHUP, ``asynctask reload``): which keys are live, and the report
of what changed (``Reload``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

from asynctask.config.sections import Config


@dataclass(frozen=True, slots=True)
class Reload:
    """What re-reading the config file (SIGHUP, ``asynctask reload``) changes.

    ``config`` is what the daemon runs with from now on: the running config with the new values
    of the live keys only. ``applied`` names the keys whose new value it took; ``restart`` the
    keys that changed in the file but keep their old value until a restart. Names are spelled
    as in the file (``tenants.acme.rate``); a whole new or removed section is one name.
    """

    config: Config
    applied: tuple[str, ...]
    restart: tuple[str, ...]


def reconcile(running: Config, edited: Config) -> Reload:
    """Take the live keys of ``edited`` into ``running``.

    Live are the keys read where they are used, so a new value is safe to take between two
    steps: what a tenant, queue or function may run and hold ([tenants.*], [queues.*],
    [functions.*] limits and submit defaults), the fairness knobs read at each dispatch
    (``scheduler.affinity``, ``reserve``, ``caps``), the submit defaults ``retry.retries`` and
    ``workers.timeout``, and ``daemon.log_level``. Everything else was built into something at
    start (the pool, the socket, the store, shards, AIMD and backoff state, the run policy) and
    needs a restart; it keeps its old value. That includes all of ``[store]`` (``url``,
    ``partitions``, ``lease``): the daemon opened its database with them, and moving it is a
    restart (docs/scale-out.md).

    The two lists are computed from the three configs, not from a list of key names, so the
    report cannot claim a key was applied that the merged config does not carry.
    """
    new_sched = edited.scheduler
    merged = replace(
        running,
        daemon=replace(running.daemon, log_level=edited.daemon.log_level),
        workers=replace(running.workers, timeout=edited.workers.timeout),
        retry=replace(running.retry, retries=edited.retry.retries),
        scheduler=replace(
            running.scheduler,
            affinity=new_sched.affinity,
            reserve=new_sched.reserve,
            caps=new_sched.caps,
            tenant_defaults=new_sched.tenant_defaults,
            tenants=new_sched.tenants,
            queues=new_sched.queues,
            functions=new_sched.functions,
        ),
        functions=edited.functions,
    )
    return Reload(merged, changed_keys(running, merged), changed_keys(merged, edited))


def changed_keys(before: Config, after: Config) -> tuple[str, ...]:
    """The file keys whose values differ, sorted; a table entry present on one side only
    (``[tenants.acme]`` added or removed) is named once, not key by key."""
    old, new = _flatten(before), _flatten(after)
    names: set[str] = set()
    for path in old.keys() | new.keys():
        if path in old and path in new:
            if old[path][0] != new[path][0]:
                names.add(path)
        else:  # an entry that sets nothing (all None: "not set here") changes nothing
            value, entry = old[path] if path in old else new[path]
            if value is not None:
                names.add(entry)
    return tuple(sorted({name for name in map(_file_key, names) if name is not None}))


def _flatten(value: Any, path: str = "", entry: str = "") -> dict[str, tuple[Any, str]]:
    """Every leaf of a config as ``{path: (value, the path of its table entry)}``."""
    if is_dataclass(value) and not isinstance(value, type):
        found: dict[str, tuple[Any, str]] = {}
        for item in fields(value):
            found.update(_flatten(getattr(value, item.name), f"{path}.{item.name}", entry))
        return found
    if isinstance(value, Mapping):  # an empty one has no leaves: its entries appear or go
        found = {}
        for key, item in value.items():
            name = "/".join(map(str, key)) if isinstance(key, tuple) else str(key)
            if not re.fullmatch(r"[A-Za-z0-9_*-]+", name):
                name = f'"{name}"'
            found.update(_flatten(item, f"{path}.{name}", f"{path}.{name}"))
        return found
    return {path: (value, entry or path)}


#: Config paths as the file spells them, by prefix (the first match wins); ``None``: derived
#: from other keys, which are reported themselves.
_FILE_KEYS: tuple[tuple[str, str | None], ...] = (
    (".source", None),
    (".scheduler.capacity", None),
    (".run_policy.multi_user", None),
    (".run_policy.declared", None),
    (".run_policy.default.", "tenants.*."),
    (".run_policy.tenants.", "tenants."),
    (".scheduler.tenant_defaults.", "tenants.*."),
    (".scheduler.tenants.", "tenants."),
    (".scheduler.queues.", "queues."),
    (".scheduler.functions.", "functions."),
    (".scheduler.aimd.", "aimd."),
    (".scheduler.aging", "scheduler.priority_aging"),
    (".scheduler.sharding.per_tenant", "scheduler.shards_per_tenant"),
    (".scheduler.sharding.confinement", "scheduler.shard_confinement"),
    (".scheduler.sharding.probation", "scheduler.shard_probation"),
    (".scheduler.sharding.", "scheduler."),
    (".workers.limits.", "workers."),
    (".observe.http", "metrics.http"),
    (".observe.token_file", "metrics.token_file"),
    (".observe.allow_remote", "metrics.allow_remote"),
    (".observe.opentelemetry", "tracing.opentelemetry"),
    (".", ""),
)


def _file_key(path: str) -> str | None:
    if path.startswith(".workers.tenant_users."):  # [tenants.<t>] user
        return f"tenants.{path.removeprefix('.workers.tenant_users.')}.user"
    for prefix, spelled in _FILE_KEYS:
        if path.startswith(prefix):
            return None if spelled is None else spelled + path.removeprefix(prefix)
    return path
