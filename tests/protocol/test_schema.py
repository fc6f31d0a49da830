"""The typed wire schema (``asynctask.protocol.requests``) is the one definition of a request.

The user-facing ``TypedDict``s of the client (``client/_options.py``, for ``Unpack``) must stay
TypedDicts, so they are a second spelling of the same fields: the drift tests here hold them to
the wire Structs. Then the refusals: the daemon's checks go through the Structs and word a
refusal as before (field and expectation), the client refuses the same values with the same
words before sending, and frames stay protocol version 1 both ways (a new client's frame is the
map an old client sent; an old client's map is a valid request).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from typing import Any

import msgpack
import pytest

import asynctask
from asynctask.client._calls import _Calls, _specs_of
from asynctask.client._options import (
    LimitOptions,
    ListFilters,
    Selector,
    SubmitOptions,
    TaskFilters,
)
from asynctask.cursor import encode_cursor
from asynctask.decorator import _LIMITS
from asynctask.errors import UsageError
from asynctask.model import TaskState
from asynctask.protocol import FrameDecoder, checks, encode_frame, pack
from asynctask.protocol.requests import (
    CRON_TASK_FIELDS,
    SELECTOR_FIELDS,
    TASK_SELECTOR_FIELDS,
    FunctionLimits,
    ListRequest,
    SelectorRequest,
    TaskSpec,
    encode_request,
    validate_spec,
)
from asynctask.resources import RESOURCE_KEYS
from asynctask.server import requests
from asynctask.server.ops import parse_readout_page

FN = "tests.e2e.tasks:add"
PAYLOAD = pack([[1, 2], {}])


def fields(struct: type) -> frozenset[str]:
    return frozenset(struct.__struct_fields__)


#: The client's name of a wire field where they differ (``submit(task_id=...)`` is ``id``).
CLIENT_NAMES = {"id": "task_id"}


def client_names(names: frozenset[str]) -> frozenset[str]:
    return frozenset(CLIENT_NAMES.get(name, name) for name in names)


# -- drift: the TypedDicts and the Structs name the same fields --------------------------------


def test_submit_options_are_the_task_spec_fields() -> None:
    """Every spec field a caller chooses is a submit option; ``resources`` is spread into the
    ``LimitOptions`` keys, ``function``/``payload`` are the call itself, ``limits`` and
    ``defaults`` come from ``@asynctask.task``."""
    chosen = fields(TaskSpec) - {"function", "payload", "limits", "resources", "defaults"}
    assert SubmitOptions.__optional_keys__ == client_names(chosen) | RESOURCE_KEYS
    assert LimitOptions.__optional_keys__ == RESOURCE_KEYS
    assert fields(FunctionLimits) == _LIMITS


def test_list_filters_are_the_list_request_fields() -> None:
    """``cursor`` is ``list_page``'s own keyword."""
    assert ListFilters.__optional_keys__ == fields(ListRequest) - {"cursor"}


def test_selector_is_the_selector_request_fields() -> None:
    assert Selector.__optional_keys__ == client_names(fields(SelectorRequest) - {"limit", "cursor"})
    assert frozenset(SELECTOR_FIELDS) == fields(SelectorRequest) - {"limit", "cursor"}


def test_task_filters_are_the_task_selector_fields() -> None:
    assert TaskFilters.__optional_keys__ == client_names(frozenset(TASK_SELECTOR_FIELDS))
    assert frozenset(TASK_SELECTOR_FIELDS) <= fields(SelectorRequest)


def test_a_cron_task_is_a_task_spec_without_id_tenant_or_timing() -> None:
    assert fields(TaskSpec) >= CRON_TASK_FIELDS
    assert fields(TaskSpec) - CRON_TASK_FIELDS == {
        "id", "tenant", "delay", "run_at", "ttl", "on_success", "on_failure", "trace_id",
    }  # fmt: skip


# -- refusals ----------------------------------------------------------------------------------


