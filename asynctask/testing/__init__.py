"""Help for testing code that uses asynctask (docs/testing.md, docs/testing-daemon.md).

- ``eager()``: submitted tasks run at once, in this process, with no daemon (``eager.py``).
- ``run_daemon()`` / ``DaemonProcess``: a real daemon in a temporary home (``daemon.py``); the
  pytest plugin's ``asynctask_daemon`` fixture (``pytest_plugin.py``) is built on it.
"""

from __future__ import annotations

from asynctask.testing.daemon import DaemonProcess, DaemonProcessError, run_daemon
from asynctask.testing.eager import EagerRunner, EagerTask, eager

__all__ = ["DaemonProcess", "DaemonProcessError", "EagerRunner", "EagerTask", "eager", "run_daemon"]
