"""The work the app offloads: a plain function that the daemon's workers import and run."""

from __future__ import annotations

import collections
import re

import asynctask

_WORD = re.compile(r"[a-z']+")


@asynctask.task(retries=2, timeout="1m")
def word_report(text: str, top: int = 3) -> dict[str, object]:
    """The text's word count and its most common words (ties in order of first use)."""
    words = _WORD.findall(text.lower())
    common = collections.Counter(words).most_common(top)
    return {"words": len(words), "top": [word for word, _ in common]}
