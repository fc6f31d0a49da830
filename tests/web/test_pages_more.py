"""The second slice's pages over HTTP against a real daemon: charts and the stage picture as
inline SVG, the Cron page, and bulk actions by the Tasks filter (a confirmation that counts
first, the CSRF token required, the same selector ops as ``asynctask cancel --state ...``)."""

from __future__ import annotations

import re

from asynctask.web import pages, svg
from tests.e2e.conftest import DaemonProcess, poll
from tests.web.conftest import browser_for, cli_state

HOSTILE = "<script>alert(1)</script>\"'&"


def test_the_overview_draws_the_last_hour_and_a_task_its_stages(
    web_daemon: DaemonProcess,
) -> None:
    client = web_daemon.client()
    done = client.submit("tests.e2e.tasks:add", 1, 2)
    assert client.wait(done.id, timeout=30).state == "succeeded"
    browser = browser_for(web_daemon)
    overview = browser.get("/")
    assert "Last hour, per minute" in overview.body
    charts = re.findall(r'<svg class="chart[^"]*"[^>]*aria-label="([^"]*)"', overview.body)
    assert "default done/min: last 60 minutes, peak 1, now 1" in charts
    assert '<polyline class="stroke"' in overview.body
    page = browser.get(f"/task?tenant=default&id={done.id}")
    assert '<svg class="timeline"' in page.body
    assert "<title>run: " in page.body
    assert "<title>wait: " in page.body


def test_svg_labels_and_values_from_a_reply_are_inert() -> None:
    drawn = svg.charts({"tenant": HOSTILE, "completed": [0, 3, "<x>", None, 2]})
    assert "<script>" not in drawn
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;" in drawn
    assert "<x>" not in drawn  # a value that is not a number is drawn as 0, never pasted
    timeline = svg.timeline(
        [{"attempt": HOSTILE, "eligible": 10.0, "dispatched": 10.5, "started": "<b>",
          "finished": 12.0}]
    )  # fmt: skip
    assert "<script>" not in timeline
    assert "<b>" not in timeline
    assert "<title>wait: 500 ms</title>" in timeline
    assert "<title>run: " not in timeline  # no start: no run bar
    assert svg.timeline(None) == ""
    assert svg.timeline([{"attempt": 1}]) == ""
    assert "<polyline" not in svg.chart([], "empty")


def test_the_cron_page_shows_next_fire_times_and_last_runs(web_daemon: DaemonProcess) -> None:
    added = web_daemon.cli("cron", "add", "every-second", "* * * * * *", "tests.e2e.tasks:add",
                           "[1, 2]")  # fmt: skip
    assert added.returncode == 0, added.stderr
    browser = browser_for(web_daemon)

    def ran() -> str | None:
        body = browser.get("/cron").body
        return body if 'class="state succeeded"' in body else None

    page = poll(ran)
    assert "every-second" in page
    assert "<code>* * * * * *</code> (UTC)" in page
    last = re.search(r'href="(/task\?tenant=default&amp;id=cron%3Aevery-second%3A[^"]+)"', page)
    assert last is not None, page
    assert browser.get(last.group(1).replace("&amp;", "&")).status == 200
    assert "prefix=cron%3Aevery-second%3A" in page  # the entry's runs in the task list
    assert '<a href="/cron">Cron</a>' in page


