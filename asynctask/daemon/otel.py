"""Optional OpenTelemetry export: one span per ended attempt, where the SDK is installed.

Not a dependency: ``[tracing] opentelemetry = "otlp"`` or ``"console"`` turns it on, and
without ``opentelemetry-sdk`` (and, for OTLP, ``opentelemetry-exporter-otlp``) the daemon logs
a warning and runs without it. Spans go through a ``BatchSpanProcessor``, so exporting happens
on the SDK's thread and the event loop only builds the span.

A span covers the attempt from eligible to finished, with ``dispatched`` and ``started``
events. When the task's ``trace_id`` is a W3C ``traceparent`` (``00-<trace>-<span>-<flags>``)
or a bare 32-hex trace ID, the span joins that trace, so a client's own trace shows the work it
handed to the daemon.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import IO, Any, Final, Protocol

from asynctask.home import open_private
from asynctask.model import LiveTask

log = logging.getLogger(__name__)

_TRACEPARENT: Final = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_TRACE_ID: Final = re.compile(r"[0-9a-f]{32}")
#: File (under the daemon's log directory) the ``console`` exporter appends spans to.
SPANS_FILE: Final = "spans.jsonl"


class SpanExporter(Protocol):
    def attempt(self, task: LiveTask, entry: list[float | None], outcome: str) -> None: ...

    def close(self) -> None: ...


def parent_ids(trace_id: str | None) -> tuple[int, int] | None:
    """(trace id, parent span id) named by a task's ``trace_id``, or ``None``."""
    if trace_id is None:
        return None
    text = trace_id.lower()
    match = _TRACEPARENT.fullmatch(text)
    if match:
        trace, span = int(match.group(1), 16), int(match.group(2), 16)
    elif _TRACE_ID.fullmatch(text):
        trace, span = int(text, 16), 1  # no parent span given: a placeholder, never exported
    else:
        return None
    return (trace, span) if trace and span else None


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1e9)


class _OtelSpans:
    def __init__(self, provider: Any, tracer: Any, out: IO[str] | None) -> None:
        from opentelemetry import trace

        self._out = out
        self._provider = provider
        self._tracer = tracer
        self._trace = trace

    def attempt(self, task: LiveTask, entry: list[float | None], outcome: str) -> None:
        trace = self._trace
        attempt, eligible, dispatched, started, finished = entry
        context = None
        ids = parent_ids(task.trace_id)
        if ids is not None:
            parent = trace.SpanContext(
                trace_id=ids[0],
                span_id=ids[1],
                is_remote=True,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )
            context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        span = self._tracer.start_span(
            f"asynctask {task.function}",
            context=context,
            kind=trace.SpanKind.CONSUMER,
            start_time=_ns(eligible if eligible is not None else dispatched),
            attributes={
                "asynctask.task_id": task.id,
                "asynctask.tenant": task.tenant,
                "asynctask.queue": task.queue,
                "asynctask.function": task.function,
                "asynctask.attempt": int(attempt or 0),
                "asynctask.outcome": outcome,
                **({"asynctask.trace_id": task.trace_id} if task.trace_id else {}),
            },
        )
        if dispatched is not None:
            span.add_event("dispatched", timestamp=_ns(dispatched))
        if started is not None:
            span.add_event("started", timestamp=_ns(started))
        if outcome != "succeeded":
            span.set_status(trace.Status(trace.StatusCode.ERROR, outcome))
        span.end(end_time=_ns(finished))

    def close(self) -> None:
        self._provider.shutdown()  # flushes what the batch processor still holds
        if self._out is not None:
            self._out.close()


def make_span_exporter(mode: str, log_dir: Path) -> SpanExporter | None:
    """The exporter for ``[tracing] opentelemetry``, or ``None`` (with a warning) when the
    packages it needs are missing."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning(
            "tracing.opentelemetry = %r, but opentelemetry-sdk is not installed: no spans", mode
        )
        return None
    if mode == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(
                "tracing.opentelemetry = 'otlp', but opentelemetry-exporter-otlp-proto-http is "
                "not installed: no spans"
            )
            return None
        exporter: Any = OTLPSpanExporter()  # endpoint from OTEL_EXPORTER_OTLP_* as usual
        where = "OTLP"
        out = None
    else:
        path = log_dir / SPANS_FILE
        private = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # home.py
        out = open(private, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        exporter = ConsoleSpanExporter(
            out=out, formatter=lambda span: span.to_json(indent=None) + "\n"
        )
        where = str(path)
    provider = TracerProvider(resource=Resource.create({"service.name": "asynctask"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    log.info("tracing: a span per attempt to %s", where)
    return _OtelSpans(provider, provider.get_tracer("asynctask"), out)
