"""``reconcile``: which edited keys a running daemon takes (SIGHUP), and which need a restart."""

from __future__ import annotations

import tomllib

from asynctask.config import changed_keys, parse_config, reconcile


def _config(text: str):
    return parse_config(tomllib.loads(text))


BEFORE = """
[daemon]
log_level = "info"
durability = "full"
[workers]
min_workers = 2
[tenants.acme]
rate = "10/s"
max_backlog = 100
[functions."app.jobs:send"]
concurrency = 2
"""


def test_live_keys_are_taken_and_the_others_keep_their_old_value() -> None:
    running = _config(BEFORE)
    edited = _config(
        BEFORE.replace('"10/s"', '"20/s"')
        .replace("max_backlog = 100", "max_backlog = 5")
        .replace("concurrency = 2", "concurrency = 3")
        .replace('log_level = "info"', 'log_level = "debug"')
        .replace("min_workers = 2", "min_workers = 1")
        .replace('durability = "full"', 'durability = "normal"')
        + "[tenants.newco]\nmax_backlog = 7\n"
        + '[scheduler]\naffinity = "2s"\nshard_confinement = "always"\n'
    )
    change = reconcile(running, edited)
    assert change.applied == (
        "daemon.log_level",
        'functions."app.jobs:send".concurrency',
        "scheduler.affinity",
        "tenants.acme.max_backlog",
        "tenants.acme.rate",
        "tenants.newco",
    )
    assert change.restart == (
        "daemon.durability",
        "scheduler.shard_confinement",
        "scheduler.shards",  # one per worker: follows min_workers
        "workers.min_workers",
    )
    config = change.config
    assert config.scheduler.tenant("acme").max_backlog == 5
    assert config.scheduler.tenant("newco").max_backlog == 7
    assert config.daemon.log_level == "debug"
    assert config.daemon.durability == "full"
    assert config.workers.min_workers == 2
    assert config.scheduler.sharding == running.scheduler.sharding


def test_an_unchanged_file_changes_nothing() -> None:
    change = reconcile(_config(BEFORE), _config(BEFORE))
    assert (change.applied, change.restart) == ((), ())
    assert change.config == _config(BEFORE)


def test_keys_are_named_as_the_file_spells_them() -> None:
    before = _config("")
    after = _config(
        '[tenants."*"]\nmax_cron = 3\n[queues."acme/mail"]\nrate = "1/s"\n'
        '[tenants.acme]\nfunctions = ["app.*:*"]\nuser = 1000\n'
        '[metrics]\nhttp = "127.0.0.1:9100"\n[workers]\nmemory = "1G"\n'
        '[scheduler]\npriority_aging = "5s"\n'
    )
    assert changed_keys(before, after) == (
        "metrics.http",
        'queues."acme/mail"',
        "scheduler.priority_aging",
        "tenants.*.max_cron",
        "tenants.acme",  # a new entry is named once
        "tenants.acme.user",
        "workers.memory",
    )
