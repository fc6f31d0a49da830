"""Settings of the example project: one app (``notes``), SQLite, and asynctask as the tasks
backend.

``NOTES_DATABASE`` names the SQLite file (default ``db.sqlite3`` here). The daemon's workers
use the same file, so they must be able to write it and its directory: a worker runs
sandboxed, with the system read-only but ``/tmp`` and, when the daemon runs as root, as a uid
of its own. ``asynctask.toml`` beside this project passes ``NOTES_DATABASE`` and
``DJANGO_SETTINGS_MODULE`` to the workers.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "asynctask.contrib.django",  # manage.py asynctask
    "notes",
]
try:  # Django < 6.0: the tasks framework is the django_tasks backport, an app of its own
    import django.tasks  # noqa: F401
except ImportError:
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "mysite.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("NOTES_DATABASE", str(BASE_DIR / "db.sqlite3")),
        # the web process and the workers write the same file: wait for each other's locks
        "OPTIONS": {"timeout": 20},
    }
}

TASKS = {
    "default": {
        "BACKEND": "asynctask.contrib.django.backend.AsynctaskBackend",
        "QUEUES": [],
        # Django's tasks do not retry; here a failing task is tried once more
        "OPTIONS": {"retries": 1},
    }
}

USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
