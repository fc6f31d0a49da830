"""``asynctask.testing.eager()``: submits run the task at once, in this process, through the
wire encoding, with retries, ``current_task()`` and handles that answer (``testing/eager.py``)."""

from __future__ import annotations

import asyncio

import pytest

import asynctask
from asynctask import AsyncClient, Client, TaskNotSucceeded
from asynctask.errors import NotFound, UsageError
from asynctask.model import TaskState
from asynctask.testing import eager
from tests.testing import eagertasks
from tests.testing.eagertasks import add, async_double, chained, flaky, give_up, priority_kw

HERE = "tests.testing.eagertasks"


def test_the_function_objects_calls_run_at_once_and_their_handles_answer():
    with eager() as runner:
        handle = add.submit(2, b=3)
        assert handle.result(timeout=1) == 5
        assert handle.status().state is TaskState.SUCCEEDED
        assert add.delay(1).result() == 1
        assert add.apply_async((4,), {"b": 1}, countdown=60, priority=9).result() == 5
        assert add.options(queue="q", priority=2).submit(1, 1).status().queue == "q"
    assert [task.function for task in runner.tasks.values()] == [f"{HERE}:add"] * 4


def test_a_keyword_named_like_an_option_is_the_functions_own():
    with eager():
        assert priority_kw.submit(priority="high", width=2).result() == "high:2"
        assert priority_kw.options(priority=9).delay("low").result() == "low:1"


def test_clients_and_submit_many_run_eagerly_too():
    with eager():
        client = Client(socket="/nonexistent/asynctask.sock")
        assert client.submit(f"{HERE}:add", 1, 2).result() == 3
        handles = client.submit_many({"func": f"{HERE}:add", "args": [n, n]} for n in range(3))
        assert [h.result() for h in handles] == [0, 2, 4]
        assert client.submit_status(f"{HERE}:add", 5).result == 5


def test_retries_run_attempt_after_attempt_and_errors_are_kept():
    with eager():
        assert flaky.submit(2).result() == 3  # two failures, then the third attempt
        failed = flaky.submit(5)
        status = failed.status()
        assert status.state is TaskState.FAILED
        assert status.attempts == 3  # retries=2 from the decorator: 3 attempts in all
        assert [e["attempt"] for e in status.errors] == [1, 2, 3]
        with pytest.raises(TaskNotSucceeded, match="ConnectionError"):
            failed.result()
        explicit = flaky.options(retries=0).submit(1).status()
        assert (explicit.state, explicit.attempts) == (TaskState.FAILED, 1)
        assert give_up.submit().status().attempts == 1  # asynctask.Fail: never retried


def test_propagate_raises_the_tasks_exception_from_the_submit():
    with eager(propagate=True), pytest.raises(ConnectionError, match="attempt 1"):
        flaky.options(retries=0).submit(1)


def test_current_task_works_inside_an_eager_task():
    with eager():
        client = Client(tenant="acme")
        handle = client.submit(f"{HERE}:whoami", labels={"k": "v"}, task_id="mine")
        assert handle.result() == {
            "id": "mine",
            "tenant": "acme",
            "attempt": 1,
            "labels": {"k": "v"},
        }


def test_what_the_wire_refuses_fails_here_too():
    with eager():
        with pytest.raises(UsageError, match="cannot be encoded"):
            add.submit(eagertasks.Opaque())
        bad = Client().submit(f"{HERE}:returns_an_object").status()
        assert bad.state is TaskState.FAILED
        assert bad.error is not None
        assert bad.error["kind"] == "bad_result"
        missing = Client().submit(f"{HERE}:nowhere").status()
        assert (missing.state, missing.error["kind"]) == (TaskState.FAILED, "import")

        def local() -> None: ...

        with pytest.raises(UsageError, match="module-level"):
            Client().submit(local)


def test_an_id_already_used_returns_the_same_task_without_running_again():
    with eager() as runner:
        first = add.options(task_id="once").submit(1, 1)
        again = add.options(task_id="once").submit(5, 5)
        assert again.id == first.id
        assert again.result() == 2
        assert len(runner.tasks) == 1
        with pytest.raises(NotFound):
            Client().status("never-submitted")


def test_destinations_run_next():
    eagertasks.CALLS.clear()
    with eager():
        handle = chained.submit(1)
    expected = {"id": handle.id, "tenant": "default", "state": "succeeded", "result": 2,
                "error": None, "attempts": 1}  # fmt: skip
    recorded = eagertasks.CALLS
    assert recorded == [expected]


def test_async_twins_and_the_async_client():
    async def main() -> tuple[int, int, int]:
        first = await async_double.asubmit(2)
        second = await add.options(priority=1).aapply_async((3, 4))
        async with AsyncClient() as client:  # eager mode: nothing to connect to
            third = await client.submit(f"{HERE}:async_double", 5)
            return await first.result(), await second.result(), await third.result()

    with eager():
        assert asyncio.run(main()) == (4, 7, 10)


def test_an_async_task_from_blocking_code_inside_a_running_loop():
    async def main() -> int:
        return async_double.submit(21).result()  # a blocking submit, in async code

    with eager():
        assert asyncio.run(main()) == 42


@eager()
def test_eager_as_a_decorator():
    assert add.submit(1, 1).result() == 2


@eager()
async def _async_decorated() -> int:
    return await (await add.asubmit(2, 2)).result()


def test_eager_as_a_decorator_of_a_coroutine_function():
    assert asyncio.run(_async_decorated()) == 4


def test_nested_blocks_restore_the_outer_one_and_off_means_a_daemon():
    with eager() as outer:
        with eager() as inner:
            add.submit(1)
        add.submit(2)
    assert len(inner.tasks) == 1
    assert len(outer.tasks) == 1
    with pytest.raises(asynctask.AsynctaskError):  # no eager mode, no daemon here
        Client(socket="/nonexistent/asynctask.sock").submit(f"{HERE}:add", 1)
