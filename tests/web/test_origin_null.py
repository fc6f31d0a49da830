"""A form posted from the console's own page under a strict referrer policy: Chromium sends
``Origin: null`` and ``Sec-Fetch-Site: same-origin`` (the browser test found the login refused
with the first slice's ``Referrer-Policy: no-referrer``)."""

from __future__ import annotations

from tests.e2e.conftest import DaemonProcess
from tests.web.conftest import Browser, browser_for, cli_state, web_token


def test_an_opaque_origin_the_browser_vouches_for_is_the_console_itself(
    web_daemon: DaemonProcess,
) -> None:
    token = web_token(web_daemon)
    fresh = browser_for(web_daemon, token)
    own = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    anonymous = Browser(fresh.host, fresh.port)
    assert anonymous.request("POST", "/login", {"token": token["token"]}, **own).status == 303
    handle = web_daemon.client().submit("tests.e2e.tasks:add", 1, 2, delay=600)
    page = fresh.get(f"/task?tenant=default&id={handle.id}")
    form = {"tenant": "default", "id": handle.id, "csrf": page.csrf}
    assert fresh.post("/task/cancel", form, Origin="null").status == 403
    assert cli_state(web_daemon, handle.id) == "scheduled"
    assert fresh.post("/task/cancel", form, **own).status == 303
    assert cli_state(web_daemon, handle.id) == "cancelled"
