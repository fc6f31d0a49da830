"""The pure decisions of a submit: options against defaults, the queue, due time and expiry
(``core/admission.py``), what a taken ID means (``core/dedup.py``), and which destination a
task's end submits (``core/destinations.py``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import given
from hypothesis import strategies as st

from asynctask.core.admission import EXCLUSIVE, TaskDefaults, admission, admit, queue_of, spec_shape
from asynctask.core.dedup import Dedup, keeps, on_existing
from asynctask.core.destinations import destination_of
from asynctask.model import DEDUP_STATES, PRIORITY_DEFAULT, SubmitSpec, TaskState


@dataclass(frozen=True)
class Defaults:
    queue: str | None = None
    retries: int | None = None
    timeout: float | None = None
    priority: int | None = None


DAEMON = TaskDefaults(retries=3, timeout=None)
maybe_int = st.none() | st.integers(0, 9)
maybe_seconds = st.none() | st.floats(0.001, 1e6)


@given(
    explicit=maybe_int,
    configured=maybe_int,
    daemon=st.integers(0, 9),
)
def test_retries_come_from_the_submit_else_the_function_else_the_daemon(
    explicit: int | None, configured: int | None, daemon: int
) -> None:
    defaults = TaskDefaults(
        retries=daemon, timeout=None, functions={"m:f": Defaults(retries=configured)}
    )
    task = admit(SubmitSpec("m:f", b"", retries=explicit), "id", 1, 100.0, defaults)
    expected = (
        explicit if explicit is not None else configured if configured is not None else daemon
    )
    assert task.retries == expected
    assert task.options["retries"] == expected


def test_another_functions_defaults_do_not_apply() -> None:
    defaults = replace(DAEMON, functions={"m:g": Defaults(retries=0, priority=9, queue="q")})
    task = admit(SubmitSpec("m:f", b""), "id", 1, 0.0, defaults)
    assert (task.retries, task.priority, task.queue) == (3, PRIORITY_DEFAULT, "default")


@given(queue=st.none() | st.sampled_from(["q", EXCLUSIVE]), configured=st.none() | st.just("c"))
def test_the_queue_and_exclusive_queues(queue: str | None, configured: str | None) -> None:
    defaults = replace(DAEMON, functions={"m:f": Defaults(queue=configured)})
    spec = SubmitSpec("m:f", b"", tenant="t", queue=queue)
    chosen = queue if queue is not None else configured if configured is not None else "t"
    assert queue_of(spec, defaults) == ("m:f" if chosen == EXCLUSIVE else chosen)


@given(
    now=st.floats(0, 1e9),
    delay=maybe_seconds,
    run_at=st.none() | st.floats(0, 2e9),
    ttl=maybe_seconds,
)
def test_a_task_is_scheduled_only_when_it_is_due_later_and_expires_after_its_ttl(
    now: float, delay: float | None, run_at: float | None, ttl: float | None
) -> None:
    spec = SubmitSpec("m:f", b"", delay=delay, run_at=run_at, ttl=ttl)
    task = admit(spec, "id", 7, now, DAEMON)
    due = now + delay if delay else run_at
    if due is not None and due > now:
        assert task.state is TaskState.SCHEDULED
        assert task.due_at == due
    else:
        assert task.state is TaskState.QUEUED
        assert task.due_at is None
    assert task.expires_at == (None if ttl is None else now + ttl)
    assert ("expires_at" in task.options) is (ttl is not None)
    assert (task.seq, task.id, task.created_at) == (7, "id", now)


def test_options_travel_with_the_task_only_when_set() -> None:
    spec = SubmitSpec("m:f", b"", on_failure="m:dead", limits={"concurrency": 2.0})
    task = admit(spec, "id", 1, 0.0, DAEMON)
    assert task.options == {
        "retries": 3,
        "timeout": None,
        "on_failure": "m:dead",
        "limits": {"concurrency": 2.0},
        "fixed": "on_failure",  # the submit's: a report of the function's code keeps off it
    }


@given(st.none() | st.sampled_from(list(TaskState)))
def test_an_existing_id_is_kept_unless_its_task_ended_without_success(
    state: TaskState | None,
) -> None:
    meaning = on_existing(state)
    if state is None:
        assert meaning is Dedup.CREATE
    elif state in (TaskState.FAILED, TaskState.CANCELLED, TaskState.EXPIRED):
        assert meaning is Dedup.REPLACE
        assert not keeps(state)
    else:
        assert meaning is Dedup.KEEP
        assert keeps(state)
    assert (meaning is Dedup.KEEP) == (state in DEDUP_STATES)


@given(
    state=st.sampled_from(list(TaskState)),
    attempts=st.integers(1, 50),
    on_success=st.none() | st.just("m:ok"),
    on_failure=st.none() | st.just("m:bad"),
)
def test_the_destination_follows_the_end_and_its_id_names_the_end(
    state: TaskState, attempts: int, on_success: str | None, on_failure: str | None
) -> None:
    spec = SubmitSpec("m:f", b"", tenant="t", on_success=on_success, on_failure=on_failure)
    task = admit(spec, "x", 1, 0.0, DAEMON)
    task.state = state
    task.attempts = attempts
    task.result = b"\x07"
    destination = destination_of(task)
    wanted = {TaskState.SUCCEEDED: on_success, TaskState.FAILED: on_failure}.get(state)
    if wanted is None:
        assert destination is None
        return
    assert destination is not None
    option = "on_success" if state is TaskState.SUCCEEDED else "on_failure"
    assert destination.function == wanted
    assert destination.task_id == f"x:{option}:{attempts}"
    assert destination.tenant == "t"
    assert destination.result == b"\x07"
    assert list(destination.info) == ["id", "tenant", "state", "result", "error", "attempts"]
    assert destination.info["state"] == str(state)


specs = st.builds(
    SubmitSpec,
    function=st.sampled_from(["m:f", "m:g"]),
    payload=st.binary(max_size=8),
    tenant=st.sampled_from(["a", "b"]),
    id=st.none() | st.sampled_from(["x", "y"]),
    queue=st.none() | st.sampled_from(["q", EXCLUSIVE]),
    priority=maybe_int,
    delay=st.none() | st.floats(0, 100),
    run_at=st.none() | st.floats(0, 300),
    ttl=maybe_seconds,
    retries=maybe_int,
    timeout=maybe_seconds,
    labels=st.dictionaries(st.sampled_from(["k", "l"]), st.sampled_from(["v", "w"])),
    on_success=st.none() | st.just("m:done"),
    limits=st.none() | st.just({"rate": 2.0}),
    trace_id=st.none() | st.just("t" * 32),
)


@given(first=specs, data=st.data(), now=st.floats(0, 200))
def test_specs_of_one_shape_make_the_same_task_but_for_number_id_and_arguments(
    first: SubmitSpec, data: st.DataObject, now: float
) -> None:
    """A ``submit_many`` works a run of alike specs out once (``Admission``): that must be
    the task each would have made on its own."""
    other_call = st.builds(
        lambda payload, task_id: replace(first, payload=payload, id=task_id),
        st.binary(max_size=8),
        st.none() | st.just("z"),
    )
    second = data.draw(specs | other_call)
    defaults = TaskDefaults(retries=3, timeout=None, functions={"m:f": Defaults(queue="c")})
    shared = admission(first, now, defaults)
    alike = replace(second, payload=first.payload, id=first.id)
    assert (spec_shape(alike) == spec_shape(first)) == (alike == first)  # the shape is the rest
    if spec_shape(second) == spec_shape(first):
        made = shared.task(2, "id2", second.payload)
        assert vars_of(made) == vars_of(admit(second, "id2", 2, now, defaults))


def vars_of(task: object) -> dict[str, object]:
    return {name: getattr(task, name) for name in type(task).__slots__}  # type: ignore[attr-defined]
