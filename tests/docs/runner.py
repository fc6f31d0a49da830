"""Runs one guide page's python blocks, in order and in one namespace, for
``tests/docs/test_guide.py`` (started as ``python -P runner.py REPLY_FD``).

Why a process of its own that takes blocks one at a time: a page's blocks share their
variables as a reader expects (a handle made in one block is waited on in a later one), while
the page's console blocks run in between them, in page order. Each request is a JSON line on
stdin, ``{"path": PAGE, "line": N, "code": TEXT}``; each reply a JSON line on ``REPLY_FD``,
``{"ok": true}`` or ``{"ok": false, "error": TRACEBACK}``. The block's output goes to this
process's stdout and stderr, which the harness keeps in a file: output of child processes and
C code is kept too. The code is compiled under the page's path, shifted to the page's line
numbers, so a traceback names the page and the line of the failing statement.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def main() -> None:
    replies = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    namespace: dict[str, object] = {"__name__": "__main__", "__builtins__": __builtins__}
    for request in sys.stdin:
        block = json.loads(request)
        source = "\n" * (block["line"] - 1) + block["code"]
        try:
            exec(compile(source, block["path"], "exec"), namespace)
        except BaseException:  # SystemExit and KeyboardInterrupt are a failed block too
            reply = {"ok": False, "error": traceback.format_exc()}
        else:
            reply = {"ok": True}
        sys.stdout.flush()
        sys.stderr.flush()
        replies.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
