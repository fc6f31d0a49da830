"""A real daemon with the web console on a loopback port, and a small browser for it: one
cookie jar, forms posted as a browser posts them, and the CSRF token read from the page."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import pytest

from tests.e2e.conftest import DaemonProcess, daemon, make_daemon

__all__ = ["Browser", "Reply", "daemon", "make_daemon", "web_daemon"]

WEB = '[web]\nhttp = "127.0.0.1:0"\n'


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.body)
        assert found is not None, self.body[:2000]
        return found.group(1)


@dataclass
class Browser:
    """Requests to one console, with the session cookie a login set."""

    host: str
    port: int
    cookie: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, **headers: str
    ) -> Reply:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sent = {**self.extra, **headers}
        if self.cookie is not None:
            sent["Cookie"] = self.cookie
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return Reply(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read().decode(),
            )
        finally:
            connection.close()

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str], **headers: str) -> Reply:
        return self.request("POST", path, form, **headers)

    def login(self, token: str) -> Reply:
        reply = self.post("/login", {"token": token})
        if reply.status == 303:
            self.cookie = reply.headers["set-cookie"].split(";", 1)[0]
        return reply


def web_token(daemon: DaemonProcess) -> dict[str, str]:
    done = daemon.cli("web-token", "--json")
    assert done.returncode == 0, done.stderr
    reply: dict[str, str] = json.loads(done.stdout)
    return reply


def browser_for(daemon: DaemonProcess, token: dict[str, str] | None = None) -> Browser:
    """A browser logged in with ``token`` (default: a new one for the test's own user)."""
    token = token or web_token(daemon)
    where = urlsplit(token["url"])
    assert where.hostname == "127.0.0.1"
    assert where.port is not None
    browser = Browser(where.hostname, where.port)
    assert browser.login(token["token"]).status == 303
    return browser


@pytest.fixture
def web_daemon(make_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    return make_daemon(WEB).start()


def cli_state(daemon: DaemonProcess, task_id: str, tenant: str = "default") -> str:
    done = daemon.cli("status", task_id, "--tenant", tenant, "--json")
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["state"])
