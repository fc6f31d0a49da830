"""Task code's ``logging`` in real workers: captured per attempt from ``log_level`` on
(``executor/capture.py``), and a task's own logging configuration left in charge."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import Harness, stop_and_check, value


def stderr_of(harness: Harness, aid: int) -> str:
    return "".join(data for stream, data in harness.logs.get(aid, []) if stream == "stderr")


@pytest.mark.parametrize(
    ("level", "shown", "hidden"),
    [
        ("info", ["INFO levels: t info", "WARNING levels: t warning"], ["t debug"]),
        ("debug", ["DEBUG levels: t debug", "INFO levels: t info"], []),
        ("error", [], ["t info", "t warning"]),
    ],
)
async def test_records_from_the_configured_level_go_to_the_attempts_log(
    level: str, shown: list[str], hidden: list[str]
) -> None:
    harness = Harness(workers=1, log_level=level)
    await harness.pool.start()
    try:
        aid = harness.submit("log_levels", "t")
        assert value(await harness.outcome(aid)) == "t"
        stderr = stderr_of(harness, aid)
        for line in shown:
            assert line in stderr
        for text in hidden:
            assert text not in stderr
    finally:
        await stop_and_check(harness)


async def test_off_is_pythons_own_default() -> None:
    harness = Harness(workers=1, log_level="off")
    await harness.pool.start()
    try:
        aid = harness.submit("log_levels", "t")
        await harness.outcome(aid)
        assert stderr_of(harness, aid) == "t warning\n"  # logging's own last resort
    finally:
        await stop_and_check(harness)


async def test_a_tasks_own_logging_configuration_stays_in_charge(harness: Harness) -> None:
    aid = harness.submit("configure_logging_and_log", "t")
    await harness.outcome(aid)
    assert stderr_of(harness, aid) == "own INFO t info\n"  # its format, and once only


async def test_records_go_to_the_attempt_that_logged_them_on_a_concurrent_worker() -> None:
    harness = Harness(workers=1, concurrency=2)
    await harness.pool.start()
    try:
        first = harness.submit("log_from_threads", "a", 0.3)
        second = harness.submit("log_from_threads", "b", 0.1)
        await asyncio.gather(harness.outcome(first), harness.outcome(second))
        for aid, tag in ((first, "a"), (second, "b")):
            lines = stderr_of(harness, aid).splitlines()
            assert [line.split(": ", 1)[1] for line in lines] == [f"{tag} start", f"{tag} end"]
    finally:
        await stop_and_check(harness)
