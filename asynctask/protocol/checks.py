"""Field checks shared by the request Structs (``requests.py``): what a type cannot say -
ranges, name and ID patterns, finite numbers, the size of labels - each raising a ``Refusal``
whose words name the field and what it takes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from asynctask.model import MAX_SECONDS, TaskState, is_function_ref, is_name
from asynctask.protocol.wirestruct import Refusal, Refuse

MAX_TASKS_PER_SUBMIT: Final = 10_000
MAX_LIST_LIMIT: Final = 10_000
MAX_LABELS: Final = 32
#: Longest ``trace_id``: a W3C traceparent is 55 characters; room for other schemes' IDs.
MAX_TRACE_ID: Final = 128
KNOWN_STATES: Final = ", ".join(state.value for state in TaskState)
STATE_VALUES: Final = frozenset(state.value for state in TaskState)


def name_refusal(key: str) -> Refuse:
    return lambda value: f"not a valid {key} name: {value!r}"


def tenant_refusal(value: Any) -> str:
    return f"not a tenant name: {value!r}"


def function_refusal(key: str) -> Refuse:
    return lambda value: f"{key} must look like package.module:function, got {value!r}"


def number_refusal(key: str) -> Refuse:
    return lambda value: f"{key} must be a number, got {value!r}"


def labels_refusal(value: Any) -> str:
    return "labels must be a map of strings to strings"


def trace_id_refusal(value: Any) -> str:
    return f"trace_id must be 1-{MAX_TRACE_ID} printable ASCII characters"


#: Names and function references already matched valid. A submit of many tasks names the
#: same few again and again: each is matched once, then found here. Emptied when full, so
#: a peer sending endless new names costs a match each, as without it.
_VALID_NAMES: Final[set[str]] = set()
_VALID_FUNCTIONS: Final[set[str]] = set()
_MAX_REMEMBERED: Final = 1024


def _remember(seen: set[str], value: str) -> None:
    if len(seen) >= _MAX_REMEMBERED:
        seen.clear()
    seen.add(value)


def check_tenant(tenant: str | None) -> None:
    if tenant is None or tenant in _VALID_NAMES:
        return
    if not is_name(tenant):
        raise Refusal(tenant_refusal(tenant))
    _remember(_VALID_NAMES, tenant)


def check_name(value: str | None, key: str) -> None:
    if value is None or value in _VALID_NAMES:
        return
    if not is_name(value):
        raise Refusal(name_refusal(key)(value))
    _remember(_VALID_NAMES, value)


def check_function(value: str | None, key: str) -> None:
    if value is None or value in _VALID_FUNCTIONS:
        return
    if not is_function_ref(value):
        raise Refusal(function_refusal(key)(value))
    _remember(_VALID_FUNCTIONS, value)


def check_number(value: float | None, key: str) -> None:
    if value is not None and not math.isfinite(value):
        raise Refusal(number_refusal(key)(value))


def check_seconds(value: float | None, key: str, *, positive: bool = False) -> None:
    """A duration in seconds, at most ``MAX_SECONDS`` (100 years): a time past that no longer
    fits a date, and reading the task back would fail."""
    check_number(value, key)
    if value is not None and (value < 0 or (positive and value == 0) or value > MAX_SECONDS):
        raise Refusal(
            f"{key} must be {'more than 0' if positive else '0 or more'} and at most "
            f"{MAX_SECONDS:.0f} seconds (100 years), got {value!r}"
        )


def check_labels(labels: dict[str, str] | None) -> None:
    if labels is None:
        return
    if len(labels) > MAX_LABELS:
        raise Refusal(f"at most {MAX_LABELS} labels per task")
    for key, value in labels.items():
        if not key or len(key) > 128 or len(value) > 1024:
            raise Refusal(f"label {key!r}: keys are 1-128 and values up to 1024 characters")


def check_trace_id(value: str | None) -> None:
    """Any printable ASCII text up to ``MAX_TRACE_ID`` characters (the daemon never reads it)."""
    if value is not None and not (
        0 < len(value) <= MAX_TRACE_ID and value.isascii() and value.isprintable()
    ):
        raise Refusal(trace_id_refusal(value))


def labels_size(labels: Mapping[str, str]) -> int:
    """The bytes ``labels`` count toward ``max_payload``: their keys and values in UTF-8."""
    return sum(len(key.encode()) + len(value.encode()) for key, value in labels.items())


def count_refusal(key: str) -> Refuse:
    return lambda value: f"{key} must be an integer from 0 to 1000"


def check_count(value: int | None, key: str) -> None:
    if value is not None and not 0 <= value <= 1000:
        raise Refusal(count_refusal(key)(value))
