"""The work the API offloads: plain functions that the daemon's workers import and run."""

from __future__ import annotations

import hashlib

import asynctask


@asynctask.task(retries=2, timeout="1m")
def fingerprint(text: str, rounds: int = 10_000) -> dict[str, object]:
    """Some CPU work a request handler should not do itself: a key-stretched SHA-256 of the
    text, and its word count."""
    digest = text.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return {"words": len(text.split()), "sha256": digest.hex()}
