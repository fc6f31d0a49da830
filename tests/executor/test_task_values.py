"""Arguments and results with their types through a real worker, and argument bytes a
hostile client made: the attempt fails with a clear error and the worker goes on."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import msgpack

from asynctask.protocol.values import DATACLASS, pack_arguments, unpack_value

from .conftest import Harness


async def test_typed_arguments_and_result(harness: Harness) -> None:
    args = (
        (1, 2),
        {3},
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-3))),
        uuid.UUID(int=7),
        Decimal("9.99"),
    )
    outcome = await harness.run("echo", payload=pack_arguments(args, {"k": frozenset({1})}))
    assert outcome.ok, outcome.error
    assert outcome.result is not None
    back = unpack_value(outcome.result)
    assert back == [list(args), {"k": frozenset({1})}]
    assert [type(item) for item in back[0]] == [type(item) for item in args]
    assert back[0][2].utcoffset() == timedelta(hours=-3)


async def test_hostile_argument_bytes_fail_the_attempt_and_the_worker_goes_on(
    harness: Harness,
) -> None:
    cases = {
        msgpack.packb([[msgpack.ExtType(77, b"")], {}]): "unknown ext type 77",
        msgpack.packb([[msgpack.ExtType(4, b"123")], {}]): "3 bytes, not 16",
        b"\x92\x91" + b"\x91" * 100_000 + b"\x01\x80": "not a value asynctask encoded",
        msgpack.packb(
            [
                [
                    msgpack.ExtType(
                        DATACLASS, msgpack.packb(["tests.protocol.test_values:Point", {}])
                    )
                ],
                {},
            ]
        ): "module 'tests.protocol.test_values' is not imported here",
    }
    pids = set()
    for payload, words in cases.items():
        outcome = await harness.run("add", payload=payload)
        assert outcome.error is not None
        assert outcome.error["message"].startswith("the task payload cannot be unpacked: ")
        assert words in outcome.error["message"]
        pids.add(outcome.pid)
    assert pids <= set(harness.pool.pids)  # the same workers, alive: none died of it
    outcome = await harness.run("add", 1, 2)
    assert outcome.ok
    assert unpack_value(outcome.result or b"") == 3
