"""The tenant boundary in the web console: a user of ``[auth.users]`` logs in with a token
``asynctask web-token`` gave that user (over the socket, by peer credentials), sees only their
tenant, and another tenant's task is "not found", to read or to act on.

Needs root (a throwaway OS user, as ``tests/security`` makes one); skips with the reason
otherwise."""

from __future__ import annotations

import pwd
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from asynctask.client import Client
from tests.e2e.conftest import DaemonProcess
from tests.security.conftest import make_shared_daemon, shared_code
from tests.security.test_allowlist import _as_user, local_user
from tests.web.conftest import WEB, browser_for, cli_state
from tests.web.sse import EventStream

__all__ = ["local_user", "make_shared_daemon", "shared_code"]


def test_a_tenant_user_sees_only_their_tenant(
    make_shared_daemon: Callable[..., DaemonProcess], local_user: pwd.struct_passwd
) -> None:
    top = Path(tempfile.mkdtemp(prefix="asynctask-web-", dir="/tmp"))
    try:
        top.chmod(0o711)  # the user must reach the socket inside
        config = (
            f'{WEB}\n[auth.users]\n{local_user.pw_name} = ["acme"]\n\n'
            '[tenants.acme]\nfunctions = ["tests.e2e.tasks:*"]\n'
            '[tenants.beta]\nfunctions = ["tests.e2e.tasks:*"]\n'
        )
        daemon = make_shared_daemon(config, home=top / "home").start()
        mine = daemon.client("acme").submit("tests.e2e.tasks:add", 1, 2, delay=600).id
        theirs = daemon.client("beta").submit("tests.e2e.tasks:add", 3, 4, delay=600).id
        socket_path = daemon.socket

        granted = _as_user(local_user, lambda: Client(socket_path).web_token())
        assert "value" in granted, granted
        browser = browser_for(daemon, granted["value"])
        overview = browser.get("/")
        assert overview.status == 200
        assert f"{local_user.pw_name} (tenants: acme)" in overview.body
        assert "beta" not in overview.body

        listed = browser.get("/tasks")
        assert mine in listed.body
        assert theirs not in listed.body
        assert browser.get("/tasks?tenant=beta").status == 403
        assert browser.get(f"/task?tenant=acme&id={mine}").status == 200

        unknown = browser.get("/task?tenant=beta&id=no-such-task")
        foreign = browser.get(f"/task?tenant=beta&id={theirs}")
        assert foreign.status == 404
        assert unknown.status == 404
        assert foreign.body.replace(theirs, "ID") == unknown.body.replace("no-such-task", "ID")

        csrf = overview.csrf
        for action in ("cancel", "delete", "retry"):
            refused = browser.post(
                f"/task/{action}", {"tenant": "beta", "id": theirs, "csrf": csrf}
            )
            assert refused.status == 404, action
        assert cli_state(daemon, theirs, "beta") == "scheduled"
        paused = browser.post("/queue/pause", {"tenant": "beta", "queue": "beta", "csrf": csrf})
        assert paused.status == 403
        assert all(not q["paused"] for q in daemon.client().queues()["queues"])

        done = browser.post("/task/cancel", {"tenant": "acme", "id": mine, "csrf": csrf})
        assert done.status == 303
        assert cli_state(daemon, mine, "acme") == "cancelled"
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_a_user_with_no_tenant_gets_no_token(
    make_shared_daemon: Callable[..., DaemonProcess], local_user: pwd.struct_passwd
) -> None:
    top = Path(tempfile.mkdtemp(prefix="asynctask-web-", dir="/tmp"))
    try:
        top.chmod(0o711)
        config = f'{WEB}\n[auth.users]\nnobody = ["acme"]\n'
        daemon = make_shared_daemon(config, home=top / "home").start()
        socket_path = daemon.socket
        refused = _as_user(local_user, lambda: Client(socket_path).web_token())
        assert refused.get("error") == "Unauthorized", refused
        assert "no tenant" in refused["message"]
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_a_tenant_users_stream_and_bulk_actions_keep_to_their_tenant(
    make_shared_daemon: Callable[..., DaemonProcess], local_user: pwd.struct_passwd
) -> None:
    top = Path(tempfile.mkdtemp(prefix="asynctask-web-", dir="/tmp"))
    try:
        top.chmod(0o711)
        config = (
            f'{WEB}\n[auth.users]\n{local_user.pw_name} = ["acme"]\n\n'
            '[tenants.acme]\nfunctions = ["tests.e2e.tasks:*"]\n'
            '[tenants.beta]\nfunctions = ["tests.e2e.tasks:*"]\n'
        )
        daemon = make_shared_daemon(config, home=top / "home").start()
        mine = daemon.client("acme").submit("tests.e2e.tasks:add", 1, 2, delay=600).id
        theirs = [
            daemon.client("beta").submit("tests.e2e.tasks:add", 3, 4, delay=600).id
            for _ in range(2)
        ]
        socket_path = daemon.socket
        granted = _as_user(local_user, lambda: Client(socket_path).web_token())
        browser = browser_for(daemon, granted["value"])

        stream = EventStream(browser, "/events?view=overview")
        try:
            update = stream.until("acme")
            assert "beta" not in update.data
        finally:
            stream.close()
        foreign = EventStream(browser, f"/events?view=task&tenant=beta&id={theirs[0]}")
        try:
            assert foreign.status == 404
        finally:
            foreign.close()

        confirm = browser.get("/tasks/bulk?action=cancel&state=scheduled")
        assert "<strong>1</strong> task(s) match now" in confirm.body  # beta's two not counted
        done = browser.post(
            "/tasks/bulk", {"action": "cancel", "state": "scheduled", "csrf": confirm.csrf}
        )
        assert done.status == 303
        assert cli_state(daemon, mine, "acme") == "cancelled"
        assert all(cli_state(daemon, t, "beta") == "scheduled" for t in theirs)
        refused = browser.post(
            "/tasks/bulk", {"action": "cancel", "tenant": "beta", "csrf": confirm.csrf}
        )
        assert refused.status == 403
        assert all(cli_state(daemon, t, "beta") == "scheduled" for t in theirs)
    finally:
        shutil.rmtree(top, ignore_errors=True)
