"""Tasks the deployment tests run on a real daemon."""

from __future__ import annotations

import os


def environment() -> list[str]:
    """The names in the worker's environment."""
    return sorted(os.environ)