def spec(**extra: Any) -> dict[str, Any]:
    return {"function": FN, "payload": PAYLOAD, **extra}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ([1], "a task spec must be a map"),
        ({"payload": PAYLOAD}, "function must look like package.module:function, got None"),
        (spec(function=5), "function must look like package.module:function, got 5"),
        (spec(function="nope"), "function must look like package.module:function, got 'nope'"),
        ({"function": FN}, "payload must be msgpack bytes of [args, kwargs]"),
        (spec(payload="aGk="), "payload must be msgpack bytes of [args, kwargs]"),
        (spec(zz=1, aa=2), "unknown task option(s): aa, zz"),
        (spec(priority=True), "priority must be an integer from 0 to 9"),
        (spec(priority=10), "priority must be an integer from 0 to 9"),
        (spec(priority=2**70), "priority must be an integer from 0 to 9"),
        (spec(delay="5"), "delay must be a number, got '5'"),
        (spec(delay=math.inf), "delay must be a number, got inf"),
        (spec(delay=-1), "delay must be 0 or more and at most 3155760000 seconds"),
        (spec(timeout=0), "timeout must be more than 0"),
        (spec(run_at=-1), "run_at must be a time from 1970 to 100 years from now"),
        (spec(retries=1001), "retries must be an integer from 0 to 1000"),
        (spec(id="a b"), "a task ID is 1-200 printable characters without spaces, got 'a b'"),
        (spec(tenant="x\n"), "not a tenant name: 'x\\n'"),
        (spec(queue=""), "not a valid queue name: ''"),
        (spec(labels={1: "x"}), "labels must be a map of strings to strings"),
        (spec(labels={"k": 1}), "labels must be a map of strings to strings"),
        (spec(labels={str(i): "" for i in range(33)}), "at most 32 labels per task"),
        (spec(on_failure="x"), "on_failure must look like package.module:function, got 'x'"),
        (spec(limits=[1]), "limits must be a map of concurrency, rate and burst"),
        (spec(limits={"speed": 1}), "unknown limit(s): speed"),
        (spec(limits={"concurrency": 2.0}), "limits.concurrency must be a whole number"),
        (spec(limits={"concurrency": 0}), "limits.concurrency must be between 1 and 1000000"),
        (spec(limits={"rate": 0}), "limits.rate must be positive"),
        (spec(limits={"burst": "x"}), "limits.burst must be a number"),
        (spec(resources=[]), "resources must be a map of memory, cpu, open_files, processes"),
        (spec(resources={"user": "root"}), "resources: 'user' can only be set in the daemon"),
        (spec(resources={"cpu": 1e308}), "limit 'cpu'"),
        (spec(trace_id=""), "trace_id must be 1-128 printable ASCII characters"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(raw: Any, words: str) -> None:
    with pytest.raises(UsageError) as refused:
        requests.parse_spec(raw, max_payload=1024, now=time.time())
    assert words in refused.value.message
    with pytest.raises(UsageError) as checked:  # the command line's check: the same words
        validate_spec(raw, 1024)
    assert checked.value.message == refused.value.message


def test_the_size_limit_counts_arguments_and_labels() -> None:
    with pytest.raises(UsageError, match="more than the limit of 4"):
        requests.parse_spec(spec(), max_payload=4)
    with pytest.raises(UsageError, match=r"and labels \(2 bytes\)"):
        requests.parse_spec(spec(labels={"k": "v"}), max_payload=len(PAYLOAD) + 1)


def test_a_submit_names_the_bad_task_and_changes_nothing() -> None:
    good = spec()
    with pytest.raises(UsageError, match=r"^task 1: priority must be"):
        requests.parse_submit({"tasks": [good, spec(priority=99)]}, 1024)
    with pytest.raises(UsageError, match=r"^task 1: a task spec must be a map$"):
        requests.parse_submit({"tasks": [good, 5]}, 1024)
    with pytest.raises(UsageError, match=r"^task 2: task arguments are"):
        requests.parse_submit({"tasks": [good, good, spec(payload=b"x" * 2000)]}, 1024)
    with pytest.raises(UsageError, match=r"^priority must be"):  # one task: no "task 0: "
        requests.parse_submit({"tasks": [spec(priority=99)]}, 1024)
    with pytest.raises(UsageError, match="non-empty list 'tasks'"):
        requests.parse_submit({"tasks": []}, 1024)
    with pytest.raises(UsageError, match="non-empty list 'tasks'"):
        requests.parse_submit({"op": "submit"}, 1024)
    with pytest.raises(UsageError, match="at most 10000 tasks per submit, got 10001"):
        requests.parse_submit({"tasks": [good] * 10_001}, 1024)


def test_a_valid_submit_gives_the_same_model_values() -> None:
    (parsed,), brief = requests.parse_submit(
        {"op": "submit", "rid": 7, "brief": True, "tasks": [spec(
            id="t1", tenant="acme", queue="q", priority=3, delay=1, ttl=60, retries=2, timeout=5,
            labels={"k": "v"}, on_success=FN, limits={"concurrency": 2, "rate": 5},
            resources={"memory": "64M", "cpu": 2}, trace_id="abc",
        )]},
        1024,
    )  # fmt: skip
    assert brief is True
    assert (parsed.id, parsed.tenant, parsed.queue, parsed.priority) == ("t1", "acme", "q", 3)
    assert (parsed.delay, parsed.ttl, parsed.retries, parsed.timeout) == (1.0, 60.0, 2, 5.0)
    assert (parsed.labels, parsed.on_success, parsed.trace_id) == ({"k": "v"}, FN, "abc")
    assert parsed.limits == {"concurrency": 2, "rate": 5.0}
    assert parsed.resources == {"memory": 64 * 1024 * 1024, "cpu": 2.0}
    (default,), brief = requests.parse_submit({"tasks": [spec(tenant=None, labels=None)]}, 1024)
    assert (default.tenant, default.labels, default.limits, brief) == ("default", {}, None, False)


@pytest.mark.parametrize(
    ("parse", "message", "words"),
    [
        (requests.parse_list, {"tenant": "a b"}, "not a tenant name: 'a b'"),
        (requests.parse_list, {"state": 5}, "state must be a list of task states"),
        (requests.parse_list, {"state": ["queued", "zz"]}, "unknown state 'zz' (known: "),
        (requests.parse_list, {"limit": None}, "limit must be an integer from 1 to 10000"),
        (requests.parse_list, {"limit": 0}, "limit must be an integer from 1 to 10000"),
        (requests.parse_list, {"function": 5}, "function must be a string"),
        (requests.parse_list, {"since": "x"}, "since must be a number, got 'x'"),
        (requests.parse_list, {"cursor": "x"}, "not a list cursor: 'x'"),
        (requests.parse_task_ref, {"id": ["x"]}, "not a task ID: ['x']"),
        (requests.parse_task_ref, {"id": "x", "tenant": 5}, "not a tenant name: 5"),
        (requests.parse_wait_timeout, {"id": "x", "timeout": -1}, "timeout must be 0 or more"),
        (requests.parse_log_offsets, {"id": "x", "offsets": {0: 1}}, "offsets must map"),
        (requests.parse_drain, {"drain": math.nan}, "drain must be a number, got nan"),
        (requests.parse_cancel, {}, "cancel needs a selector"),
        (requests.parse_cancel, {"tenant": "t", "limit": 5}, "cancel takes no limit"),
        (requests.parse_cancel, {"state": "succeeded"}, "only live tasks can be cancelled"),
        (requests.parse_delete, {"id": "a b"}, "not a task ID: 'a b'"),
        (requests.parse_retry, {"tenant": "t", "cursor": "x"}, "retry takes no cursor"),
        (requests.parse_pause_target, {}, "say what to pause"),
        (requests.parse_pause_target, {"function": FN, "tenant": "t"}, "pause a function alone"),
        (requests.parse_pause_target, {"function": "f"}, "function must look like"),
        (requests.parse_cron_ref, {"name": "a\n"}, "not a cron entry name: 'a\\n'"),
        (requests.parse_tenant, {"tenant": ""}, "not a tenant name: ''"),
        (parse_readout_page, {"top": 0}, "top must be a whole number from 1 to 1000, not 0"),
        (parse_readout_page, {"top": True}, "top must be a whole number from 1 to 1000, not True"),
        (parse_readout_page, {"queue": 5}, "not a queue name: 5"),
    ],
)
def test_a_bad_request_is_refused_naming_the_field(parse: Any, message: Any, words: str) -> None:
    with pytest.raises(UsageError) as refused:
        parse(message)
    assert words in refused.value.message


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"expr": "* * * * *", "task": spec()}, "not a cron entry name: None"),
        ({"name": "n", "expr": 5, "task": spec()}, "expr and tz must be strings"),
        ({"name": "n", "expr": "* * * * *"}, "cron_add needs a 'task' map"),
        ({"name": "n", "expr": "* * * * *", "task": spec(id="x")}, "a cron task cannot have id"),
        ({"name": "n", "expr": "* * * * *", "task": spec(), "catch_up": "all"}, "catch_up must"),
        ({"name": "n", "expr": "* * * * *", "task": spec(priority=11)}, "priority must be"),
        ({"name": "n", "expr": "nope", "task": spec()}, "nope"),
    ],
)
def test_a_bad_cron_entry_is_refused(message: dict[str, Any], words: str) -> None:
    with pytest.raises(UsageError, match=words):
        requests.parse_cron_add(message, 1024)


