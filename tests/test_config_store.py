"""``[store]``: where the task record lives (README, "Scale-out"), checked before any start."""

from __future__ import annotations

import pytest

from asynctask.config import ConfigError, StoreConfig, parse_config, reconcile
from asynctask.store.open import redacted


def test_defaults_keep_the_sqlite_file() -> None:
    assert parse_config({}).store == StoreConfig(url=None, partitions=64, lease=10.0)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://asynctask@db.example:5432/asynctask",
        "postgres://asynctask@/asynctask?host=/run/postgresql",
        "postgresql:///asynctask?host=/tmp/sock&search_path=one",
    ],
)
def test_postgresql_urls_are_taken(url: str) -> None:
    assert parse_config({"store": {"url": url}}).store.url == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u@h/db", "unsupported scheme 'mysql'"),
        ("/var/lib/asynctask/tasks.db", "must be a postgresql:// URL"),
        ("", "must be a postgresql:// URL"),
        (5432, "must be a postgresql:// URL"),
        ("postgresql://u@h:port/db", "not a valid URL"),
        ("postgresql://u@h/my db", "whitespace"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: object, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_config({"store": {"url": url}})


def test_a_refused_url_never_repeats_its_password() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config({"store": {"url": "postgresql://u:s3cret@h:x/db"}})
    assert "s3cret" not in str(refused.value)
    assert redacted("postgresql://u:s3cret@h/db?password=s3cret") == (
        "postgresql://u@h/db?password=***"
    )


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"partitions": 0}, "store.partitions"),
        ({"partitions": 65537}, "between 1 and 65536"),
        ({"partitions": "64"}, "expected an integer"),
        ({"lease": "1s"}, "between 2s and 1h"),
        ({"lease": "2h"}, "between 2s and 1h"),
        ({"lease": "soon"}, "store.lease"),
        ({"leases": "10s"}, "unknown config key store.leases"),
    ],
)
def test_partitions_and_lease_are_bounded(table: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_config({"store": table})


def test_store_keys_need_a_restart() -> None:
    running = parse_config({})
    edited = parse_config(
        {"store": {"url": "postgresql://u@/db?host=/s", "partitions": 8, "lease": "20s"}}
    )
    change = reconcile(running, edited)
    assert change.config.store == running.store
    assert change.restart == ("store.lease", "store.partitions", "store.url")
