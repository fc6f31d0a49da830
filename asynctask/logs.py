"""Daemon log set-up: one line per event on stderr, with UTC timestamps, as text or JSON.

A log call may carry machine-readable fields through ``logging``'s ``extra=``::

    log.info("serving on %s", path, extra={"event": "started", "pid": pid, "workers": 4})

``event`` names what happened (``started``, ``recovery``, ``limit_kill``, ``timeout``,
``worker_died``, ``aimd``, ``refused``, ``confined``, ``released``, ``stopping``, ``stopped``);
the other keys are its fields. The two formats carry the same information:

* ``text`` (the default), for people: ``2026-01-02T03:04:05.678Z INFO asynctask.daemon:
  serving on ... event=started pid=12 workers=4``: the message stays a sentence, the fields
  follow as ``k=v`` (a value with a space, quote or ``=`` is written as a JSON string);
* ``json``, for log shippers: one object a line, ``{"ts", "level", "logger", "msg", ...fields}``
  (``exc`` holds a traceback), so nothing has to parse the sentence.

Fields are found as the record attributes a plain ``LogRecord`` does not have - that is what
``extra=`` adds - so a call without ``extra`` costs nothing more than it did, and the work of
finding fields is done only for records that pass the level and get written.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final

LOG_FORMATS: Final = ("text", "json")

#: What every ``LogRecord`` has; anything else on a record came in through ``extra=``.
_STANDARD: Final = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",  # Python 3.12 adds it
    }
)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record, in the order they were given."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


def utc_timestamp(created: float) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``: ``2026-01-02T03:04:05.678Z``."""
    seconds, millis = divmod(int(created * 1000), 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        if value and not any(c in value for c in ' "=\n\t'):
            return value
        return json.dumps(value)
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return json.dumps(value, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``<ts> <LEVEL> <logger>: <message> k=v ...``; a traceback follows on its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{utc_timestamp(record.created)} {record.levelname} {record.name}: "
            f"{record.getMessage()}"
        )
        extra = fields_of(record)
        if extra:
            line += " " + " ".join(f"{key}={_text_value(value)}" for key, value in extra.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts``, ``level``, ``logger``, ``msg``, then the event's fields.

    A field cannot replace those four (it is dropped: they are what every consumer relies on);
    a value JSON cannot hold is written as its ``str``. The line never contains a newline, so a
    traceback goes into ``exc`` as one string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(level: str = "info", log_format: str = "text") -> None:
    """Send the ``asynctask`` loggers to stderr in ``log_format`` (``text`` or ``json``)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger("asynctask")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
