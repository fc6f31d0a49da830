"""``manage.py asynctask ARGS...``: the ``asynctask`` command, run for this Django project.

Why a pass-through rather than a new command set: every verb (``daemon``, ``submit``, ``list``,
``top``, ...) already exists, with its ``--help``; what a Django project needs is that they run
*for the project*. So the command execs ``python -m asynctask ARGS...`` with:

* ``DJANGO_SETTINGS_MODULE`` set to this project's settings, and the directory that holds the
  settings package first on ``PYTHONPATH``. The daemon's ``PYTHONPATH`` reaches its workers, so
  ``manage.py asynctask daemon`` started from anywhere has workers that import the project's
  apps.
* For ``daemon``, one check first: the workers get a minimal environment, and without
  ``DJANGO_SETTINGS_MODULE`` in it a task that uses Django fails in every attempt. The command
  reads the config the daemon will read (``--config``, else ``<home>/asynctask.toml``) and
  refuses to start, saying which line to add, when the config does not pass it on
  (``--skip-checks`` starts it anyway).

``exec`` rather than a child process: signals (SIGTERM, SIGHUP for reload) and the exit code are
the daemon's own, as a process manager expects of ``manage.py asynctask daemon``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from asynctask.contrib.django import SETTINGS_ENV

#: What the workers' config must say for Django tasks to find their settings.
_FIX = f'[workers] env_pass = ["{SETTINGS_ENV}"]  (or [workers.env] {SETTINGS_ENV} = "{{module}}")'


class Command(BaseCommand):
    help = (
        "Run the asynctask command for this project: `manage.py asynctask daemon`, "
        "`manage.py asynctask list --json`, ... (`manage.py asynctask --help` lists the verbs). "
        f"{SETTINGS_ENV} is set and the project is put on PYTHONPATH, so the daemon's workers "
        "import the project's apps. Before `daemon` it checks that the daemon's config passes "
        f"{SETTINGS_ENV} on to the workers, and refuses to start if not (--skip-checks: start "
        "anyway). The command replaces this process with the asynctask command's."
    )
    # It serves no Django request: the system checks would only slow every `list` and `status`.
    requires_system_checks = ()

    def add_arguments(self, parser: CommandParser) -> None:  # for `manage.py help asynctask`
        parser.add_argument("argv", nargs="*", help="the asynctask command's arguments")

    def run_from_argv(self, argv: list[str]) -> None:
        # Everything after "asynctask" belongs to the asynctask command, flags included.
        try:
            self.execute_argv(argv[2:])
        except CommandError as exc:  # as BaseCommand.run_from_argv reports it
            self.stderr.write(f"CommandError: {exc}")
            sys.exit(exc.returncode)

    def handle(self, *args: Any, **options: Any) -> None:  # call_command("asynctask", ...)
        self.execute_argv([*args, *options.get("argv", [])])

    def execute_argv(self, argv: list[str]) -> None:
        module = settings.SETTINGS_MODULE
        skip_checks = "--skip-checks" in argv
        argv = [arg for arg in argv if arg != "--skip-checks"]
        if argv[:1] == ["daemon"] and not skip_checks and module:
            problem = config_problem(argv[1:], module)
            if problem is not None:
                raise CommandError(problem)
        env = dict(os.environ)
        if module:
            env[SETTINGS_ENV] = module
            root = project_root(module)
            if root is not None:
                parts = [str(root), *filter(None, [env.get("PYTHONPATH")])]
                env["PYTHONPATH"] = os.pathsep.join(parts)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "asynctask", *argv], env)


def project_root(settings_module: str) -> Path | None:
    """The directory holding the settings' top-level package (``mysite`` of
    ``mysite.settings``): the project's root, where ``manage.py`` usually is."""
    spec = importlib.util.find_spec(settings_module.partition(".")[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).parent


def config_problem(daemon_argv: list[str], settings_module: str) -> str | None:
    """Why a daemon started with ``daemon_argv`` would run Django tasks without their settings,
    or ``None``. Reads the config as ``asynctask daemon`` will (a broken config is left for the
    daemon to report)."""
    from asynctask.config import default_config_path, load_config
    from asynctask.errors import ConfigError
    from asynctask.paths import resolve_home

    config_path: str | Path | None = _option(daemon_argv, "--config")
    where = "the default config (no file)"
    if config_path is None:
        config_path = default_config_path(resolve_home(_option(daemon_argv, "--home")))
    if config_path is not None:
        where = str(config_path)
    try:
        config = load_config(config_path)
    except ConfigError:
        return None
    if SETTINGS_ENV in config.workers.env_pass or SETTINGS_ENV in config.workers.env:
        return None  # env_pass finds it: this command sets it for the daemon
    return (
        f"the daemon's workers would not get {SETTINGS_ENV}, so tasks that use Django would "
        f"fail: add {_FIX.format(module=settings_module)} to {where}, or pass --skip-checks"
    )


def _option(argv: list[str], name: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.partition("=")[2]
    return None
