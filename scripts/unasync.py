"""Generate the blocking client from the async one: ``asynctask/client/_async/`` -> ``_sync/``.

httpcore's approach (its ``scripts/unasync.py``): the async code is the only source, and a
table of whole-word substitutions turns it into blocking code. ``async def`` and ``await`` go,
``Async`` names lose the prefix (``AsyncClient`` -> ``Client``, ``AsyncConnection`` ->
``Connection``, which ``_connection.py`` writes by hand for each style), and the dunder
methods of ``async with`` become those of ``with``. A regex table rather than the ``unasync``
package: eight rules we can read, no dependency, and the same ``--check`` for ``make lint``.

Usage: ``python scripts/unasync.py`` rewrites ``_sync/``; ``--check`` exits 1, changing
nothing, when a generated file differs from what its source gives (someone edited the async
client and did not regenerate, or edited the generated file by hand).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "asynctask" / "client" / "_async"
TARGET = ROOT / "asynctask" / "client" / "_sync"

HEADER = "# Generated from asynctask/client/_async/{name} by scripts/unasync.py: do not edit.\n"

SUBS = [
    (r"\basync def\b", "def"),
    (r"\bawait ", ""),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"\basynctask\.client\._async\b", "asynctask.client._sync"),
]
COMPILED = [(re.compile(pattern), replacement) for pattern, replacement in SUBS]


def unasync(text: str) -> str:
    for pattern, replacement in COMPILED:
        text = pattern.sub(replacement, text)
    return text


def formatted(text: str, path: Path) -> str:
    """``text`` as ``ruff format`` leaves it: dropping ``await`` shortens lines, and a call
    wrapped in the source may now fit on one, so the generated file is formatted too."""
    command = [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(path), "-"]
    return subprocess.run(command, input=text, capture_output=True, text=True, check=True).stdout


def expected() -> dict[Path, str]:
    out = {}
    for source in sorted(SOURCE.glob("*.py")):
        target = TARGET / source.name
        text = HEADER.format(name=source.name) + unasync(source.read_text())
        out[target] = formatted(text, target)
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in expected().items():
        if not path.exists() or path.read_text() != text:
            stale.append(path)
            if not check:
                path.write_text(text)
    if check and stale:
        names = ", ".join(str(path.relative_to(ROOT)) for path in stale)
        print(f"stale generated client: {names}; run `python scripts/unasync.py`", file=sys.stderr)
        return 1
    if not check:
        for path in stale:
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
