"""``asynctask.task_logger(name)``: a logger whose records say which task wrote them.

Inside a worker, task code's ``logging`` already lands in its attempt's log
(``executor/capture.py``), where every line is that attempt's. Records that leave the attempt
do not say whose they are: a handler the task's program configures (a JSON log shipped
elsewhere, Django's ``LOGGING``), or a line written outside the attempt's capture. The adapter
adds the running task's ``task_id``, ``tenant`` and ``attempt`` to each record, read when the
record is made, so one module-level ``log = asynctask.task_logger(__name__)`` serves every
attempt, and outside a task (a test calling the function directly) adds nothing. A formatter
uses them as ``%(task_id)s``.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from asynctask.executor.taskcontext import CURRENT

if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:
    _Adapter = logging.LoggerAdapter


class TaskLoggerAdapter(_Adapter):
    """A ``LoggerAdapter`` that adds the running task's ``task_id``, ``tenant`` and ``attempt``
    (the names ``LogRecord`` attributes get) to each record's ``extra``."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        context = CURRENT.get()
        if context is not None:
            extra.update(task_id=context.id, tenant=context.tenant, attempt=context.attempt)
        given = kwargs.get("extra")
        if given:
            extra.update(given)  # the call's own extra wins
        kwargs["extra"] = extra
        return msg, kwargs


def task_logger(name: str | None = None) -> TaskLoggerAdapter:
    """``logging.getLogger(name)`` wrapped so its records carry the running task's fields."""
    return TaskLoggerAdapter(logging.getLogger(name), {})
