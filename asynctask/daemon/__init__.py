"""The daemon: the composition root that owns the live tasks and wires the core, the store,
the worker pool and the server together (``root.Daemon``), and ``run_daemon``, which the
``asynctask daemon`` command calls."""

from asynctask.daemon.root import Daemon, run_daemon

__all__ = ["Daemon", "run_daemon"]
