"""``[daemon] history_days`` and ``history_max``, and ``retention``, the older spelling."""

from __future__ import annotations

import pytest

from asynctask.config import DaemonConfig, parse_config
from asynctask.errors import ConfigError


def test_defaults_keep_a_week_and_a_million() -> None:
    daemon = parse_config({}).daemon
    assert (daemon.history_days, daemon.history_max) == (7.0, 1_000_000)


def test_history_days_and_max_are_read() -> None:
    daemon = parse_config({"daemon": {"history_days": 0.5, "history_max": 10}}).daemon
    assert (daemon.history_days, daemon.history_max) == (0.5, 10)
    assert parse_config({"daemon": {"history_days": 0, "history_max": 0}}).daemon == DaemonConfig(
        history_days=0.0, history_max=0
    )


@pytest.mark.parametrize(("retention", "days"), [("7d", 7.0), ("12h", 0.5), ("1s", 1 / 86400)])
def test_retention_still_works_as_a_duration(retention: str, days: float) -> None:
    assert parse_config({"daemon": {"retention": retention}}).daemon.history_days == pytest.approx(
        days
    )


@pytest.mark.parametrize(
    ("daemon", "message"),
    [
        ({"retention": "7d", "history_days": 7}, "older spelling of daemon.history_days"),
        ({"history_days": -1}, "daemon.history_days"),
        ({"history_days": "7d"}, "daemon.history_days"),
        ({"history_max": -1}, "daemon.history_max"),
        ({"history_max": 1.5}, "daemon.history_max"),
        ({"retention": "soon"}, "daemon.retention"),
    ],
)
def test_bad_history_settings_are_refused(daemon: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"daemon": daemon})
