"""Where the daemon's home and socket are, resolved the same way by the daemon, CLI and client.

Order (docs/contract.md, "Interfaces"): ``--home DIR``, else ``$ASYNCTASK_HOME``, else a per-user
state directory (``$XDG_STATE_HOME/asynctask``, else ``~/.local/state/asynctask``). The socket is
``<home>/asynctask.sock`` unless ``--socket`` / ``$ASYNCTASK_SOCKET`` names another path.
"""

from __future__ import annotations

import os
from pathlib import Path

SOCKET_NAME = "asynctask.sock"
DATABASE_NAME = "asynctask.db"
CONFIG_NAME = "asynctask.toml"
PID_NAME = "daemon.pid"
LOCK_NAME = "daemon.lock"
LOG_DIR = "logs"
RUN_DIR = "run"  # per-worker files of the running daemon (stack dumps for ``inspect``)


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    if home:
        return Path(home).expanduser().absolute()
    env = os.environ.get("ASYNCTASK_HOME")
    if env:
        return Path(env).expanduser().absolute()
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(state, "asynctask").absolute()


def resolve_socket(
    socket: str | os.PathLike[str] | None = None, home: str | os.PathLike[str] | None = None
) -> Path:
    if socket:
        return Path(socket).expanduser().absolute()
    env = os.environ.get("ASYNCTASK_SOCKET")
    if env:
        return Path(env).expanduser().absolute()
    return resolve_home(home) / SOCKET_NAME
