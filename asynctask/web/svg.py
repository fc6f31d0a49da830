"""Pictures for the console, drawn server-side as inline SVG: the overview's per-minute charts
and a task's stage timeline.

Why server-side SVG and not a JS chart library: the page's Content-Security-Policy allows only
the console's own script, the series are 60 numbers, and an SVG is a few hundred bytes of text
that the page's tests can read. Every label goes through ``pages.esc`` like any other text (a
function or queue name is hostile input, and inside ``<svg>`` a ``<script>`` would run), and
numbers are formatted here, never pasted from a reply.

No clock is read: the timeline's times are the daemon's, and a chart's last point is the
current minute as ``stats`` gave it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any, Final

#: A chart's size in CSS pixels (the page scales it to its column).
CHART_WIDTH: Final = 240
CHART_HEIGHT: Final = 48
#: A timeline's size.
TIMELINE_WIDTH: Final = 640
TIMELINE_ROW: Final = 22
#: The stages of an attempt, in order, as ``status``' ``trace`` names them.
STAGES: Final = ("eligible", "dispatched", "started", "finished")
#: The spans between stages, and the class the stylesheet colours each with.
SPANS: Final = (("eligible", "dispatched", "wait"), ("dispatched", "started", "start"),
                ("started", "finished", "run"))  # fmt: skip


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _numbers(series: object) -> list[float]:
    if not isinstance(series, Sequence) or isinstance(series, str | bytes):
        return []
    return [float(v) if isinstance(v, int | float) and v > 0 else 0.0 for v in series]


def chart(series: object, label: str, css: str = "line") -> str:
    """One per-minute series (oldest first, as ``stats`` gives it) as a line over its area,
    with its peak and last value; ``label`` names it for a screen reader and a tooltip."""
    values = _numbers(series)
    title = f"{label}: last {len(values)} minutes, peak {_count(max(values, default=0))}, now " \
        f"{_count(values[-1] if values else 0)}"  # fmt: skip
    head = (
        f'<svg class="chart {_esc(css)}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" '
        f'width="{CHART_WIDTH}" height="{CHART_HEIGHT}" role="img" aria-label="{_esc(title)}">'
        f"<title>{_esc(title)}</title>"
    )
    if len(values) < 2:
        return head + "</svg>"
    top = max(values) or 1.0
    step = CHART_WIDTH / (len(values) - 1)
    inner = CHART_HEIGHT - 4
    points = " ".join(
        f"{i * step:.1f},{CHART_HEIGHT - 2 - v / top * inner:.1f}" for i, v in enumerate(values)
    )
    area = f"0,{CHART_HEIGHT} {points} {CHART_WIDTH},{CHART_HEIGHT}"
    return (
        f'{head}<polygon class="area" points="{area}"/>'
        f'<polyline class="stroke" points="{points}"/></svg>'
    )


def _count(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def charts(row: Mapping[str, Any]) -> str:
    """A stats row's charts: submitted, completed and failed per minute, backlog and running."""
    named = (
        ("submitted", "submitted/min", "line"),
        ("completed", "done/min", "line"),
        ("failed", "failed/min", "bad"),
        ("backlog_per_minute", "backlog", "line"),
        ("running_per_minute", "running", "line"),
    )
    return "".join(
        f"<figure><figcaption>{_esc(caption)}</figcaption>"
        f"{chart(row.get(key), f'{row_name(row)} {caption}', css)}</figure>"
        for key, caption, css in named
    )


def row_name(row: Mapping[str, Any]) -> str:
    """What a stats row is about, for the charts' titles."""
    parts = [str(row[k]) for k in ("tenant", "queue", "function") if row.get(k) is not None]
    return "/".join(parts) or "all"


def timeline(trace: object) -> str:
    """A task's attempts as bars on one time axis: waiting (eligible to dispatched), starting
    (dispatched to started) and running (started to finished), one row per attempt. Stages the
    daemon has not recorded are left out; nothing to draw gives an empty string."""
    rows = [s for s in trace if isinstance(s, Mapping)] if isinstance(trace, Sequence) else []
    times = [
        float(s[name]) for s in rows for name in STAGES if isinstance(s.get(name), int | float)
    ]
    if not times:
        return ""
    first, last = min(times), max(times)
    spread = max(last - first, 1e-3)
    left, width = 80, TIMELINE_WIDTH - 90
    height = TIMELINE_ROW * len(rows) + 24
    out = [
        f'<svg class="timeline" viewBox="0 0 {TIMELINE_WIDTH} {height}" width="{TIMELINE_WIDTH}"'
        f' height="{height}" role="img" aria-label="stage timeline">'
        "<title>stage timeline: waiting, starting, running per attempt</title>"
    ]

    def x(moment: float) -> float:
        return left + (moment - first) / spread * width

    for index, stage in enumerate(rows):
        y = 4 + index * TIMELINE_ROW
        out.append(
            f'<text x="0" y="{y + 14}" class="label">attempt {_esc(stage.get("attempt"))}</text>'
        )
        for start, end, css in SPANS:
            a, b = stage.get(start), stage.get(end)
            if not isinstance(a, int | float) or not isinstance(b, int | float):
                continue
            x0, x1 = x(float(a)), x(float(b))
            seconds = float(b) - float(a)
            out.append(
                f'<rect class="{css}" x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1.0):.1f}" '
                f'height="{TIMELINE_ROW - 6}"><title>{css}: {_seconds(seconds)}</title></rect>'
            )
    axis = 4 + len(rows) * TIMELINE_ROW + 12
    out.append(
        f'<text x="{left}" y="{axis}" class="label">0</text>'
        f'<text x="{left + width}" y="{axis}" class="label" text-anchor="end">'
        f"{_seconds(last - first)}</text>"
        f'<g class="legend"><rect class="wait" x="{left + 60}" y="{axis - 9}" width="10" '
        f'height="10"/><text x="{left + 74}" y="{axis}" class="label">waiting</text>'
        f'<rect class="start" x="{left + 140}" y="{axis - 9}" width="10" height="10"/>'
        f'<text x="{left + 154}" y="{axis}" class="label">starting</text>'
        f'<rect class="run" x="{left + 220}" y="{axis - 9}" width="10" height="10"/>'
        f'<text x="{left + 234}" y="{axis}" class="label">running</text></g></svg>'
    )
    return "".join(out)


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
