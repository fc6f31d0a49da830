"""The blocking and asyncio clients offer the same calls, with the same signatures.

``Client`` is generated from ``AsyncClient`` (``scripts/unasync.py``), so they cannot drift
unless the generated file is stale or edited by hand; these tests catch both, and pin the
public calls so one is not lost on the way (``Client.stop`` once had no async twin).
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asynctask.client import AsyncClient, AsyncTaskHandle, Client, TaskHandle

ROOT = Path(__file__).resolve().parent.parent

CALLS = {
    "connect", "close", "ping", "submit", "submit_cmd", "submit_status", "submit_many",
    "status", "wait", "result", "list", "list_page", "retry", "delete", "cron_add",
    "cron_list", "cron_remove", "cancel", "pause", "resume", "queues", "stats", "metrics",
    "reload", "stop", "logs", "inspect", "nodes", "web_token",
}  # fmt: skip


def _public(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_")
    }


def _sync_annotation(annotation: Any) -> Any:
    """An async member's annotation as the generated one reads (``AsyncX`` -> ``X``)."""
    if isinstance(annotation, str):
        return re.sub(r"\bAsync([A-Z]\w*)", r"\1", annotation)
    return annotation


@pytest.mark.parametrize(("async_cls", "sync_cls"), [(AsyncClient, Client),
                                                     (AsyncTaskHandle, TaskHandle)])  # fmt: skip
def test_same_methods_same_signatures(async_cls: type, sync_cls: type) -> None:
    async_calls, sync_calls = _public(async_cls), _public(sync_cls)
    assert set(async_calls) == set(sync_calls)
    for name, async_call in async_calls.items():
        sync_call = sync_calls[name]
        assert inspect.iscoroutinefunction(async_call), name
        assert not inspect.iscoroutinefunction(sync_call), name
        async_sig, sync_sig = inspect.signature(async_call), inspect.signature(sync_call)
        assert [
            (p.name, p.kind, p.default, _sync_annotation(p.annotation))
            for p in async_sig.parameters.values()
        ] == [(p.name, p.kind, p.default, p.annotation) for p in sync_sig.parameters.values()], name
        assert _sync_annotation(async_sig.return_annotation) == sync_sig.return_annotation, name
        assert async_call.__doc__ == sync_call.__doc__, name


def test_the_public_calls_are_all_there() -> None:
    assert set(_public(Client)) == CALLS
    assert set(_public(TaskHandle)) == {"status", "wait", "result"}


def test_the_generated_client_is_up_to_date() -> None:
    """What ``make lint`` checks, so a plain test run says it too."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_unasync_rules() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import unasync
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    source = (
        "from asynctask.client._async.client import AsyncClient\n"
        "async def f(c: AsyncClient) -> AsyncTaskHandle:\n"
        "    async with c:\n"
        "        return await c.submit('m:f')  # Asyncio and asyncio stay\n"
        "def __aenter__(self): ...\n"
    )
    assert unasync.unasync(source) == (
        "from asynctask.client._sync.client import Client\n"
        "def f(c: Client) -> TaskHandle:\n"
        "    with c:\n"
        "        return c.submit('m:f')  # Asyncio and asyncio stay\n"
        "def __enter__(self): ...\n"
    )