def test_selectors_and_lists_give_the_same_queries() -> None:
    cursor = encode_cursor(1.5, 3)
    query = requests.parse_list(
        {"tenant": "t", "state": "queued", "labels": {"a": "b"}, "limit": 5, "cursor": cursor}
    )
    assert (query.tenants, query.states, query.limit) == (("t",), (TaskState.QUEUED,), 5)
    assert (query.labels, query.before) == ({"a": "b"}, (1.5, 3))
    query, one = requests.parse_delete({"id": "x", "tenant": "t"})
    assert (one, query.states[0]) == ("x", TaskState.SUCCEEDED)
    assert requests.parse_pause_target({"tenant": "t", "queue": "q"}) == ("queue", "t", "q")
    assert requests.parse_pause_target({"function": FN}) == ("function", "", FN)
    assert requests.parse_list({"state": ""}).states == ()


# -- the client builds with the same Structs ---------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"priority": 10}, "priority must be an integer from 0 to 9"),
        ({"queue": "a b"}, "not a valid queue name: 'a b'"),
        ({"task_id": "dup\n"}, "a task ID is 1-200 printable characters"),
        ({"labels": {"k": 1}}, "labels must be a map of strings to strings"),
    ],
)
def test_the_client_refuses_what_the_daemon_would(options: dict[str, Any], words: str) -> None:
    calls = _Calls("default")
    with pytest.raises(UsageError) as client:
        calls.checked(calls.spec(FN, (1, 2), None, **options))
    wire = {"id" if k == "task_id" else k: v for k, v in options.items()}
    with pytest.raises(UsageError) as daemon:
        requests.parse_spec(spec(**wire), 1024)
    assert words in client.value.message
    assert client.value.message == daemon.value.message


