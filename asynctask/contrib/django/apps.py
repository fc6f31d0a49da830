"""The Django app: ``INSTALLED_APPS = [..., "asynctask.contrib.django"]``.

Installing it gives the ``manage.py asynctask`` command; the task backend
(``asynctask.contrib.django.backend.AsynctaskBackend``) and ``submit_on_commit`` work without
it. The label is ``asynctask``, so it cannot clash with an app of the project called ``django``.
"""

from __future__ import annotations

from django.apps import AppConfig


class AsynctaskConfig(AppConfig):
    name = "asynctask.contrib.django"
    label = "asynctask"
    verbose_name = "asynctask"
