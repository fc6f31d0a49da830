from __future__ import annotations

from pathlib import Path

import pytest

from asynctask.config import Config, load_config, parse_config
from asynctask.errors import ConfigError

DOCUMENTED = Path(__file__).resolve().parent.parent / "config" / "asynctask.toml"


def test_the_documented_file_is_exactly_the_defaults():
    loaded = load_config(DOCUMENTED)
    assert loaded.daemon == Config().daemon
    assert loaded.workers == Config().workers
    assert loaded.retry == Config().retry
    assert loaded.auth.admins == ()
    assert dict(loaded.auth.users) == {}


def test_values_are_parsed():
    cfg = parse_config(
        {
            "daemon": {
                "durability": "normal",
                "drain": "5s",
                "max_frame": "1M",
                "max_payload": "64K",
            },
            "workers": {"min_workers": 4, "max_workers": 4, "timeout": "90s"},
            "retry": {"retries": 0, "backoff_base": "100ms"},
            "auth": {"admins": [0], "users": {"0": ["acme", "beta"]}},
        }
    )
    assert cfg.daemon.durability == "normal"
    assert cfg.daemon.drain == 5.0
    assert cfg.daemon.max_payload == 65536
    assert cfg.workers.min_workers == 4
    assert cfg.workers.timeout == 90.0
    assert cfg.retry.retries == 0
    assert cfg.retry.backoff_base == 0.1
    assert cfg.auth.users[0] == frozenset({"acme", "beta"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"daemon": {"durabilty": "full"}}, "unknown config key daemon.durabilty"),
        ({"nope": {}}, "unknown config key nope"),
        ({"daemon": {"durability": "sometimes"}}, "daemon.durability"),
        ({"daemon": {"drain": "soon"}}, "daemon.drain"),
        ({"workers": {"min_workers": 0}}, "workers.min_workers"),
        ({"workers": {"min_workers": 4, "max_workers": 2}}, "max_workers must be at least"),
        ({"workers": {"min_workers": "2"}}, "workers.min_workers"),
        ({"retry": {"retries": -1}}, "retry.retries"),
        ({"auth": {"admins": ["no-such-user-xyz"]}}, "no such user"),
        ({"daemon": {"max_payload": "32M"}}, "max_payload must be smaller"),
    ],
)
def test_bad_values_are_refused_with_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
