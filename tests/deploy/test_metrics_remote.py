"""``[metrics] allow_remote``: the /metrics listener may bind an address that is not loopback
when the operator says so, with the same bearer token. Traffic in these tests stays on
loopback: the daemon binds every address (0.0.0.0) and is scraped through 127.0.0.1."""

from __future__ import annotations

import http.client

import pytest

from asynctask.config import parse_config
from asynctask.errors import ConfigError


@pytest.mark.parametrize("value", ["0.0.0.0:9464", "10.1.2.3:80", "[::]:9464", "metrics.lan:9464"])
def test_an_address_that_is_not_loopback_needs_allow_remote(value: str) -> None:
    with pytest.raises(ConfigError, match=r"loopback only.*allow_remote = true"):
        parse_config({"metrics": {"http": value}})
    allowed = parse_config({"metrics": {"http": value, "allow_remote": True}}).observe
    host = value.rpartition(":")[0].strip("[]")
    assert allowed.http == (host, int(value.rpartition(":")[2]))
    assert allowed.allow_remote is True


@pytest.mark.parametrize("value", ["127.0.0.2:9464", "[::1]:0", "localhost:9464"])
def test_loopback_needs_nothing(value: str) -> None:
    assert parse_config({"metrics": {"http": value}}).observe.allow_remote is False


@pytest.mark.parametrize(
    ("value", "message"),
    [(":9464", "host name or address"), ("a b:80", "host name or address"),
     ("0.0.0.0", "host:port")],
)  # fmt: skip
def test_a_malformed_address_is_refused_either_way(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"metrics": {"http": value, "allow_remote": True}})


def test_allow_remote_is_a_boolean() -> None:
    with pytest.raises(ConfigError, match=r"metrics\.allow_remote"):
        parse_config({"metrics": {"http": "0.0.0.0:1", "allow_remote": "yes"}})


def _get(port: int, token: str | None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        connection.request("GET", "/metrics", headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_daemon_serves_metrics_on_every_address_when_allowed(make_daemon) -> None:
    daemon = make_daemon('[metrics]\nhttp = "0.0.0.0:0"\nallow_remote = true\n').start()
    url = daemon.client().ping()["metrics_url"]
    assert url.startswith("http://0.0.0.0:")  # bound to every address, not only loopback
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    token = (daemon.home / "metrics.token").read_text().strip()
    status, body = _get(port, token)
    assert status == 200
    assert b"asynctask_" in body
    assert _get(port, None)[0] == 401  # the same token rule as on loopback
    assert _get(port, "x" * 43)[0] == 401
    log = daemon.log.read_text()
    assert "which is not loopback" in log  # the operator is told, once, at start


def test_a_daemon_refuses_it_without_allow_remote(make_daemon) -> None:
    daemon = make_daemon('[metrics]\nhttp = "0.0.0.0:0"\n')
    with pytest.raises(AssertionError, match="allow_remote = true"):
        daemon.start()