def test_the_client_names_the_bad_call_of_many_as_the_daemon_does() -> None:
    calls = [{"func": FN, "args": [1, 2]}, {"func": "bad"}]
    with pytest.raises(UsageError, match=r"^task 1: function must look like"):
        _specs_of(_Calls("default"), calls)
    with pytest.raises(UsageError, match=r"^function must look like"):
        _specs_of(_Calls("default"), calls[1:])


def _old_client_spec(calls: _Calls) -> dict[str, Any]:
    """What a client before the schema sent for the call below: a plain map of set fields."""
    return {"function": FN, "payload": PAYLOAD, "tenant": "default", "priority": 3,
            "labels": {"k": "v"}, "delay": 1.5}  # fmt: skip


def test_a_new_client_frame_is_the_map_an_old_client_sent() -> None:
    calls = _Calls("default")
    new = calls.checked(calls.spec(FN, (1, 2), None, priority=3, labels={"k": "v"}, delay=1.5))
    request = calls.request("submit", tasks=[new])
    old = {**request, "tasks": [_old_client_spec(calls)]}
    (decoded,) = FrameDecoder().feed(calls.frame(request))  # the daemon's (msgpack) decoder
    assert decoded == msgpack.unpackb(encode_frame(old)[4:], raw=False)
    # an old client's frame is a valid request to the new daemon, and means the same
    (old_decoded,) = FrameDecoder().feed(encode_frame(old))
    assert requests.parse_submit(old_decoded, 1024) == requests.parse_submit(decoded, 1024)


