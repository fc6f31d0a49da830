"""A user's ``mypy --strict`` on the README's code passes, and sees the types we promise.

The sample below is the README's task module and client calls (blocking and asyncio), plus
``assert_type`` lines for what the annotations promise (the decorated function keeps its
signature and return type; ``submit``, ``delay`` and ``apply_async`` give a ``TaskHandle``, and
``submit``/``delay`` are checked against the function's parameters) and ``type: ignore[...]`` lines
for mistakes mypy must catch (a misspelt option, a wrong argument type). ``--strict`` reports
an ignore that nothing needed, so a check that stopped catching its mistake fails here too.

mypy runs as a user's would: ``--strict``, no project config, ``asynctask`` found on
``MYPYPATH`` and its own modules silenced (as an installed package's are; an editable install's
import hook is invisible to mypy). The cache lives in ``.mypy_cache/`` so a rerun takes seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import asynctask
from asynctask.client import Client, SubmitOptions
from asynctask.client._options import SUBMIT_OPTIONS, LimitOptions, TaskOptions
from asynctask.decorator import _ALLOWED, _CODE_ONLY, _LIMITS, _WORKER_SIDE
from asynctask.resources import RESOURCE_KEYS

ROOT = Path(__file__).resolve().parent.parent

TASKS = """
import asynctask


@asynctask.task(retries=5, timeout="30s", concurrency=4, rate="50/s")
def resize(path: str, width: int) -> str:
    out_path = f"{path}.{width}.png"
    return out_path


@asynctask.task
def plain(n: int) -> list[int]:
    return [n]
"""

USAGE = """
import asyncio
from typing import Any, assert_type

from asynctask import AsyncClient, AsyncTaskHandle, Client, TaskHandle, TaskStatus
from myapp.tasks import plain, resize

paths = ["a.png", "b.png"]

client = Client()  # socket: $ASYNCTASK_SOCKET or <home>/asynctask.sock
handle = client.submit("myapp.tasks:resize", "a.png", kwargs={"width": 200}, priority=7)
print(handle.result(timeout=60))  # raises TaskNotSucceeded if it ended failed
client.submit_many({"func": "myapp.tasks:resize", "args": [p, 100]} for p in paths)

assert_type(handle, TaskHandle)
assert_type(handle.status(), TaskStatus)
assert_type(handle.result(timeout=60), Any)
assert_type(client.submit(resize, "a.png", kwargs={"width": 1}, delay="5m"), TaskHandle)
assert_type(client.list(state="failed", limit=10), list[TaskStatus])
assert_type(client.cancel(task_id="x"), int)
assert_type(client.stop(drain="10s"), dict[str, Any])

# the decorated function keeps its own signature and return type
assert_type(resize("a.png", 200), str)
assert_type(plain(3), list[int])

# its calls take its own arguments, checked against its signature; options go through options()
assert_type(resize.submit("a.png", width=200), TaskHandle)
assert_type(resize.delay("a.png", 200), TaskHandle)
assert_type(resize.apply_async(("a.png", 200), countdown=10, priority=7), TaskHandle)
assert_type(resize.options(priority=7, delay="5m").submit("a.png", 200), TaskHandle)
assert_type(resize.options(client=client, retries=1).delay("a.png", width=1), TaskHandle)

# mistakes a type checker must catch
resize("a.png", "wide")  # type: ignore[arg-type]
resize.submit("a.png", "wide")  # type: ignore[arg-type]
resize.delay("a.png")  # type: ignore[call-arg]
resize.delay("a.png", 200, priority=7)  # type: ignore[call-arg]
resize.options(priorty=7)  # type: ignore[call-arg]
resize.apply_async(("a.png", 200), countdown="soon")  # type: ignore[arg-type]
client.submit("myapp.tasks:resize", priorty=7)  # type: ignore[call-arg]
client.submit("myapp.tasks:resize", priority="high")  # type: ignore[arg-type]
client.cancel(limit=3)  # type: ignore[call-arg]


async def main() -> None:
    async with AsyncClient() as aclient:
        ahandle = await aclient.submit("myapp.tasks:resize", "a.png", kwargs={"width": 200})
        assert_type(ahandle, AsyncTaskHandle)
        assert_type(await ahandle.wait(timeout=5), TaskStatus)
        assert_type(await resize.asubmit("a.png", 200), AsyncTaskHandle)
        assert_type(await resize.adelay("a.png", width=200), AsyncTaskHandle)
        assert_type(await resize.options(client=aclient).asubmit("a.png", 1), AsyncTaskHandle)
        later = await resize.aapply_async(("a.png", 1), eta="2030-01-01T00:00:00Z")
        assert_type(later, AsyncTaskHandle)
        assert_type(await aclient.stop(), dict[str, Any])


asyncio.run(main())
"""


def test_mypy_strict_passes_on_the_readme_code(tmp_path: Path) -> None:
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "tasks.py").write_text(textwrap.dedent(TASKS))
    (tmp_path / "usage.py").write_text(textwrap.dedent(USAGE))
    command = [
        sys.executable, "-m", "mypy", "--strict", "--config-file", "",
        "--python-version", "3.11", "--follow-imports", "silent",
        "--cache-dir", str(ROOT / ".mypy_cache" / "readme-typing"),
        "myapp", "usage.py",
    ]  # fmt: skip
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_py_typed_ships_with_the_package() -> None:
    """PEP 561: without the marker a user's type checker ignores every annotation."""
    assert (Path(asynctask.__file__).parent / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "[tool.setuptools.package-data]\n" in pyproject
    assert re.search(r'^asynctask = \["py\.typed"[,\]]', pyproject, re.MULTILINE)


def test_the_typed_options_are_the_ones_the_client_and_decorator_accept() -> None:
    """The TypedDicts are what users' type checkers see; the sets the code checks must match."""
    assert LimitOptions.__optional_keys__ == RESOURCE_KEYS
    assert SubmitOptions.__optional_keys__ == SUBMIT_OPTIONS
    assert TaskOptions.__optional_keys__ == (
        _ALLOWED | _CODE_ONLY | _LIMITS | _WORKER_SIDE | RESOURCE_KEYS
    )


@pytest.mark.parametrize("name", sorted(SUBMIT_OPTIONS))
def test_every_typed_submit_option_is_accepted(name: str) -> None:
    """No typed option is refused as unknown (its value may still be refused: ``user``)."""
    from asynctask.client._calls import _Calls

    try:
        _Calls("default").spec("m:f", (), None, **{name: None})
    except Exception as exc:  # pragma: no cover - the assertion names the option
        pytest.fail(f"{name}: {exc}")
    assert Client  # the public import path still works
