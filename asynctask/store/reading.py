"""Two helpers of the read queries, shared by ``Store`` and the modules it delegates to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any


def first_row(rows: Iterable[Any]) -> Any:
    return next(iter(rows), None)


def _escaped_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


@contextlib.contextmanager
def text_escaped(conn: Any) -> Iterator[None]:
    """Text read meanwhile on ``conn`` (``sqlite3`` or aiosqlite) that is not UTF-8 comes back
    escaped (``surrogateescape``: kept exactly, as ``\\udcXX``) instead of failing the read.
    Start-up and quarantine only: the factory is the connection's, not a statement's."""
    factory = conn.text_factory
    conn.text_factory = _escaped_text
    try:
        yield
    finally:
        conn.text_factory = factory
