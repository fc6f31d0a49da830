"""The environment a worker starts with: a minimal one, never the daemon's whole environment.

The daemon's environment is its operator's: API keys, cloud credentials, tokens. Task code is
a tenant's, so a worker gets only what a Python program needs to run and what the
configuration names (README.md, "Security model")::

    PATH              the daemon's (else a safe default): the interpreter's venv and the
                      programs command tasks run are found where the operator found them
    LANG              the daemon's, else C.UTF-8
    TZ                the daemon's, if set
    HOME              the home directory of the account the worker runs as
    ASYNCTASK_SOCKET  the daemon's socket: ``asynctask.Client()`` in a task reaches its daemon
    PYTHONPATH        the daemon's, if set (the pool puts the asynctask package first)
    [workers] env_pass   these names, copied from the daemon's environment where set
    [workers.env]        these values, which win over everything above

The pool adds its own ``ASYNCTASK_*`` variables after these; ``config/values.py`` refuses
``ASYNCTASK_*`` names in ``env_pass`` and ``[workers.env]``, so none can be overridden.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from typing import Final

SOCKET_ENV: Final = "ASYNCTASK_SOCKET"
#: PATH when the daemon has none.
SAFE_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_LANG: Final = "C.UTF-8"


def minimal_environment(
    daemon_env: Mapping[str, str],
    *,
    user: str | None,
    socket_path: str | None,
    passed: tuple[str, ...] = (),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A worker's environment before the pool's own variables; ``daemon_env`` is the daemon's
    (``os.environ``) and ``user`` the account the worker runs as (``None``: the daemon's)."""
    env = {
        "PATH": daemon_env.get("PATH") or SAFE_PATH,
        "LANG": daemon_env.get("LANG") or DEFAULT_LANG,
        "HOME": home_of(user, daemon_env),
    }
    for name in ("TZ", "PYTHONPATH"):
        if daemon_env.get(name):
            env[name] = daemon_env[name]
    if socket_path is not None:
        env[SOCKET_ENV] = socket_path
    for name in passed:
        if name in daemon_env:
            env[name] = daemon_env[name]
    env.update(extra or {})
    return env


def home_of(user: str | None, daemon_env: Mapping[str, str] | None = None) -> str:
    """The home directory of ``user`` (a name or uid; ``None``: the daemon's own account),
    from the password database; ``/`` for an account it does not know."""
    try:
        if user is None:
            return pwd.getpwuid(os.getuid()).pw_dir
        return (pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)).pw_dir
    except (KeyError, ValueError):
        fallback = (daemon_env or {}).get("HOME") if user is None else None
        return fallback or "/"
