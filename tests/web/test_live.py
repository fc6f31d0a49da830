"""Live updates over server-sent events against a real daemon: the overview and a task's
logs follow, the CSRF token in an update is the viewer's own, the stream needs a session, and
the loop that feeds the streams renders each view once per tick for every console."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path

import pytest

from asynctask.web.live import MAX_STREAMS, Live, _event
from tests.e2e.conftest import DaemonProcess, poll
from tests.web.conftest import Browser, browser_for
from tests.web.sse import EventStream


def test_the_overview_follows_new_work(web_daemon: DaemonProcess) -> None:
    browser = browser_for(web_daemon)
    page = browser.get("/")
    assert 'data-events="/events?view=overview"' in page.body
    stream = EventStream(browser, "/events?view=overview")
    try:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "default-src 'none'" in stream.headers["content-security-policy"]
        first = stream.until("Pool")
        assert "tests.e2e.tasks:nap" not in first.data
        web_daemon.client().submit("tests.e2e.tasks:nap", 0.0)
        later = stream.until("tests.e2e.tasks:nap")
        assert f'name="csrf" value="{page.csrf}"' in later.data  # this session's own token
    finally:
        stream.close()


def test_a_task_page_follows_its_logs(web_daemon: DaemonProcess, tmp_path: Path) -> None:
    marker = tmp_path / "go"
    client = web_daemon.client()
    task = client.submit("tests.e2e.tasks:talk", 2, str(marker), 30.0)
    browser = browser_for(web_daemon)
    stream = EventStream(browser, f"/events?view=task&tenant=default&id={task.id}")
    try:
        assert stream.until('<span class="state running">').name == "update"
        marker.touch()
        done = stream.until("done talking")
        finished = '<span class="state succeeded">'
        if finished not in done.data:
            done = stream.until(finished)
        assert "half way\ndone talking" in done.data
        assert done.data.count('<svg class="timeline"') == 1  # the stage picture follows too
    finally:
        stream.close()


def test_an_event_stream_needs_a_session(web_daemon: DaemonProcess) -> None:
    browser = browser_for(web_daemon)
    anonymous = Browser(browser.host, browser.port)
    assert anonymous.get("/events?view=overview").status == 401
    assert browser.get("/events?view=nonsense").status == 400


def test_a_deleted_task_ends_its_stream(web_daemon: DaemonProcess) -> None:
    client = web_daemon.client()
    task = client.submit("tests.e2e.tasks:add", 1, 2)
    assert client.wait(task.id, timeout=30).state == "succeeded"
    browser = browser_for(web_daemon)
    stream = EventStream(browser, f"/events?view=task&tenant=default&id={task.id}")
    try:
        stream.until("succeeded")
        assert web_daemon.cli("delete", task.id).returncode == 0
        assert stream.next().name == "end"
    finally:
        stream.close()


def _fill(token: str, text: str) -> str:
    return text.replace("CSRF", token)


async def test_consoles_of_one_view_share_one_render_per_tick() -> None:
    rendered: list[object] = []

    async def render(view: object) -> str:
        rendered.append(view)
        return f"{view} for CSRF"

    live = Live(render, tick=3600)  # ticks driven by hand
    streams = [live.follow("a", functools.partial(_fill, f"token{n}"), lambda: True)
               for n in range(3)]  # fmt: skip
    other = live.follow("b", lambda t: t, lambda: True)
    for stream in (*streams, other):
        assert await anext(stream) == b"retry: 5000\n\n"
    pending = [asyncio.ensure_future(anext(s)) for s in (*streams, other)]
    await asyncio.sleep(0)
    await live.update()
    assert sorted(map(str, rendered)) == ["a", "b"]  # once per view, not once per console
    got = [await p for p in pending]
    assert got[0] == b"event: update\ndata: a for token0\n\n"
    assert got[2] == b"event: update\ndata: a for token2\n\n"
    await live.close()
    for stream in (*streams, other):
        assert await anext(stream) == b"event: end\ndata: \n\n"
        await stream.aclose()


async def test_an_unchanged_view_is_not_sent_again_and_a_slow_reader_gets_the_newest() -> None:
    texts = iter(["one", "one", "two", "three"])

    async def render(view: object) -> str:
        return next(texts)

    live = Live(render, tick=3600, keepalive=0.05)
    stream = live.follow("v", lambda t: t, lambda: True)
    assert await anext(stream) == b"retry: 5000\n\n"
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    await live.update()
    assert await pending == b"event: update\ndata: one\n\n"
    await live.update()  # "one" again: nothing sent, a keep-alive instead
    assert await anext(stream) == b": keep-alive\n\n"
    await live.update()
    await live.update()  # not read in between: only the newest is kept
    assert await anext(stream) == b"event: update\ndata: three\n\n"
    await live.close()
    await stream.aclose()


async def test_a_session_that_ends_ends_its_stream() -> None:
    valid = [True]

    async def render(view: object) -> str:
        return "x"

    live = Live(render, tick=3600)
    stream = live.follow("v", lambda t: t, lambda: valid[0])
    await anext(stream)
    valid[0] = False
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    await live.update()
    assert await pending == b"event: end\ndata: \n\n"
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert live.views() == set()
    await live.close()


def test_a_carriage_return_in_task_text_cannot_start_an_event_field() -> None:
    sent = _event("update", "log line\revent: end\r\ndata: forged")
    assert sent == b"event: update\ndata: log line\ndata: event: end\ndata: data: forged\n\n"


def test_a_daemon_stops_promptly_with_streams_open(web_daemon: DaemonProcess) -> None:
    browser = browser_for(web_daemon)
    streams = [EventStream(browser, "/events?view=overview") for _ in range(3)]
    try:
        for stream in streams:
            stream.until("Pool")
        started = time.monotonic()
        assert web_daemon.stop(timeout=20) == 0
        assert time.monotonic() - started < 15
        for stream in streams:
            assert stream.next().name == "end"
    finally:
        for stream in streams:
            stream.close()


def test_streams_past_the_cap_are_refused_and_pages_still_load(web_daemon: DaemonProcess) -> None:
    browser = browser_for(web_daemon)
    streams = [EventStream(browser, "/events?view=overview") for _ in range(MAX_STREAMS)]
    try:
        assert all(stream.status == 200 for stream in streams)
        for stream in streams:
            stream.until("Pool")
        assert browser.get("/events?view=overview").status == 503
        assert browser.get("/").status == 200
    finally:
        for stream in streams:
            stream.close()

    def reopened() -> bool:  # closed streams give their places back
        stream = EventStream(browser, "/events?view=overview")
        stream.close()
        return stream.status == 200

    poll(reopened)


def test_a_stream_of_a_task_that_is_not_there_is_refused_at_once(
    web_daemon: DaemonProcess,
) -> None:
    browser = browser_for(web_daemon)
    assert browser.get("/events?view=task&tenant=default&id=no-such-task").status == 404
    assert browser.get("/events?view=task&tenant=default&id=" + "x" * 5000).status == 400
    assert browser.get("/events?view=task&tenant=../..&id=a").status in (400, 404)
    assert "live view" not in web_daemon.log.read_text()
