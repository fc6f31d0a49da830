"""Docstrings and comments in ``asynctask/`` cite only documents and tests that exist.

A citation of a Markdown file (``docs/contract.md``, ``README.md``) must name a file in the
repository, by its path from the repository's root; a section quoted right after it
(``docs/contract.md, "Exit codes"`` or ``README.md ("Security model")``) must be one of that
file's headings. A cited ``tests/...`` path must exist too.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: ``some/path.md``, optionally followed by a quoted section: ``, "Name"`` or ``("Name")``.
_DOC = re.compile(
    r"(?<![\w./-])(?P<path>[\w./-]*[\w-]\.md)\b"
    r"(?:,?\s*(?:#:\s*)?\(?\"(?P<section>[^\"]{1,80})\")?"
)
_TEST = re.compile(r"(?<![\w./-])(?P<path>tests/[\w./-]*[\w/])")
_HEADING = re.compile(r"^#+\s+(.+?)\s*$", re.MULTILINE)


def _prose(source: str) -> str:
    """The comments and string literals (docstrings included) of a Python module."""
    kept = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.STRING):
            kept.append(token.string)
    return "\n".join(kept)


def _section_text(text: str) -> str:
    return " ".join(text.replace("#:", " ").split())


def stale_citations(text: str, root: Path = ROOT) -> list[str]:
    """What ``text`` cites that is not in the repository at ``root``."""
    problems = []
    for match in _DOC.finditer(text):
        doc = root / match["path"]
        if not doc.is_file():
            problems.append(f"{match['path']}: no such document")
            continue
        if match["section"]:
            headings = {h.strip() for h in _HEADING.findall(doc.read_text())}
            section = _section_text(match["section"])
            if section not in headings:
                problems.append(f'{match["path"]}: no section "{section}"')
    for match in _TEST.finditer(text):
        if not (root / match["path"]).exists():
            problems.append(f"{match['path']}: no such test file or directory")
    return problems


def _modules() -> list[Path]:
    return sorted((ROOT / "asynctask").rglob("*.py"))


@pytest.mark.parametrize("module", _modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_citation_names_a_document_or_test_in_the_repository(module: Path) -> None:
    assert stale_citations(_prose(module.read_text())) == []


def test_the_check_finds_a_stale_citation() -> None:
    text = _prose(
        '"""As PRODUCT.md promises (docs/contract.md, "No such section"), see\n'
        'README.md ("Security model") and tests/core/test_nothing_here.py."""\n'
        '# docs/architecture.md, "The performance design": fine\n'
    )
    assert stale_citations(text) == [
        "PRODUCT.md: no such document",
        'docs/contract.md: no section "No such section"',
        "tests/core/test_nothing_here.py: no such test file or directory",
    ]