def test_a_bulk_cancel_counts_first_needs_the_csrf_token_and_keeps_to_the_filter(
    web_daemon: DaemonProcess,
) -> None:
    client = web_daemon.client()
    chosen = [client.submit("tests.e2e.tasks:add", n, 1, delay=600, queue="bulk").id
              for n in range(3)]  # fmt: skip
    other = client.submit("tests.e2e.tasks:add", 9, 9, delay=600).id
    browser = browser_for(web_daemon)
    listed = browser.get("/tasks?queue=bulk")
    assert 'href="/tasks/bulk?queue=bulk&amp;action=cancel"' in listed.body

    confirm = browser.get("/tasks/bulk?queue=bulk&action=cancel")
    assert confirm.status == 200
    assert "<strong>3</strong> task(s) match now" in confirm.body
    assert all(cli_state(web_daemon, i) == "scheduled" for i in chosen)  # a GET changes nothing

    form = {"action": "cancel", "queue": "bulk"}
    assert browser.post("/tasks/bulk", form).status == 403  # no CSRF token
    assert browser.post("/tasks/bulk", {**form, "csrf": "forged"}).status == 403
    assert all(cli_state(web_daemon, i) == "scheduled" for i in chosen)

    done = browser.post("/tasks/bulk", {**form, "csrf": confirm.csrf})
    assert done.status == 303
    after = browser.get(done.headers["location"])
    assert "Cancelled 3 task(s)." in after.body
    assert all(cli_state(web_daemon, i) == "cancelled" for i in chosen)
    assert cli_state(web_daemon, other) == "scheduled"

    again = browser.get("/tasks/bulk?queue=bulk&action=cancel")
    assert "<strong>0</strong> task(s) match now" in again.body
    assert 'action="/tasks/bulk"' not in again.body  # nothing to confirm


def test_bulk_retry_delete_pause_and_resume_by_filter(web_daemon: DaemonProcess) -> None:
    client = web_daemon.client()
    failed = client.submit("tests.e2e.tasks:boom", "no", retries=0)
    assert client.wait(failed.id, timeout=30).state == "failed"
    waiting = client.submit("tests.e2e.tasks:add", 1, 1, delay=600, queue="held").id
    browser = browser_for(web_daemon)
    csrf = browser.get("/tasks").csrf

    def bulk(action: str, **filters: str) -> str:
        reply = browser.post("/tasks/bulk", {"action": action, **filters, "csrf": csrf})
        assert reply.status == 303, reply.body
        return browser.get(reply.headers["location"]).body

    assert "Paused 1 task(s)." in bulk("pause", queue="held")
    assert client.status(waiting).paused
    assert "Resumed 1 task(s)." in bulk("resume", queue="held")
    assert not client.status(waiting).paused
    assert web_daemon.client().queues()["queues"][0]["paused"] is False  # tasks, not the queue

    # A state filter outside what the action applies to selects nothing.
    confirm = browser.get("/tasks/bulk?action=retry&state=succeeded")
    assert "<strong>0</strong>" in confirm.body
    assert "Queued 1 task(s) again for a retry." in bulk("retry", function="tests.e2e.tasks:boom")
    poll(lambda: cli_state(web_daemon, failed.id) == "failed")
    assert "Deleted 1 task(s)." in bulk("delete", function="tests.e2e.tasks:boom")
    assert web_daemon.cli("status", failed.id).returncode != 0
    assert browser.get("/tasks/bulk?action=explode").status == 400
    assert browser.post("/tasks/bulk", {"action": "explode", "csrf": csrf}).status == 400


def test_the_nodes_page_shows_the_daemons_sharing_the_store(web_daemon: DaemonProcess) -> None:
    browser = browser_for(web_daemon)
    page = browser.get("/nodes")
    assert page.status == 200
    assert "One daemon on a SQLite store" in page.body
    assert web_daemon.proc is not None
    assert f"<td>{web_daemon.proc.pid}</td>" in page.body
    assert "(this one)" in page.body


def test_a_clusters_nodes_and_unowned_partitions_are_shown_inert() -> None:
    view = {
        "cluster": True, "me": "n1", "partitions": 8, "lease": 10.0, "unowned": [6, 7],
        "nodes": [
            {"node": "n1", "host": HOSTILE, "pid": 10, "started_at": 0.0, "heartbeat_at": 1.0,
             "age": 0.5, "running": 3, "partitions": [0, 1, 2], "me": True},
            {"node": "n2", "host": "b", "pid": 11, "started_at": 0.0, "heartbeat_at": 1.0,
             "age": 2.5, "running": 0, "partitions": [], "me": False},
        ],
    }  # fmt: skip
    page = pages.nodes_page(view, "root (admin)", "token")
    assert "8 partitions, lease 10.00 s" in page
    assert "<td>0, 1, 2</td>" in page
    assert "<td>none</td>" in page
    assert "2.50 s ago" in page
    assert "Partitions no live daemon holds (the survivors take them over): 6, 7" in page
    assert "<script>" not in page
