"""asynctask for Django projects.

- ``submit_on_commit(func, *args, ...)``: submit once the current transaction commits
  (``oncommit.py``).
- ``asynctask.contrib.django.backend.AsynctaskBackend``: a backend for Django's tasks framework
  (``django.tasks`` from Django 6.0, the ``django_tasks`` backport before it), so
  ``@task``-decorated functions run in the daemon's workers.
- ``asynctask.contrib.django.worker``: imported at the top of a task module, it sets Django up in
  the worker and closes stale database connections around each attempt (worker hooks).
- ``"asynctask.contrib.django"`` in ``INSTALLED_APPS``: the ``manage.py asynctask`` command.

docs/frameworks.md shows them together. Importing this package needs Django installed but not
set up: nothing here touches the settings or the database until called.
"""

from __future__ import annotations

from asynctask.contrib.django.oncommit import shared_client, submit_on_commit

#: The variable that names the settings module; workers get it only when the daemon's config
#: passes it on (``[workers] env_pass`` or ``[workers.env]``).
SETTINGS_ENV = "DJANGO_SETTINGS_MODULE"

__all__ = ["SETTINGS_ENV", "shared_client", "submit_on_commit"]
