"""The web console over HTTP against a real daemon (loopback only): pages, actions, sessions,
CSRF and hostile task text. The tenant boundary is in ``test_tenants.py``."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
from datetime import UTC, datetime
from pathlib import Path

from asynctask.web import tokens
from asynctask.web.console import WEB_SECRET
from tests.e2e.conftest import DaemonProcess, poll
from tests.web.conftest import Browser, browser_for, cli_state, web_token

ERROR_SCRIPT = "<script>alert('owned')</script>"


def _failed(daemon: DaemonProcess, message: str) -> str:
    handle = daemon.client().submit("tests.e2e.tasks:boom", message, retries=0)
    assert daemon.client().wait(handle.id, timeout=30).state == "failed"
    return handle.id


def test_the_console_is_off_by_default(daemon: DaemonProcess) -> None:
    done = daemon.cli("web-token")
    assert done.returncode == 2
    assert "web console is off" in done.stderr
    assert "[web] http" in done.stderr
    assert "web console" not in daemon.log.read_text()


def test_every_page_renders_for_an_admin(web_daemon: DaemonProcess) -> None:
    client = web_daemon.client()
    done = client.submit("tests.e2e.tasks:talk", 2, "unused", 0.0)
    assert client.wait(done.id, timeout=30).state == "succeeded"
    failed = _failed(web_daemon, "the downstream said no")
    browser = browser_for(web_daemon)

    overview = browser.get("/")
    assert overview.status == 200
    assert "Pool" in overview.body
    assert "tests.e2e.tasks:boom" in overview.body
    assert "root (admin)" in overview.body or "(admin)" in overview.body

    listed = browser.get("/tasks")
    assert listed.status == 200
    assert done.id in listed.body
    assert failed in listed.body
    only_failed = browser.get("/tasks?state=failed")
    assert failed in only_failed.body
    assert done.id not in only_failed.body

    page = browser.get(f"/task?tenant=default&id={done.id}")
    assert page.status == 200
    assert "succeeded" in page.body
    assert "half way\ndone talking" in page.body  # the logs
    assert "Stage times" in page.body
    assert "<pre>&quot;talked&quot;</pre>" in page.body  # the result, decoded

    failure = browser.get(f"/task?tenant=default&id={failed}")
    assert failure.status == 200
    assert "ValueError: the downstream said no" in failure.body
    assert "Traceback" in failure.body or "boom" in failure.body  # the traceback
    assert 'action="/task/retry"' in failure.body

    grouped = browser.get("/failures")
    assert grouped.status == 200
    assert "tests.e2e.tasks:boom · ValueError" in grouped.body
    assert failed in grouped.body

    assert browser.get("/static/console.js").status == 200
    assert browser.get("/static/../console.py").status == 404
    assert browser.get("/no-such-page").status == 404


def test_the_task_list_pages_by_cursor(web_daemon: DaemonProcess) -> None:
    client = web_daemon.client()
    ids = [client.submit("tests.e2e.tasks:add", 1, 2, delay=600).id for _ in range(55)]
    browser = browser_for(web_daemon)
    first = browser.get("/tasks?state=scheduled")
    assert first.status == 200
    assert "Next page" in first.body
    shown = {task_id for task_id in ids if task_id in first.body}
    assert len(shown) == 50
    link = first.body.split('<p class="more"><a href="', 1)[1].split('"', 1)[0]
    second = browser.get(link.replace("&amp;", "&"))
    rest = {task_id for task_id in ids if task_id in second.body}
    assert rest == set(ids) - shown
    assert "Next page" not in second.body
    assert browser.get("/tasks?state=nonsense").status == 400
    assert browser.get("/tasks?since=yesterday").status == 400


def test_an_action_without_the_csrf_token_is_refused_and_changes_nothing(
    web_daemon: DaemonProcess,
) -> None:
    handle = web_daemon.client().submit("tests.e2e.tasks:add", 1, 2, delay=600)
    browser = browser_for(web_daemon)
    page = browser.get(f"/task?tenant=default&id={handle.id}")
    form = {"tenant": "default", "id": handle.id}

    assert browser.post("/task/cancel", form).status == 403
    assert browser.post("/task/cancel", {**form, "csrf": "forged"}).status == 403
    assert browser.post("/queue/pause", {"tenant": "default", "queue": "default"}).status == 403
    cross = browser.post("/task/cancel", {**form, "csrf": page.csrf}, Origin="http://evil.example")
    assert cross.status == 403
    other_site = browser.post(
        "/task/cancel", {**form, "csrf": page.csrf}, **{"Sec-Fetch-Site": "cross-site"}
    )
    assert other_site.status == 403
    opaque = browser.post("/task/cancel", {**form, "csrf": page.csrf}, Origin="null")
    assert opaque.status == 403  # an opaque origin the browser does not call same-origin
    assert cli_state(web_daemon, handle.id) == "scheduled"
    assert browser.get("/").headers["referrer-policy"] == "same-origin"
    assert web_daemon.client().queues()["queues"][0]["paused"] is False

    same_site = {"Origin": f"http://127.0.0.1:{browser.port}", "Sec-Fetch-Site": "same-origin"}
    done = browser.post("/task/cancel", {**form, "csrf": page.csrf}, **same_site)
    assert done.status == 303
    assert cli_state(web_daemon, handle.id) == "cancelled"


def test_a_task_whose_error_holds_a_script_is_rendered_inert(web_daemon: DaemonProcess) -> None:
    failed = _failed(web_daemon, ERROR_SCRIPT)
    browser = browser_for(web_daemon)
    for path in (f"/task?tenant=default&id={failed}", "/failures", "/tasks?state=failed"):
        reply = browser.get(path)
        assert reply.status == 200, path
        assert "<script>alert" not in reply.body, path
        assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in reply.body, path
        policy = reply.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert reply.headers["x-content-type-options"] == "nosniff"
        # The only script a page loads is the console's own file.
        assert reply.body.count("<script") == 1
        assert '<script src="/static/console.js"' in reply.body


def test_retry_of_a_failed_task_from_the_console(web_daemon: DaemonProcess, tmp_path: Path) -> None:
    flag = tmp_path / "down"
    flag.write_text("")
    client = web_daemon.client()
    handle = client.submit("tests.e2e.tasks:fail_while", str(flag), retries=0)
    assert client.wait(handle.id, timeout=30).state == "failed"
    browser = browser_for(web_daemon)
    page = browser.get(f"/task?tenant=default&id={handle.id}")
    flag.unlink()

    reply = browser.post("/task/retry", {"tenant": "default", "id": handle.id, "csrf": page.csrf})
    assert reply.status == 303
    assert "done=retried" in reply.headers["location"]
    assert client.wait(handle.id, timeout=30).state == "succeeded"
    assert cli_state(web_daemon, handle.id) == "succeeded"
    shown = browser.get(reply.headers["location"])
    assert "Queued again for a retry." in shown.body


def test_pause_and_resume_a_queue(web_daemon: DaemonProcess) -> None:
    client = web_daemon.client()
    client.submit("tests.e2e.tasks:add", 1, 2, delay=600)
    browser = browser_for(web_daemon)
    csrf = browser.get("/").csrf
    target = {"tenant": "default", "queue": "default", "csrf": csrf}
    assert browser.post("/queue/pause", target).status == 303
    poll(lambda: client.queues()["queues"][0]["paused"] is True)
    assert "Resume" in browser.get("/").body
    assert browser.post("/queue/resume", target).status == 303
    poll(lambda: client.queues()["queues"][0]["paused"] is False)


def test_delete_a_finished_task(web_daemon: DaemonProcess) -> None:
    failed = _failed(web_daemon, "gone soon")
    browser = browser_for(web_daemon)
    csrf = browser.get(f"/task?tenant=default&id={failed}").csrf
    reply = browser.post("/task/delete", {"tenant": "default", "id": failed, "csrf": csrf})
    assert reply.status == 303
    assert reply.headers["location"].startswith("/tasks")
    assert browser.get(f"/task?tenant=default&id={failed}").status == 404


def test_bad_forged_and_expired_tokens_are_refused(web_daemon: DaemonProcess) -> None:
    token = web_token(web_daemon)
    host, port = token["url"].removeprefix("http://").split(":")
    anonymous = Browser(host, int(port))
    assert anonymous.get("/").status == 401
    assert anonymous.post("/task/cancel", {"id": "x"}).status == 401
    assert anonymous.login("not-a-token").status == 401
    version, uid, expires, nonce, mac = token["token"].split(".")
    forged = ".".join([version, str(int(uid) + 1), expires, nonce, mac])
    assert anonymous.login(forged).status == 401
    secret = (web_daemon.home / WEB_SECRET).read_text().strip().encode()
    assert oct((web_daemon.home / WEB_SECRET).stat().st_mode & 0o777) == "0o600"
    expired, _ = tokens.issue(secret, os.getuid(), 1_000_000.0, 60)
    assert anonymous.login(expired).status == 401
    anonymous.cookie = f"asynctask_session={expired}"
    stale = anonymous.get("/")
    assert stale.status == 401
    assert "expired" in stale.body

    browser = browser_for(web_daemon, token)
    cookie = browser.cookie or ""
    assert "asynctask_session=" in cookie
    login = Browser(host, int(port)).post("/login", {"token": token["token"]})
    assert "HttpOnly" in login.headers["set-cookie"]
    assert "SameSite=Strict" in login.headers["set-cookie"]
    assert browser.get("/").status == 200
    logout = browser.post("/logout", {"csrf": browser.get("/").csrf})
    assert logout.status == 303
    assert "Max-Age=0" in logout.headers["set-cookie"]


def test_hostile_requests_get_an_error_and_the_daemon_serves_on(web_daemon: DaemonProcess) -> None:
    token = web_token(web_daemon)
    host, port = token["url"].removeprefix("http://").split(":")

    def raw(data: bytes) -> bytes:
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(data)
            return conn.recv(200)

    assert raw(b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 20000 + b"\r\n\r\n").startswith(
        b"HTTP/1.1 431"
    )
    assert raw(b"BREW /pot HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")
    assert raw(b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400")
    big = b"POST /login HTTP/1.1\r\nContent-Length: 999999\r\n\r\n"
    assert raw(big).startswith(b"HTTP/1.1 413")
    many = "&".join(f"f{n}=1" for n in range(100))
    assert raw(f"GET /tasks?{many} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()).startswith(
        b"HTTP/1.1 400"
    )
    chunked = b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert raw(chunked).startswith(b"HTTP/1.1 411")
    assert web_daemon.client().ping()["accepting"]
    assert browser_for(web_daemon, token).get("/").status == 200


def test_web_token_prints_a_link_and_the_token(web_daemon: DaemonProcess) -> None:
    done = web_daemon.cli("web-token")
    assert done.returncode == 0, done.stderr
    assert "open: http://127.0.0.1:" in done.stdout
    assert "/login#v1." in done.stdout
    as_json = json.loads(web_daemon.cli("web-token", "--json").stdout)
    assert as_json["login_url"] == f"{as_json['url']}/login#{as_json['token']}"


def test_a_task_page_shows_its_arguments_size_capped(web_daemon: DaemonProcess) -> None:
    client = web_daemon.client()
    small = client.submit("tests.e2e.tasks:echo", 1, "<b>two</b>", kwargs={"three": [3]}, delay=600)
    large = client.submit("tests.e2e.tasks:echo", "x" * 20_000, delay=600)
    huge = client.submit("tests.e2e.tasks:echo", "y" * 100_000, delay=600)
    browser = browser_for(web_daemon)
    page = browser.get(f"/task?tenant=default&id={small.id}").body
    assert "1, &quot;&lt;b&gt;two&lt;/b&gt;&quot;, three=[3]" in page
    capped = browser.get(f"/task?tenant=default&id={large.id}").body
    assert "x" * 4000 in capped
    assert "x" * 4200 not in capped
    assert "more characters" in capped
    measured = browser.get(f"/task?tenant=default&id={huge.id}").body
    assert "bytes of arguments: too large to show here" in measured
    assert "y" * 100 not in measured


def test_a_request_naming_another_host_gets_nothing(web_daemon: DaemonProcess) -> None:
    """DNS rebinding: a page of another site whose name resolves to 127.0.0.1 sends its own
    name as the Host."""
    token = web_token(web_daemon)
    browser = browser_for(web_daemon, token)
    assert browser.request("GET", "/", Host=f"evil.example:{browser.port}").status == 400
    assert browser.request("GET", "/login", Host="evil.example").status == 400
    assert browser.request("GET", "/login", Host="127.0.0.1.evil.example").status == 400
    assert browser.request("GET", "/login", Host="[::1]:80").status == 200
    assert browser.request("GET", "/login", Host="127.0.0.1").status == 200
    assert browser.request("GET", "/", Host=f"localhost:{browser.port}").status == 200
    assert browser.get("/").status == 200


@dataclasses.dataclass
class Parcel:
    """A dataclass argument: the console shows its fields, tagged, without rebuilding it."""

    weight: int


def test_a_task_page_shows_typed_values_tagged_and_rebuilds_no_class(
    web_daemon: DaemonProcess,
) -> None:
    client = web_daemon.client()
    when = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    handle = client.submit("tests.e2e.tasks:echo", when, (1, 2), Parcel(3), delay=600)
    page = browser_for(web_daemon).get(f"/task?tenant=default&id={handle.id}").body
    assert "{&quot;$datetime&quot;: &quot;2026-12-07T10:00:00+00:00&quot;}" in page
    assert "[1, 2]" in page
    assert "&quot;$dataclass&quot;: &quot;tests.web.test_console:Parcel&quot;" in page
    assert "ExtType" not in page


def test_the_overview_shows_a_throttled_functions_aimd_limit(
    web_daemon: DaemonProcess, tmp_path: Path
) -> None:
    """The issue's overview names the AIMD state: after throttling, the function's row shows
    the limit AIMD cut it to, as ``top`` does, below an untouched function's."""
    client = web_daemon.client()
    flag = tmp_path / "overloaded"
    flag.touch()
    throttle = "tests.e2e.tasks:throttle_while"
    throttled = [client.submit(throttle, str(flag), retries=0) for _ in range(4)]
    for handle in throttled:
        handle.wait(timeout=30)
    client.submit("tests.e2e.tasks:add", 1, 2).wait(timeout=30)
    browser = browser_for(web_daemon)

    def row_of(function: str) -> str:
        page = browser.get("/").body
        functions = page[page.index("<h2>Functions</h2>") :]
        start = functions.index(f">{function}</a>")
        return functions[start : functions.index("</tr>", start)]

    def limit_of(function: str) -> float:
        [limit] = re.findall(r"<td>([0-9.]+)</td>$", row_of(function))
        return float(limit)

    assert "AIMD limit" in browser.get("/").body
    untouched = limit_of("tests.e2e.tasks:add")  # the most it may run at once
    assert untouched >= 2
    poll(lambda: 1 <= limit_of(throttle) < untouched)  # cut by the throttling
