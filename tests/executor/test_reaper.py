"""``reaper.py`` on its own: the process-tree walks, the kill, the CPU count.

What kills or reaps the caller's children runs in a subprocess of its own (a subreaper whose
children are all the test's), never in the pytest process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from asynctask.executor.reaper import tree_cpu_seconds

from .conftest import REPO, alive

_SUBREAPER = """
import json, os, subprocess, sys, time
from asynctask.executor.reaper import become_subreaper, descendants, kill_descendants
assert become_subreaper()
none = kill_descendants()
double_fork = (
    "import os, sys, time\\n"
    "if os.fork() == 0:\\n"
    "    os.setsid()\\n"
    "    print(os.getpid(), flush=True)\\n"
    "    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)\\n"
    "    os.dup2(1, 2)\\n"
    "    time.sleep(600)\\n"
    "os._exit(0)\\n"
)
middle = subprocess.run(
    [sys.executable, "-c", double_fork], start_new_session=True, capture_output=True, text=True
)
grandchild = int(middle.stdout.split()[0])
plain = subprocess.Popen(["sleep", "600"])
before = [pid for pid, _ in descendants(os.getpid())]
killed = kill_descendants()
print(json.dumps({"none": none, "grandchild": grandchild, "plain": plain.pid, "before": before,
                  "killed": killed, "after": descendants(os.getpid())}))
"""


def _run(script: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_subreaper_kills_and_reaps_every_descendant_setsid_grandchildren_included() -> None:
    seen = _run(_SUBREAPER)
    assert seen["none"] == 0  # no child at all: nothing to do
    grandchild, plain = seen["grandchild"], seen["plain"]
    assert isinstance(grandchild, int)
    assert isinstance(plain, int)
    # The orphaned grandchild was re-parented to the subreaper, not to init.
    assert sorted(seen["before"]) == sorted([grandchild, plain])  # type: ignore[type-var]
    assert seen["killed"] == 2
    assert seen["after"] == []
    assert not alive(grandchild)
    assert not alive(plain)


_STRAYS = """
import json, os, subprocess, time
from asynctask.executor.reaper import reap_strays
kept = subprocess.Popen(["sleep", "600"])
stray = subprocess.Popen(["sleep", "600"])
deadline = time.monotonic() + 10
passes = []
while True:
    passes.append(reap_strays({kept.pid}))
    if passes[-1][1] == 0 or time.monotonic() > deadline:
        break
    time.sleep(0.01)
kept_alive = kept.poll() is None
kept.kill()
kept.wait()
print(json.dumps({"passes": passes, "kept_alive": kept_alive}))
"""


def test_reap_strays_kills_and_reaps_every_child_but_the_workers() -> None:
    seen = _run(_STRAYS)
    passes = seen["passes"]
    assert isinstance(passes, list)
    assert sum(killed for killed, _ in passes) == 1
    assert passes[-1][1] == 0
    assert seen["kept_alive"] is True


def test_tree_cpu_seconds_counts_children_alive_and_reaped() -> None:
    assert tree_cpu_seconds(2**22 + 12345) is None  # above pid_max: no such process
    before = tree_cpu_seconds(os.getpid())
    assert before is not None
    spin = "import time\nwhile time.process_time() < 0.4:\n    pass\ntime.sleep(600)\n"
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        deadline = time.monotonic() + 30
        while (tree_cpu_seconds(os.getpid()) or 0) - before < 0.35:  # counted while it lives
            assert time.monotonic() < deadline, "the child's CPU time was never counted"
            time.sleep(0.02)
    finally:
        child.kill()
        child.wait()
    after = tree_cpu_seconds(os.getpid())
    assert after is not None
    assert after - before >= 0.35  # and still once reaped (the parent's cutime)
