"""``[web]``: off by default, loopback unless ``allow_remote``, a bounded token life."""

from __future__ import annotations

import pytest

from asynctask.config import ConfigError, parse_config


def test_the_console_is_off_by_default() -> None:
    web = parse_config({}).web
    assert web.http is None
    assert web.allow_remote is False
    assert web.token_ttl == 12 * 3600


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:0", ("::1", 0)),
     ("localhost:9000", ("localhost", 9000))],
)  # fmt: skip
def test_loopback_addresses_are_taken(text: str, expected: tuple[str, int]) -> None:
    assert parse_config({"web": {"http": text}}).web.http == expected


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "[::]", "example.com"])
def test_other_addresses_need_allow_remote(host: str) -> None:
    with pytest.raises(ConfigError, match="allow_remote"):
        parse_config({"web": {"http": f"{host}:8080"}})
    web = parse_config({"web": {"http": f"{host}:8080", "allow_remote": True}}).web
    assert web.http is not None
    assert web.allow_remote is True


BAD = [{"http": "8080"}, {"http": ":80"}, {"http": 80}, {"token_ttl": "10s"},
       {"token_ttl": "31d"}, {"port": 1}]  # fmt: skip


@pytest.mark.parametrize("bad", BAD)
def test_bad_values_are_refused_by_name(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"web\."):
        parse_config({"web": bad})