def test_a_checked_spec_sent_as_a_struct_is_the_same_frame_as_its_map() -> None:
    """``submit`` sends ``TaskSpec`` Structs as they are; the bytes are those of ``checked``'s
    map, every field set (a decorated function's ``limits``, normalized ``resources``)."""

    @asynctask.task(concurrency=2, rate="5/s", queue="q")
    def job() -> None: ...

    job.__asynctask_ref__ = FN  # type: ignore[attr-defined]
    calls = _Calls("acme")
    options: dict[str, Any] = {
        "task_id": "t-1", "priority": 3, "delay": "1.5s", "ttl": 60, "retries": 2,
        "timeout": "30s", "labels": {"k": "v"}, "on_success": FN, "on_failure": FN,
        "trace_id": "abc", "memory": "256M", "cpu": 2,
    }  # fmt: skip
    built = calls.spec(job, (1, b"x"), {"a": [1.5, None]}, **options)
    struct = calls.checked_spec(built)
    assert struct.limits is not None
    assert struct.resources is not None
    as_struct = calls.frame(calls.request("submit", tasks=[struct]))
    as_map = calls.frame({**calls.request("submit", tasks=[calls.checked(built)]), "rid": 1})
    assert as_struct == as_map
    assert msgpack.unpackb(bytes(as_struct[4:]))["tasks"][0]["defaults"]["queue"] == "q"


def test_a_spec_with_several_faults_is_refused_for_the_first_as_before() -> None:
    """The order of ``TaskSpec``'s checks, a refusal's words when more than one field is bad."""
    faults = [
        ({"labels": {"": "x"}}, "label ''"),
        ({"tenant": "a b"}, "not a tenant name"),
        ({"id": "a b"}, "a task ID is"),
        ({"queue": "a b"}, "not a valid queue name"),
        ({"priority": 10}, "priority must be"),
        ({"delay": -1.0}, "delay must be 0 or more"),
        ({"run_at": math.nan}, "run_at must be a number"),
        ({"ttl": -1.0}, "ttl must be 0 or more"),
        ({"retries": 1001}, "retries must be"),
        ({"timeout": 0.0}, "timeout must be more than 0"),
        ({"on_success": "x"}, "on_success must look like"),
        ({"on_failure": "x"}, "on_failure must look like"),
        ({"resources": {"user": "root"}}, "resources: 'user'"),
        ({"trace_id": ""}, "trace_id must be"),
    ]
    for first in range(len(faults)):
        raw = spec(**{k: v for fields, _ in faults[first:] for k, v in fields.items()})
        with pytest.raises(UsageError) as refused:
            validate_spec(raw, 1024)
        assert refused.value.message.startswith(faults[first][1])


def test_a_call_without_arguments_has_the_payload_of_empty_ones() -> None:
    calls = _Calls("default")
    for kwargs in (None, {}):
        assert calls.spec(FN, (), kwargs)["payload"] == pack([[], {}])
    assert calls.spec(FN, (), {"a": 1})["payload"] == pack([[], {"a": 1}])
    with pytest.raises(UsageError, match="cannot be encoded with msgpack"):
        calls.spec(FN, (object(),), None)


def test_names_and_functions_remembered_valid_do_not_let_invalid_ones_through() -> None:
    for _ in range(3):  # the first time matched, then remembered
        assert validate_spec(spec(tenant="acme", queue="q", on_success=FN), 1024).tenant == "acme"
    with pytest.raises(UsageError, match="not a tenant name: 'acme '"):
        validate_spec(spec(tenant="acme "), 1024)
    with pytest.raises(UsageError, match="not a valid queue name: 'q q'"):
        validate_spec(spec(queue="q q"), 1024)
    with pytest.raises(UsageError, match="on_success must look like"):
        validate_spec(spec(on_success=FN + " "), 1024)
    for i in range(3000):  # bounded: a stream of new names does not grow it
        validate_spec(spec(tenant=f"t{i}", function=f"m{i}:f"), 1024)
    assert len(checks._VALID_NAMES) <= checks._MAX_REMEMBERED
    assert len(checks._VALID_FUNCTIONS) <= checks._MAX_REMEMBERED


