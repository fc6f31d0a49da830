"""``@asynctask.task`` options hold however the task is submitted (issue 18's must-fix).

Before: a ``retries=0, timeout="1s"`` function submitted by its ``module:function`` name (from
``Client.submit`` or ``asynctask submit``) ran with 3 retries and no timeout, because only a
submit through the function object carried the decorator's options. Now the worker that imports
the function reports them (``daemon/codeoptions.py``), so they apply to the running attempt and
to later by-name submits of the same tenant, and survive a restart; a submit's own options and
the config file still win; another tenant is never affected.
"""

from __future__ import annotations

import json
import time

from asynctask.model import TaskState
from tests.e2e import codetasks
from tests.e2e.conftest import poll

STRICT = "tests.e2e.codetasks:strict_sleep"
REPORT = "tests.e2e.codetasks:report"
TAMPER = "tests.e2e.codetasks:tamper"


def test_a_by_name_submit_gets_the_decorators_retries_and_timeout(daemon):
    """``retries=0, timeout="1s"``: timed out once, not retried (before: 4 attempts of 30 s)."""
    began = time.monotonic()
    handle = daemon.client().submit(STRICT, 30)
    done = handle.wait(timeout=30)
    assert done.state is TaskState.FAILED
    assert done.attempts == 1
    assert done.retries == 0
    assert done.error is not None
    assert done.error["kind"] == "timeout"
    assert "1s" in done.error["message"]
    assert time.monotonic() - began < 20


def test_a_by_name_submit_from_the_command_line_gets_them_too(daemon):
    done = daemon.cli("submit", STRICT, "[30]", "--wait", "--json")
    assert done.returncode == 1, done.stdout + done.stderr  # the task ended failed
    task = json.loads(done.stdout)
    assert task["state"] == "failed"
    assert task["attempts"] == 1
    assert task["error"]["kind"] == "timeout"


def test_explicit_options_win_over_the_code(daemon):
    """``retries=1`` given at submit: two attempts, each cut by the code's timeout."""
    done = daemon.client().submit(STRICT, 30, retries=1).wait(timeout=40)
    assert done.state is TaskState.FAILED
    assert done.attempts == 2
    assert [error["kind"] for error in done.errors] == ["timeout", "timeout"]


def test_config_keys_win_over_the_code_by_name_and_by_object(make_daemon):
    config = f'[functions."{STRICT}"]\nretries = 1\ntimeout = "500ms"\n'
    daemon = make_daemon(config).start()
    client = daemon.client()
    by_name = client.submit(STRICT, 30).wait(timeout=40)
    by_object = codetasks.strict_sleep.options(client=client).submit(30).wait(timeout=40)
    for done in (by_name, by_object):
        assert done.state is TaskState.FAILED
        assert done.attempts == 2  # the config's retries, not the code's 0
        assert "0.5s" in done.errors[0]["message"]  # the config's timeout, not the code's 1s


def test_later_by_name_submits_get_queue_and_priority_and_a_restart_keeps_them(make_daemon):
    """The first by-name submit of a function no worker has reported yet gets the defaults
    (the tenant's queue, priority 5); once a worker has imported it, the next ones get the
    decorator's queue and priority, after a restart too."""
    daemon = make_daemon().start()
    client = daemon.client()
    first = client.submit_status(REPORT, 1)
    assert (first.queue, first.priority, first.retries) == ("default", 5, 3)
    assert client.result(first.id, timeout=20) == 2
    later = client.submit_status(REPORT, 2)
    assert (later.queue, later.priority, later.retries) == ("reports", 8, 1)
    assert client.result(later.id, timeout=20) == 4
    explicit = client.submit_status(REPORT, 3, queue="mine", priority=2)
    assert (explicit.queue, explicit.priority) == ("mine", 2)
    assert daemon.stop() == 0
    client.close()
    daemon.start()
    again = daemon.client().submit_status(REPORT, 4)
    assert (again.queue, again.priority, again.retries) == ("reports", 8, 1)


def test_one_tenants_report_never_reaches_another_tenant(make_daemon):
    """A tenant's task code can make its worker report anything for any function: here it
    rewrites ``report``'s options (a queue of its choosing) and ``strict_sleep``'s (values
    the daemon refuses). The other tenant's tasks of the same functions are unaffected, and
    the refused report changes nothing, not even for the tenant that sent it."""
    daemon = make_daemon("[workers]\nmin_workers = 1\nmax_workers = 1\n").start()
    mallory, honest = daemon.client("mallory"), daemon.client("honest")
    assert mallory.submit(TAMPER).result(timeout=20) == "done"
    assert mallory.submit(REPORT, 1).result(timeout=20) == 2  # its worker reports the rewrite
    refused = mallory.submit(STRICT, 0.1).wait(timeout=20)
    assert refused.state is TaskState.SUCCEEDED  # no 1s timeout, no -5s either
    assert refused.retries == 3  # the refused report set nothing
    hijacked = mallory.submit_status(REPORT, 2)
    assert (hijacked.queue, hijacked.priority) == ("hijacked", 0)  # its own tenant only

    first = honest.submit_status(REPORT, 3)
    assert (first.queue, first.priority, first.retries) == ("honest", 5, 3)
    assert honest.result(first.id, timeout=20) == 6
    later = honest.submit_status(REPORT, 4)
    assert (later.queue, later.priority, later.retries) == ("reports", 8, 1)
    strict = honest.submit(STRICT, 30).wait(timeout=30)
    assert (strict.state, strict.attempts) == (TaskState.FAILED, 1)
    log = daemon.log.read_text()
    assert "code_options_refused" in log
    assert daemon.client().ping()["pid"] == daemon.proc.pid


def test_a_code_change_replaces_the_remembered_options(make_daemon, tmp_path):
    """``asynctask reload``: new workers import the edited module and report anew."""
    root = tmp_path / "code"
    root.mkdir()
    module = root / "editable_tasks.py"
    module.write_text(
        "import asynctask\n\n@asynctask.task(queue='before')\ndef job():\n    return 1\n"
    )
    daemon = make_daemon(root=root).start()
    client = daemon.client()
    assert client.submit("editable_tasks:job").result(timeout=20) == 1
    assert client.submit_status("editable_tasks:job").queue == "before"
    module.write_text(
        "import asynctask\n\n@asynctask.task(queue='after')\ndef job():\n    return 2\n"
    )
    client.reload()

    def reported_again() -> bool:
        done = client.submit("editable_tasks:job").result(timeout=20)
        return done == 2 and client.submit_status("editable_tasks:job").queue == "after"

    poll(reported_again, timeout=30, interval=0.2)


def test_retry_limit_kills_in_the_decorator_retries_a_memory_kill(daemon):
    """PRODUCT.md: limit kills are not retried "unless the function opts in
    (``@asynctask.task(retry_limit_kills=True)``)". The worker's report carries the opt-in (a
    killed worker can say nothing more); before, the decorator refused the keyword."""
    client = daemon.client()
    opted = codetasks.hungry_retried.options(client=client).submit().wait(timeout=60)
    plain = codetasks.hungry.options(client=client).submit().wait(timeout=60)
    assert [error["kind"] for error in opted.errors] == ["memory_limit", "memory_limit"]
    assert opted.state is TaskState.FAILED
    assert opted.attempts == 2
    assert [error["kind"] for error in plain.errors] == ["memory_limit"]
    assert plain.attempts == 1
