"""The Prometheus text exposition format (version 0.0.4), written out directly.

Written by hand rather than through ``prometheus-client``: the daemon already keeps its own
counters (``observe.metrics``), and mirroring them into the library's metric objects on every
scrape would cost more than printing them; the format is small and fixed. The tests parse the
output with ``prometheus-client``'s own parser, so a formatting slip fails there.

Rules followed: one ``# HELP`` and ``# TYPE`` per family before its samples; label values
escape ``\\``, ``"`` and newline; histogram buckets are cumulative, end with ``le="+Inf"``
equal to ``_count``; counters end in ``_total``; floats use Python's shortest repr, with
``+Inf``/``-Inf``/``NaN`` spelled Prometheus' way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Family:
    """One metric family: its samples are ``(suffix, labels, value)``."""

    name: str
    kind: str  # counter, gauge, histogram
    help: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)

    def add(self, labels: Labels, value: float, suffix: str = "") -> None:
        self.samples.append((suffix, labels, value))

    def add_histogram(
        self,
        labels: Labels,
        bounds: Sequence[float],
        buckets: Sequence[int],
        total: float,
    ) -> None:
        """``buckets`` are per-bucket counts (one more than ``bounds``: the overflow)."""
        running = 0
        for bound, count in zip(bounds, buckets, strict=False):
            running += count
            self.add((*labels, ("le", format_value(bound))), running, "_bucket")
        running += buckets[len(bounds)]
        self.add((*labels, ("le", "+Inf")), running, "_bucket")
        self.add(labels, total, "_sum")
        self.add(labels, running, "_count")


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for _ in render_steps(families, lines):
        pass
    return "\n".join(lines)


#: Families written between two ``yield``s of ``render_steps``.
RENDER_CHUNK: Final = 4


def render_steps(families: Iterable[Family], lines: list[str]) -> Iterator[None]:
    """``render`` in steps, appending to ``lines``: a ``yield`` after every ``RENDER_CHUNK``
    families, so the daemon can let its event loop run while a scrape is written."""
    for count, family in enumerate(families, 1):
        help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {family.name} {help_text}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for suffix, labels, value in family.samples:
            if labels:
                inner = ",".join(f'{key}="{escape(text)}"' for key, text in labels)
                lines.append(f"{family.name}{suffix}{{{inner}}} {format_value(value)}")
            else:
                lines.append(f"{family.name}{suffix} {format_value(value)}")
        if count % RENDER_CHUNK == 0:
            yield
    lines.append("")