def test_submit_many_refuses_what_it_refused_before() -> None:
    calls = _Calls("default")
    with pytest.raises(TypeError, match="keywords must be strings"):
        _specs_of(calls, [{"func": FN, 1: 2}])
    with pytest.raises(UsageError, match=r"^unknown submit option\(s\): colour$"):
        _specs_of(calls, [{"func": FN}, {"func": FN}, {"func": FN, "colour": "red"}])
    with pytest.raises(UsageError, match=r"^delay: a duration cannot be negative or NaN: -1$"):
        _specs_of(calls, [{"func": FN}, {"func": FN, "delay": -1}, {"func": "bad"}])
    with pytest.raises(UsageError, match=r"^task 1: priority must be an integer from 0 to 9$"):
        _specs_of(calls, [{"func": FN}, {"func": FN, "priority": 10}, {"func": "bad"}])
    with pytest.raises(UsageError, match=r"^each call for submit_many needs a 'func'$"):
        _specs_of(calls, [{"args": [1]}])
    specs = _specs_of(calls, [{"func": FN, "args": [1, 2], "priority": 1}, {"func": FN}])
    assert [(s.payload, s.priority) for s in specs] == [(PAYLOAD, 1), (pack([[], {}]), None)]


def test_a_call_checked_before_is_the_same_spec_with_its_own_payload() -> None:
    calls = _Calls("acme")
    options = {"priority": 3, "run_at": 1.5e9, "queue": "q"}
    first = calls.checked_call(FN, (1, 2), None, options)
    again = calls.checked_call(FN, ("x",), {"k": b"v"}, options)
    fresh = calls.checked_spec(calls.spec(FN, ("x",), {"k": b"v"}, **options))
    assert again == fresh
    assert again is not first
    assert first.payload == PAYLOAD
    assert calls.checked_call(FN, (), None, options).payload == pack([[], {}])


@pytest.mark.parametrize(
    ("accepted", "refused", "words"),
    [
        ({"priority": 1}, {"priority": True}, "priority must be an integer from 0 to 9"),
        ({"retries": 0}, {"retries": False}, "retries must be an integer from 0 to 1000"),
        ({"delay": 1}, {"delay": True}, "delay: not a duration: True"),
        ({"queue": "q"}, {"queue": "q q"}, "not a valid queue name: 'q q'"),
        ({}, {"colour": "red"}, "unknown submit option(s): colour"),
    ],
)
def test_a_call_checked_before_does_not_let_a_refused_one_through(
    accepted: dict[str, Any], refused: dict[str, Any], words: str
) -> None:
    """Options equal in value but not in type (``True == 1``) are not the same call."""
    calls = _Calls("default")
    calls.checked_call(FN, (), None, accepted)
    for _ in range(2):  # nor is a refused call remembered
        with pytest.raises(UsageError) as client:
            calls.checked_call(FN, (), None, refused)
        assert words in client.value.message
        with pytest.raises(UsageError) as fresh:
            calls.checked_spec(calls.spec(FN, (), None, **refused))
        assert client.value.message == fresh.value.message


def test_a_call_checked_before_still_refuses_its_arguments_and_forgets_when_full() -> None:
    calls = _Calls("default")
    calls.checked_call(FN, (1,), None, {"priority": 2})
    with pytest.raises(UsageError, match=r"cannot be encoded with msgpack: args\[0\] has type obj"):
        calls.checked_call(FN, (object(),), None, {"priority": 2})
    assert calls.checked_call(FN, (1, 2), None, {"priority": 2}).payload == PAYLOAD
    labelled = calls.checked_call(FN, (), None, {"labels": {"k": "v"}})  # unhashable: anew
    assert labelled.labels == {"k": "v"}
    with pytest.raises(UsageError, match="labels must be a map of strings to strings"):
        calls.checked_call(FN, (), None, {"labels": {"k": 1}})
    for delay in range(600):
        calls.checked_call(FN, (), None, {"delay": delay})
    assert len(calls._checked) <= 256


def test_encode_request_has_a_frame_header() -> None:
    frame = encode_request({"op": "ping", "rid": 1})
    assert frame == encode_frame({"op": "ping", "rid": 1})


def test_the_worker_child_does_not_load_msgspec() -> None:
    """``asynctask.protocol`` is the child's framing; the schema (msgspec) stays out of it."""
    code = "import sys, asynctask.executor.child; print('msgspec' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
