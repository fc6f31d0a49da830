"""The guide harness itself (``tests/docs/test_guide.py``) on small pages written here: what it
runs, in which order, and that a failure names the page's line and shows the output.

The pages say ``<!-- docs: the page starts its own daemon -->`` and need none, so these tests
start no daemon."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.docs import blocks as md
from tests.docs.conftest import NOT_RUN
from tests.docs.test_guide import CONFIG, run_page

HEAD = f"# A test page\n\n{md.OWN_DAEMON}\n\n"


def _page(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(HEAD + body)
    return path


DOCUMENTED = md.documented_keys(CONFIG.read_text())


def _failure(tmp_path: Path, body: str) -> str:
    with pytest.raises(pytest.fail.Exception) as failed:
        run_page(_page(tmp_path, body), tmp_path / "run", DOCUMENTED)
    return str(failed.value)


def test_blocks_share_a_namespace_files_and_the_directory(tmp_path: Path) -> None:
    body = """
```python
# file: helpers/greet.py
def greet(name: str) -> str:
    return f"hello {name}"
```

```python
from helpers.greet import greet

message = greet("docs")
```

```console
$ test -f helpers/greet.py
$ echo "$ASYNCTASK_HOME" | grep -q /run/home
$ exit 3   # exits 3
```

```python
assert message == "hello docs"
from pathlib import Path
assert Path.cwd().name == "run"
```
"""
    run_page(_page(tmp_path, body), tmp_path / "run", set())


def test_a_failing_python_block_names_its_line_and_shows_its_output(tmp_path: Path) -> None:
    body = """
```python
x = 1
```

```python
print("about to divide")
y = x / 0
```
"""
    message = _failure(tmp_path, body)
    fence = HEAD.count("\n") + 6  # the second block's opening fence
    assert f"page.md:{fence}: python block failed" in message
    assert "ZeroDivisionError" in message
    assert f'page.md", line {fence + 2}' in message  # the traceback's line is the page's
    assert "about to divide" in message


def test_a_console_line_with_another_exit_code_fails(tmp_path: Path) -> None:
    body = """
```console
$ echo fine
fine
$ echo "went wrong" && false
```
"""
    message = _failure(tmp_path, body)
    line = HEAD.count("\n") + 5
    assert f'page.md:{line}: `echo "went wrong" && false` exited 1, expected 0' in message
    assert "went wrong" in message


def test_a_not_run_block_is_skipped_and_reported(tmp_path: Path) -> None:
    body = """
<!-- not run: needs a machine with systemd -->
```console
$ systemctl start asynctask-that-does-not-exist
```
"""
    before = len(NOT_RUN)
    run_page(_page(tmp_path, body), tmp_path / "run", set())
    reported = NOT_RUN[before:]
    del NOT_RUN[before:]  # the session's summary lists the guide's blocks, not this page's
    assert reported == [
        f"page.md:{HEAD.count(chr(10)) + 3} (console): needs a machine with systemd"
    ]


def test_a_toml_block_with_an_unknown_key_fails(tmp_path: Path) -> None:
    body = """
```toml
[daemon]
drian = "5s"
```
"""
    message = _failure(tmp_path, body)
    assert "[daemon] drian" in message


def test_a_process_left_running_does_not_hold_its_command_up(tmp_path: Path) -> None:
    body = """
```console
$ sleep 60 & echo $! > background.pid
```
"""
    started = time.monotonic()
    try:
        run_page(_page(tmp_path, body), tmp_path / "run", DOCUMENTED)
        assert time.monotonic() - started < 30  # not the 60 s of the sleep
    finally:
        os.kill(int((tmp_path / "run" / "background.pid").read_text()), signal.SIGKILL)


def test_a_daemon_the_page_started_is_stopped_when_the_page_fails(tmp_path: Path) -> None:
    body = """
```console
$ asynctask daemon --detach
$ asynctask ping --json > ping.json
$ false
```
"""
    message = _failure(tmp_path, body)
    assert "`false` exited 1" in message
    pid = json.loads((tmp_path / "run" / "ping.json").read_text())["pid"]
    assert not (tmp_path / "run" / "home" / "daemon.pid").exists()
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1].startswith("Z")  # gone, or a zombie
