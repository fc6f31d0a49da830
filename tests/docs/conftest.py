"""Reports the guide's blocks that are not run, with their reasons, at the end of the session:
a skipped example is a debt, so it stays in sight (``tests/docs/test_guide.py``)."""

from __future__ import annotations

import pytest

#: ``"docs/page.md:LINE (lang): REASON"`` for every block a page test skipped.
NOT_RUN: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if NOT_RUN:
        terminalreporter.section("guide blocks not run")
        for entry in NOT_RUN:
            terminalreporter.write_line(entry)
