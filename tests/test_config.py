from __future__ import annotations

from pathlib import Path

import pytest

from asynctask.config import Config, ServerConfig, load_config, parse_config
from asynctask.errors import ConfigError

DOCUMENTED = Path(__file__).resolve().parent.parent / "config" / "asynctask.toml"


def test_the_documented_file_is_exactly_the_defaults():
    loaded = load_config(DOCUMENTED)
    assert loaded.daemon == Config().daemon
    assert loaded.server == Config().server
    assert loaded.workers == Config().workers
    assert loaded.retry == Config().retry
    assert loaded.scheduler == Config().scheduler
    assert dict(loaded.functions) == {}
    assert loaded.auth.admins == ()
    assert dict(loaded.auth.users) == {}
    assert loaded.observe == Config().observe
    assert loaded.run_policy == Config().run_policy


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
        ({"tenants": {"acme": {"wieght": 2}}}, "unknown config key tenants.acme.wieght"),
        ({"tenants": {"acme": {"rate": "fast"}}}, "tenants.acme.rate"),
        ({"queues": {"noslash": {}}}, "<tenant>/<queue>"),
        ({"functions": {"not a ref": {}}}, "package.module:function"),
        ({"functions": {"m:f": {"priority": 11}}}, "priority"),
        ({"scheduler": {"reserve": {"12": 1}}}, "not a priority"),
        ({"aimd": {"decrease": 1.5}}, "aimd.decrease"),
        ({"scheduler": {"shards": 3}}, "cannot exceed workers.min_workers"),
        ({"scheduler": {"shard_confinement": "never"}}, "scheduler.shard_confinement"),
        ({"scheduler": {"fault_window": "soon"}}, "scheduler.fault_window"),
        ({"scheduler": {"fault_window": "0s"}}, "scheduler.fault_window"),
        ({"scheduler": {"fault_ratio": 1.5}}, "scheduler.fault_ratio"),
        ({"scheduler": {"shards_per_tenant": 0}}, "scheduler.shards_per_tenant"),
    ],
)
def test_bad_values_are_refused_with_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_scheduling_sections():
    cfg = parse_config(
        {
            "tenants": {"*": {"max_backlog": 50}, "acme": {"weight": 3, "rate": "10/s"}},
            "queues": {"acme/reports": {"concurrency": 1}},
            "functions": {"m:f": {"queue": "exclusive", "concurrency": 2, "aimd": False}},
            "scheduler": {"priority_aging": "1s", "reserve": {"9": 2}, "caps": {"1": 3}},
            "workers": {"min_workers": 2, "max_workers": 6},
        }
    )
    s = cfg.scheduler
    assert s.tenant("other").max_backlog == 50
    assert s.tenant("acme").weight == 3.0
    assert s.tenant("acme").rate == 10.0
    assert s.tenant("acme").max_backlog == 50  # inherits the "*" defaults
    assert s.queue("acme", "reports").concurrency == 1
    assert s.function("m:f").concurrency == 2
    assert s.function("m:f").aimd is False
    assert cfg.functions["m:f"].queue == "exclusive"
    assert (s.aging, dict(s.reserve), dict(s.caps), s.capacity) == (1.0, {9: 2}, {1: 3}, 6)


def test_shard_settings():
    default = parse_config({"workers": {"min_workers": 6, "max_workers": 8}}).scheduler.sharding
    assert (default.shards, default.per_tenant, default.confinement) == (6, 2, "faults")
    cfg = parse_config(
        {
            "workers": {"min_workers": 8},
            "scheduler": {
                "shards": 4,
                "shards_per_tenant": 1,
                "shard_confinement": "always",
                "fault_threshold": 5,
                "fault_ratio": 0.2,
                "fault_window": "2m",
                "fault_backoff": "250ms",
                "fault_backoff_max": "10s",
                "shard_probation": 0,
            },
        }
    ).scheduler.sharding
    assert (cfg.shards, cfg.per_tenant, cfg.confinement, cfg.fault_threshold) == (4, 1, "always", 5)
    assert (cfg.fault_window, cfg.fault_backoff, cfg.fault_backoff_max) == (120.0, 0.25, 10.0)
    assert cfg.probation == 0
    assert cfg.fault_ratio == 0.2


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:0", ("::1", 0)),
     ("localhost:80", ("localhost", 80))],
)  # fmt: skip
def test_the_metrics_listener_takes_a_loopback_address(value, expected) -> None:
    assert parse_config({"metrics": {"http": value}}).observe.http == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [("0.0.0.0:9464", "loopback only"), ("10.1.2.3:80", "loopback only"),
     ("127.0.0.1", "host:port"), ("127.0.0.1:70000", "host:port"), (9464, "host:port")],
)  # fmt: skip
def test_a_bad_metrics_address_is_refused(value, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"metrics": {"http": value}})


def test_tracing_export_is_one_of_the_known_modes() -> None:
    assert parse_config({}).observe.opentelemetry == "off"
    assert parse_config({"tracing": {"opentelemetry": "otlp"}}).observe.opentelemetry == "otlp"
    with pytest.raises(ConfigError, match=r"tracing\.opentelemetry"):
        parse_config({"tracing": {"opentelemetry": "zipkin"}})


def test_server_bounds() -> None:
    assert Config().server == ServerConfig(5.0, 600.0, 256)
    cfg = parse_config(
        {"server": {"handshake_timeout": "300ms", "idle_timeout": "2m",
                    "max_connections_per_user": 5}}
    )  # fmt: skip
    assert cfg.server == ServerConfig(0.3, 120.0, 5)


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ({"handshake_timeout": 0}, "server.handshake_timeout"),
        ({"idle_timeout": "soon"}, "server.idle_timeout"),
        ({"max_connections_per_user": 0}, "server.max_connections_per_user"),
        ({"max_connections": 5}, "unknown config key server.max_connections"),
    ],
)
def test_bad_server_bounds_are_refused(server: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"server": server})
