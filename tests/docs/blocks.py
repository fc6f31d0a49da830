"""The guide's code blocks and the config keys it documents, read from Markdown (no I/O here
but what the caller passes in).

The docs convention (``docs/index.md``, "How the examples are checked") says what each fenced
block is: ``python`` runs (or, with a first line ``# file: PATH``, is written to PATH),
``console`` runs each ``$ `` line, ``toml`` is parsed and its config keys checked, any other tag
is shown only, and ``<!-- not run: REASON -->`` on the line before a fence skips the block.
``tests/docs/test_guide.py`` acts on what this module finds; ``tests/docs/test_blocks.py``
pins the reading.

Config keys are ``(section, key)`` pairs. A section that holds one table per name
(``[tenants.acme]``, ``[queues."acme/reports"]``, ``[functions."mod:fn"]``) is written with
``*`` for the name (``tenants.*``); a table whose keys are the user's own names (``[workers.env]``,
``[auth.users]``) is one key of its parent (``("workers", "env")``), its contents unchecked.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

#: Sections holding one table per tenant, queue or function.
NAMED_SECTIONS: Final = frozenset({"tenants", "queues", "functions"})

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not run\s*:?\s*(?P<reason>.*?)\s*-->\s*$")
_FILE = re.compile(r"^#\s*file:\s*(?P<path>\S+)\s*$")
_EXITS = re.compile(r"\s+#\s*exits\s+(?P<code>\d+)\s*$")
#: A page whose own console blocks start (and stop) its daemon: the harness starts none.
OWN_DAEMON: Final = "<!-- docs: the page starts its own daemon -->"


def starts_own_daemon(text: str) -> bool:
    """Whether the page has the ``OWN_DAEMON`` line (a line of its own, not a mention)."""
    return any(line.strip() == OWN_DAEMON for line in text.split("\n"))


class DocsError(Exception):
    """A page breaks the docs convention itself (an unclosed fence, a marker with no reason)."""


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: ``line`` is the page's line number (1-based) of its first code line."""

    lang: str
    line: int
    text: str
    skip: str | None = None  # the reason given in ``<!-- not run: REASON -->``

    @property
    def file(self) -> str | None:
        """The path a ``# file: PATH`` python block is written to, else ``None``."""
        if self.lang != "python":
            return None
        first = self.text.split("\n", 1)[0]
        match = _FILE.match(first)
        return match["path"] if match else None

    @property
    def fence_line(self) -> int:
        return self.line - 1


@dataclass(frozen=True, slots=True)
class Command:
    """One ``$ `` line of a console block (with its ``\\`` continuations joined)."""

    line: int
    command: str
    exits: int = 0


def blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown page, in order."""
    found: list[Block] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        info = opening["info"].split()
        lang = info[0].lower() if info else ""
        body: list[str] = []
        end = index + 1
        while True:
            if end >= len(lines):
                raise DocsError(f"line {index + 1}: a {fence} fence that is never closed")
            closing = _FENCE.match(lines[end])
            if (
                closing is not None
                and not closing["info"]
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
            ):
                break
            body.append(_dedent(lines[end], indent))
            end += 1
        found.append(Block(lang, index + 2, "\n".join(body) + "\n", _skip(lines, index)))
        index = end + 1
    return found


def _dedent(line: str, indent: int) -> str:
    """A line of a block indented under a list item, without that indentation."""
    strip = min(indent, len(line) - len(line.lstrip(" \t")))
    return line[strip:]


def _skip(lines: list[str], fence: int) -> str | None:
    """The reason of a ``<!-- not run: REASON -->`` on the non-blank line before a fence."""
    before = fence - 1
    while before >= 0 and not lines[before].strip():
        before -= 1
    if before < 0:
        return None
    match = _NOT_RUN.match(lines[before])
    if match is None:
        return None
    if not match["reason"]:
        raise DocsError(f"line {before + 1}: <!-- not run: ... --> needs a reason")
    return match["reason"]


def commands(block: Block) -> list[Command]:
    """The ``$ `` lines of a console block; other lines are output and not compared."""
    found: list[Command] = []
    lines = block.text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith("$ "):
            index += 1
            continue
        start = block.line + index
        command = line[2:]
        while command.endswith("\\") and index + 1 < len(lines):
            index += 1
            command = command[:-1] + "\n" + lines[index]
        exits = _EXITS.search(command)
        code = int(exits["code"]) if exits else 0
        found.append(Command(start, command, code))
        index += 1
    return found


# -- config keys ------------------------------------------------------------------------------

_HEADER = re.compile(r"^#?\s*\[(?P<name>[^\]\s][^\]]*)\]\s*(#.*)?$")
_KEY_LINE = re.compile(r"^(?:#\s*)?(?P<key>[a-z_][a-z0-9_]*)\s*=\s*\S")
_REF_HEADING = re.compile(r"^#{2,6}\s.*?`\[(?P<name>[^\]]+)\]`")
_REF_ROW = re.compile(r"^\|\s*`(?P<key>[a-z_][a-z0-9_]*)`\s*\|")


def section_of(header: str) -> tuple[str, str | None]:
    """A table header's section, normalized, and the key it is of its parent when it is a
    table of the user's own names: ``tenants."*"`` is ``("tenants.*", None)``, ``workers.env``
    is ``("workers", "env")``."""
    parts = _split_dotted(header.strip())
    if parts[0] in NAMED_SECTIONS:
        return f"{parts[0]}.*", None
    if len(parts) == 1:
        return parts[0], None
    return parts[0], ".".join(parts[1:])


def _split_dotted(name: str) -> list[str]:
    """A TOML dotted name's parts, quoted parts unquoted (``functions."a.b:c"``)."""
    parts: list[str] = []
    for match in re.finditer(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', name):
        parts.append(next(group for group in match.groups() if group is not None))
    return parts or [name]


def documented_keys(config_text: str) -> set[tuple[str, str]]:
    """The ``(section, key)`` pairs ``config/asynctask.toml`` documents: its keys, and the
    example keys its comments show (``# memory = "512M"``, ``# [tenants."*"]`` ...)."""
    keys: set[tuple[str, str]] = set()
    section: str | None = None
    free_form = False
    for raw in config_text.split("\n"):
        line = raw.strip()
        header = _HEADER.match(line)
        if header is not None:
            section, key = section_of(header["name"])
            free_form = key is not None
            if key is not None:
                keys.add((section, key))
            continue
        match = _KEY_LINE.match(line)
        if match is not None and section is not None and not free_form:
            keys.add((section, match["key"]))
    return keys


def reference_rows(page_text: str, heading: str) -> dict[tuple[str, str], str]:
    """The config reference of a page, ``(section, key)`` to the row's second cell (its
    default): under ``## heading``, a ``### `[section]` `` heading per section and a table row
    per key (`` | `key` | default | what | ``). A table of the user's own names
    (``[workers.env]``) is listed by its heading alone, with no default."""
    rows: dict[tuple[str, str], str] = {}
    inside = False
    section: str | None = None
    for line in page_text.split("\n"):
        if line.startswith("## "):
            inside = line[3:].strip() == heading
            continue
        if not inside:
            continue
        match = _REF_HEADING.match(line)
        if match is not None:
            section, key = section_of(match["name"])
            if key is not None:
                rows[(section, key)] = ""
                section = None  # its rows are examples of the user's own names
            continue
        row = _REF_ROW.match(line)
        if row is not None and section is not None:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[(section, row["key"])] = cells[1] if len(cells) > 1 else ""
    return rows


def reference_keys(page_text: str, heading: str) -> set[tuple[str, str]]:
    """The ``(section, key)`` pairs the config reference of a page lists."""
    return set(reference_rows(page_text, heading))


def default_mismatches(rows: Mapping[tuple[str, str], str], config: Mapping[str, Any]) -> list[str]:
    """The reference's defaults that differ from the values ``config/asynctask.toml`` sets
    (``config`` is that file, parsed). A key the file sets must show its value as one TOML
    literal in backticks (`` `"30s"` ``, `` `8` ``, `` `{}` ``); keys the file only shows in
    comments (unset by default) are not compared."""
    wrong: list[str] = []
    for (section, key), cell in sorted(rows.items()):
        table = config.get(section)
        if not isinstance(table, dict) or key not in table or isinstance(table[key], dict):
            continue
        literal = re.fullmatch(r"`([^`]+)`", cell)
        try:
            shown = tomllib.loads(f"v = {literal[1]}")["v"] if literal else None
        except tomllib.TOMLDecodeError:
            shown = None
        if literal is None or shown != table[key]:
            wrong.append(f"[{section}] {key}: the reference says {cell!r}, the file {table[key]!r}")
    return wrong


def config_keys(data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """The ``(section, key)`` pairs a parsed config document uses."""
    for name, table in data.items():
        if not isinstance(table, dict):
            yield "", name
            continue
        if name in NAMED_SECTIONS:
            for instance in table.values():
                if isinstance(instance, dict):
                    yield from ((f"{name}.*", key) for key in instance)
                else:
                    yield f"{name}.*", "?"
            continue
        yield from ((name, key) for key in table)


def undocumented(data: Mapping[str, Any], documented: Iterable[tuple[str, str]]) -> list[str]:
    """The keys of ``data`` that ``documented`` lacks, when ``data`` is the daemon's config
    (one of its top-level tables is a config section); ``[]`` for any other TOML."""
    known = set(documented)
    sections = {section.split(".")[0] for section, _ in known}
    if not set(data) & sections:
        return []
    return sorted(
        f"[{section}] {key}" if section else f"{key} (not a config section)"
        for section, key in config_keys(data)
        if (section, key) not in known
    )


# -- links ------------------------------------------------------------------------------------

_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
_HEADING_LINE = re.compile(r"^#{1,6}\s+(?P<text>.+?)\s*#*\s*$")


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of every line outside fenced blocks."""
    fence: str | None = None
    for number, line in enumerate(text.split("\n"), 1):
        match = _FENCE.match(line)
        if fence is None and match is not None:
            fence = match["fence"]
            continue
        if fence is not None:
            if _closes(match, fence):
                fence = None
            continue
        yield number, line


def _closes(match: re.Match[str] | None, fence: str) -> bool:
    """Whether a fence line closes the block ``fence`` opened."""
    return (
        match is not None
        and not match["info"]
        and match["fence"][0] == fence[0]
        and len(match["fence"]) >= len(fence)
    )


def links(text: str) -> list[tuple[int, str]]:
    """The relative link targets of a page's prose (``[text](target)``), with their lines;
    web links are left out."""
    found = []
    for number, line in prose_lines(text):
        for match in _LINK.finditer(line):
            target = match["target"]
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                found.append((number, target))
    return found


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to
    hyphens (``## At least once, so...`` is ``#at-least-once-so...``)."""
    slugs = set()
    for _, line in prose_lines(text):
        match = _HEADING_LINE.match(line)
        if match is not None:
            slug = re.sub(r"[^\w\- ]", "", match["text"].strip().lower()).replace(" ", "-")
            slugs.add(slug)
    return slugs
