"""Reading the deployment files the way their tools do, enough for the tests: a systemd
unit's ``Key=Value`` lines, a Dockerfile's instructions, and the JSON-form lists of the
compose file."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any


def unit_settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values (a key may repeat), comments and blank lines skipped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: a setting before any section: {line!r}"
        assert not line.endswith("\\"), f"{path}: continuation lines are not read here"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not Key=Value: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments skipped."""
    joined: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    instructions = []
    for line in joined:
        word, _, rest = line.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    return instructions


def exec_form(arguments: str) -> list[str]:
    """An instruction's JSON exec form (``["a", "b"]``), or its shell form split as sh would."""
    if arguments.startswith("["):
        value: Any = json.loads(arguments)
        assert isinstance(value, list)
        return [str(v) for v in value]
    return shlex.split(arguments)


def compose_lists(path: Path, key: str) -> list[list[str]]:
    """Every ``key: [..]`` list of the compose file, written in JSON form."""
    found = []
    for match in re.finditer(rf"^\s*{re.escape(key)}:\s*(\[.*\])\s*$", path.read_text(), re.M):
        found.append([str(v) for v in json.loads(match.group(1))])
    return found
