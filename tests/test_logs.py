"""The daemon's log formats: text with k=v fields, and one JSON object a line."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import pytest

from asynctask.config import load_config
from asynctask.errors import ConfigError
from asynctask.logs import JsonFormatter, TextFormatter, setup_logging, utc_timestamp

# 2026-01-02 03:04:05.678 UTC
CREATED = 1767323045.678


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.getLogger("asynctask.daemon").makeRecord(
        "asynctask.daemon", logging.WARNING, __file__, 1, message, args, None, extra=extra
    )
    made.created = CREATED
    return made


def test_timestamps_are_iso_utc_with_milliseconds() -> None:
    assert utc_timestamp(CREATED) == "2026-01-02T03:04:05.678Z"
    assert utc_timestamp(0.0005) == "1970-01-01T00:00:00.000Z"


def test_json_lines_carry_the_fixed_keys_then_the_event_fields() -> None:
    line = JsonFormatter().format(
        record("serving on %s", "/s.sock", event="started", pid=12, socket="/s.sock")
    )
    assert "\n" not in line
    assert json.loads(line) == {
        "ts": "2026-01-02T03:04:05.678Z",
        "level": "warning",
        "logger": "asynctask.daemon",
        "msg": "serving on /s.sock",
        "event": "started",
        "pid": 12,
        "socket": "/s.sock",
    }


def test_json_keeps_its_own_keys_and_writes_odd_values_as_text() -> None:
    entry = json.loads(JsonFormatter().format(record("m", level="forged", path=Path("/x"))))
    assert entry["level"] == "warning"  # a field cannot replace a fixed key
    assert entry["path"] == "/x"


def test_json_puts_a_traceback_in_one_field() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        made = record("failed")
        made.exc_info = sys.exc_info()
    line = JsonFormatter().format(made)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["exc"].startswith("Traceback")
    assert "ValueError: bad" in entry["exc"]


def test_text_lines_read_as_before_with_fields_appended() -> None:
    plain = TextFormatter().format(record("stopped"))
    assert plain == "2026-01-02T03:04:05.678Z WARNING asynctask.daemon: stopped"
    line = TextFormatter().format(
        record(
            "refused",
            event="refused",
            tenant="acme",
            tasks=3,
            note="two words",
            retry_after=None,
            shards=[1, 2],
        )
    )
    assert line == (
        "2026-01-02T03:04:05.678Z WARNING asynctask.daemon: refused event=refused tenant=acme "
        'tasks=3 note="two words" retry_after=null shards=[1,2]'
    )


def test_setup_logging_installs_the_chosen_format(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("asynctask")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        setup_logging("info", "json")
        logging.getLogger("asynctask.daemon").info("hello", extra={"event": "x"})
        logging.getLogger("asynctask.daemon").debug("not at info")
        (line,) = capsys.readouterr().err.splitlines()
        assert json.loads(line)["event"] == "x"
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", json.loads(line)["ts"])
        with pytest.raises(ValueError, match="log format"):
            setup_logging("info", "yaml")
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def test_log_format_is_read_from_the_config_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "asynctask.toml"
    path.write_text('[daemon]\nlog_format = "json"\n')
    assert load_config(path).daemon.log_format == "json"
    path.write_text('[daemon]\nlog_format = "xml"\n')
    with pytest.raises(ConfigError, match=r"daemon\.log_format"):
        load_config(path)
