"""The ``asynctask_daemon`` fixture, as a user's test suite meets it: a project with a task
module and a test file, run by pytest in a subprocess, with no conftest line (the plugin comes
from the package's ``pytest11`` entry point)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TASKS = """
import asynctask


@asynctask.task(retries=0)
def shout(word):
    return word.upper() + "!"
"""

USER_TESTS = """
import os

import asynctask
import myproj.tasks


def test_submit_and_wait(asynctask_daemon):
    handle = asynctask.Client().submit(myproj.tasks.shout, "hello")
    assert handle.result(timeout=30) == "HELLO!"
    assert os.environ["ASYNCTASK_SOCKET"] == str(asynctask_daemon.socket)


def test_a_task_defined_in_the_test_module(asynctask_daemon):
    with asynctask_daemon.client() as client:
        assert client.submit("test_user:triple", 3).result(timeout=30) == 9


def triple(x):
    return 3 * x


async def test_the_async_client(asynctask_daemon):
    async with asynctask_daemon.async_client() as client:
        handle = await client.submit("myproj.tasks:shout", "async")
        assert await handle.result(timeout=30) == "ASYNC!"
"""


def test_the_fixture_runs_a_real_daemon_that_imports_the_users_modules(
    pytester: pytest.Pytester,
) -> None:
    pytester.mkpydir("myproj")
    pytester.path.joinpath("myproj", "tasks.py").write_text(TASKS)
    pytester.makepyfile(test_user=USER_TESTS)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)

    result.assert_outcomes(passed=3)


def test_a_config_override_reaches_the_daemon_and_a_bad_one_fails_the_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
import pytest


@pytest.fixture
def asynctask_daemon_config(request):
    return getattr(request, "param", "[retry]\\nretries = 0\\n")
"""
    )
    pytester.makepyfile(
        test_config="""
import pytest

import asynctask


def fails():
    raise ValueError("once is enough")


def test_no_retries(asynctask_daemon):
    status = asynctask.Client().submit("test_config:fails").wait(timeout=30)
    assert (status.state.value, status.attempts) == ("failed", 1)


@pytest.mark.parametrize("asynctask_daemon_config", ["[workers]\\nnot_a_key = 1\\n"], indirect=True)
def test_bad_config(asynctask_daemon):
    pass
"""
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*DaemonProcessError*exited at start-up*", "*not_a_key*"])
