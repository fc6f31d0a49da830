"""Help for testing code that uses asynctask (docs/testing.md).

- ``eager()``: submitted tasks run at once, in this process, with no daemon (``eager.py``).
"""

from __future__ import annotations

from asynctask.testing.eager import EagerRunner, EagerTask, eager

__all__ = ["EagerRunner", "EagerTask", "eager"]
