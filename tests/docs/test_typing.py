"""A user's ``mypy --strict`` passes on the guide's and the README's Python examples.

Each page's ``# file:`` blocks are written as modules and its other python blocks joined, in
page order, into one module (they share one namespace when they run: ``test_guide.py``), and
mypy checks them as a user's would (``tests/test_client_typing.py``: ``--strict``, no project
config, ``asynctask`` on ``MYPYPATH`` and silenced). Blocks marked not run are left out: they
may need what is not installed (Celery) or not built yet.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs import blocks as md
from tests.docs.test_guide import PAGES, ROOT, _relative


def _python_pages() -> list[Path]:
    return [
        page
        for page in PAGES
        if any(b.lang == "python" and b.skip is None for b in md.blocks(page.read_text()))
    ]


@pytest.mark.parametrize("path", _python_pages(), ids=_relative)
def test_mypy_strict_passes_on_the_examples(path: Path, tmp_path: Path) -> None:
    found = [b for b in md.blocks(path.read_text()) if b.lang == "python" and b.skip is None]
    targets: list[str] = []
    for block in found:
        if block.file is not None:
            target = tmp_path / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text)
            targets.append(block.file)
    # Each block at its own line of the page, so mypy's line numbers are the page's.
    lines: list[str] = []
    for block in found:
        if block.file is None:
            lines += [""] * (block.line - 1 - len(lines))
            lines += block.text.rstrip("\n").split("\n")
    if lines:
        (tmp_path / "page_examples.py").write_text("\n".join(lines) + "\n")
        targets.append("page_examples.py")
    command = [
        sys.executable, "-m", "mypy", "--strict", "--config-file", "",
        "--python-version", "3.11", "--follow-imports", "silent", "--namespace-packages",
        "--explicit-package-bases",
        "--cache-dir", str(ROOT / ".mypy_cache" / "guide-typing"),
        *targets,
    ]  # fmt: skip
    env = {**os.environ, "MYPYPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    output = (done.stdout + done.stderr).replace("page_examples.py", _relative(path))
    assert done.returncode == 0, output
