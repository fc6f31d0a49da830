"""The security suite attacks a real daemon: the e2e fixtures, shared."""

from tests.e2e.conftest import daemon, make_daemon

__all__ = ["daemon", "make_daemon"]
