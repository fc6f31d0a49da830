"""A server-sent events reader for the console's ``/events``: one connection, events read
with a deadline (a stream that stays silent fails the test, it does not hang it)."""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass

from tests.web.conftest import Browser


@dataclass
class Event:
    name: str
    data: str


class EventStream:
    def __init__(self, browser: Browser, path: str) -> None:
        self.connection = http.client.HTTPConnection(browser.host, browser.port, timeout=60)
        headers = {"Accept": "text/event-stream"}
        if browser.cookie is not None:
            headers["Cookie"] = browser.cookie
        self.connection.request("GET", path, headers=headers)
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}

    def next(self, timeout: float = 20.0) -> Event:
        """The next event (comments and ``retry`` skipped); ``AssertionError`` past the
        deadline or at the end of the stream."""
        deadline = time.monotonic() + timeout
        name, data = "message", list[str]()
        while time.monotonic() < deadline:
            line = self.response.fp.readline().decode()  # the socket's timeout bounds it
            if line == "":
                raise AssertionError("the event stream ended")
            line = line.rstrip("\n")
            if line == "":
                if data:
                    return Event(name, "\n".join(data))
                name = "message"
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        raise AssertionError(f"no event within {timeout} s")

    def until(self, test: str, timeout: float = 20.0) -> Event:
        """The first ``update`` whose data contains ``test``."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.1, deadline - time.monotonic()))
            if event.name == "update" and test in event.data:
                return event

    def close(self) -> None:
        """Close the socket (the response holds it open past ``connection.close``)."""
        self.response.close()
        self.connection.close()
