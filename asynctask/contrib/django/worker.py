"""Django in a worker process: set up before task code runs, connections kept healthy.

Import it at the top of a task module that uses Django, before the project's own imports::

    import asynctask.contrib.django.worker  # noqa: F401  (django.setup() first in a worker)
    from notes.models import Note

Why an import and not only a hook: a worker imports the task's module to find the function,
and a module that imports models at its top raises ``AppRegistryNotReady`` unless
``django.setup()`` has run - before any hook could. So importing this module sets Django up
(once; a process where Django is already set up, or being set up, is left alone). The settings
module comes from ``DJANGO_SETTINGS_MODULE`` in the worker's environment, which the daemon
passes only when its config says so (workers get a minimal environment,
``executor/workerenv.py``)::

    [workers]
    env_pass = ["DJANGO_SETTINGS_MODULE"]     # copied from the daemon's environment
    # or: [workers.env] DJANGO_SETTINGS_MODULE = "mysite.settings"

The hooks it registers do per attempt what Django does per request (``request_started`` and
``request_finished``): ``close_old_connections`` before and after each attempt, so a connection
the database closed while the worker sat idle, past ``CONN_MAX_AGE``, or broken by the last
attempt's error is not handed to the next attempt. ``on_worker_start`` repeats the set-up for a
worker that imported this module some other way.
"""

from __future__ import annotations

import os

import asynctask
from asynctask.contrib.django import SETTINGS_ENV


def setup_django() -> None:
    """``django.setup()`` unless Django is set up already (or setting up: an app's module
    that imports a task module must not start a second, re-entrant set-up)."""
    import django
    from django.apps import apps
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    if apps.ready or apps.loading:
        return
    if not os.environ.get(SETTINGS_ENV) and not settings.configured:
        raise ImproperlyConfigured(
            f"{SETTINGS_ENV} is not set in this worker: add it to the daemon's config, "
            f'[workers] env_pass = ["{SETTINGS_ENV}"] (and start the daemon with it set), '
            f'or [workers.env] {SETTINGS_ENV} = "yourproject.settings"'
        )
    django.setup()


def close_old_connections() -> None:
    from django.db import close_old_connections as close

    close()


@asynctask.on_worker_start
def _on_worker_start() -> None:
    setup_django()


@asynctask.before_attempt
def _before_attempt(context: asynctask.TaskContext) -> None:
    close_old_connections()


@asynctask.after_attempt
def _after_attempt(context: asynctask.TaskContext, error: BaseException | None) -> None:
    close_old_connections()


setup_django()
