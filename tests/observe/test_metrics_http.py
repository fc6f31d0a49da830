"""The /metrics listener's bounds (issue 14): an idle connection is closed after the read
timeout, an oversized head is refused, connections past the cap get 503 at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from asynctask.server.http import MAX_HEAD, MetricsHttp


async def _render() -> str:
    return "x 1\n"


async def _listener(tmp_path: Path, **bounds: float) -> MetricsHttp:
    http = MetricsHttp("127.0.0.1", 0, _render, str(tmp_path / "token"), **bounds)  # type: ignore[arg-type]
    await http.start()
    return http


def test_an_idle_connection_is_closed_after_the_read_timeout(tmp_path: Path) -> None:
    async def main() -> float:
        http = await _listener(tmp_path, read_timeout=0.2)
        reader, writer = await asyncio.open_connection(*http.address)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing said
        took = time.monotonic() - started
        writer.close()
        await http.close()
        return took

    assert 0.1 < asyncio.run(main()) < 3


def test_an_oversized_request_head_is_refused(tmp_path: Path) -> None:
    async def main() -> bytes:
        http = await _listener(tmp_path)
        reader, writer = await asyncio.open_connection(*http.address)
        writer.write(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * (2 * MAX_HEAD))
        reply = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await http.close()
        return reply

    assert asyncio.run(main()).startswith(b"HTTP/1.1 431 ")


def test_connections_past_the_cap_get_503_and_the_rest_are_served(tmp_path: Path) -> None:
    async def main() -> tuple[bytes, bytes, str]:
        http = await _listener(tmp_path, max_connections=2)
        held = [await asyncio.open_connection(*http.address) for _ in range(2)]
        await asyncio.sleep(0.05)  # accepted: both count
        reader, writer = await asyncio.open_connection(*http.address)
        refused = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        for _, w in held:
            w.close()
        await asyncio.sleep(0.05)
        token = (tmp_path / "token").read_text().strip()
        reader, writer = await asyncio.open_connection(*http.address)
        writer.write(f"GET /metrics HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        served = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        shown = repr(http)
        await http.close()
        return refused, served, shown

    refused, served, shown = asyncio.run(main())
    assert refused.startswith(b"HTTP/1.1 503 ")
    assert served.startswith(b"HTTP/1.1 200 ")
    assert served.endswith(b"x 1\n")
    assert "connections=0/2" in shown
