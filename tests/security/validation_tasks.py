"""Task functions of tests/security/test_validation.py (workers import them by this name)."""

from __future__ import annotations

import asynctask


def throttle_forever(retry_after: float) -> None:
    """Ask for a retry so far away that its due time would not fit a date."""
    raise asynctask.Throttled("try again much later", retry_after=retry_after)
