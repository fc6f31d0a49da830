"""SIGHUP and ``asynctask reload``: the config file's live keys are taken at once, and every
other changed key is logged as needing a restart (it keeps its old value until then)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from asynctask.config import default_config_path, load_config, reconcile
from asynctask.core.reconfigure import reconfigure
from asynctask.daemon.intake import function_limits
from asynctask.errors import ConfigError

if TYPE_CHECKING:
    from asynctask.daemon.root import Daemon

log = logging.getLogger("asynctask.daemon")


class Reconfig:
    """The config reloads of one daemon (see the module docstring)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._engine = daemon.engine

    def reread(self, why: str) -> dict[str, Any]:
        """Take the config file's live keys (``config.reconcile``: limits, fairness knobs,
        submit defaults, log level) and log every other changed key as needing a restart; it
        keeps its old value. A file that does not load changes nothing and the daemon keeps
        running on the config it has: the log and the reply say why."""
        path = self._daemon.config.source or default_config_path(self._daemon.home)
        where = str(path) if path is not None else "(no file: the defaults)"
        try:
            change = reconcile(self._daemon.config, load_config(path))
        except ConfigError as exc:
            log.error(
                "%s: config %s not applied, the daemon keeps its current config: %s",
                why, where, exc.message, extra={"event": "config_error"},
            )  # fmt: skip
            return {"config": where, "error": exc.message, "applied": [], "restart": []}
        if change.applied:
            self._daemon.config = change.config
            declared = {
                name: function_limits(d) for name, d in self._engine.declared_limits.items()
            }
            reconfigure(
                self._daemon.scheduler, change.config.scheduler, declared, self._daemon.clock()
            )
            if "daemon.log_level" in change.applied:
                logging.getLogger("asynctask").setLevel(change.config.daemon.log_level.upper())
            self._daemon.engine.wake()  # a raised limit may let something start now
            log.info("%s: config %s: applied %s", why, where, ", ".join(change.applied),
                     extra={"event": "config_applied", "keys": list(change.applied)})  # fmt: skip
        if change.restart:
            log.warning(
                "%s: config %s: changed, needs a restart (keeps its old value until then): %s",
                why, where, ", ".join(change.restart),
                extra={"event": "config_restart", "keys": list(change.restart)},
            )  # fmt: skip
        if not change.applied and not change.restart:
            log.info("%s: config %s: no change", why, where, extra={"event": "config_same"})
        return {
            "config": where,
            "error": None,
            "applied": list(change.applied),
            "restart": list(change.restart),
        }
