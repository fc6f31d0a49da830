"""The machinery under the wire schema (``requests.py``): the base of every request Struct,
the conversion of a decoded map into one with a refusal in the schema's words, and the encoding
of a request the client sends. Apart from the Structs so that they read as the schema alone."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, TypeVar

import msgspec

from asynctask.errors import UsageError


class Refusal(ValueError):
    """A value a Struct's ``__post_init__`` refuses; its message is the ``UsageError``'s."""


Refuse = Callable[[Any], str]


class WireStruct(msgspec.Struct, omit_defaults=True):
    """A request shape. ``_REFUSE`` words the refusal of a field whose type is wrong (given the
    value sent), ``_NOT_A_MAP`` that of the whole value when it is not a map, ``_unknown`` that
    of unknown keys (with ``forbid_unknown_fields``)."""

    _REFUSE: ClassVar[dict[str, Refuse]] = {}
    _NOT_A_MAP: ClassVar[str] = "a request must be a map"
    _NESTED: ClassVar[dict[str, type[WireStruct]]] = {}

    @classmethod
    def _unknown(cls, keys: list[str]) -> str:
        return f"unknown field(s): {', '.join(keys)}"


S = TypeVar("S", bound=WireStruct)

ERROR_AT = re.compile(r" - at `(?P<key>key` in `)?(?P<path>\$[^`]*)`$")
ERROR_PATH = re.compile(r"\.(\w+)|\[(\d+)\]")
_UNKNOWN = "Object contains unknown field"
_MISSING = re.compile(r"^Object missing required field `(\w+)`")


def decode(kind: type[S], message: Any) -> S:
    """``message`` (a decoded map) as a ``kind``, or ``UsageError`` naming the field at fault
    and what it takes."""
    try:
        return msgspec.convert(message, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise UsageError(refusal(kind, message, exc)) from None


def refusal(kind: type[WireStruct], message: Any, error: msgspec.ValidationError) -> str:
    """The words of ``error``, raised converting ``message`` to ``kind``: a ``Refusal``'s own,
    or the refusal the Struct holding the failing field gives for it."""
    if isinstance(error.__cause__, Refusal):
        return str(error.__cause__)
    text = str(error)
    at = ERROR_AT.search(text)
    summary = text[: at.start()] if at else text
    steps = ERROR_PATH.findall(at["path"]) if at else []
    owner: type[WireStruct] | None = kind  # the Struct whose value is at the path, if any
    holder: type[WireStruct] | None = None  # the Struct declaring the last field named
    field = ""
    value = field_value = message
    for name, index in steps:
        if name:
            holder, field = owner, name
            value = field_value = value.get(name) if isinstance(value, Mapping) else None
            owner = holder._NESTED.get(name) if holder is not None else None
        else:
            value = value[int(index)] if isinstance(value, list) else None
    if summary.startswith(_UNKNOWN) and owner is not None and isinstance(value, Mapping):
        known = set(owner.__struct_fields__)
        return owner._unknown(sorted(str(key) for key in value if key not in known))
    missing = _MISSING.match(summary)
    if missing and owner is not None:
        return _field_refusal(owner, missing[1], None, summary)
    if steps and steps[-1][1] and owner is not None:
        return owner._NOT_A_MAP  # an element of a list of Structs is not a map
    if holder is not None:
        return _field_refusal(holder, field, field_value, summary)
    if at is not None and at["key"]:
        return f"{kind._NOT_A_MAP} with text keys"
    return kind._NOT_A_MAP


def _field_refusal(owner: type[WireStruct], field: str, value: Any, summary: str) -> str:
    refuse = owner._REFUSE.get(field)
    return refuse(value) if refuse is not None else f"{field}: {summary}"


def to_wire(request: WireStruct) -> dict[str, Any]:
    """A Struct as the map a client sends (unset fields left out, bytes kept bytes)."""
    wire: dict[str, Any] = msgspec.to_builtins(request, builtin_types=(bytes,))
    return wire


_ENCODER: Final = msgspec.msgpack.Encoder()
_HEADER: Final = struct.Struct(">I")


def encode_request(request: Mapping[str, Any]) -> bytearray:
    """A request map, whose values may be Structs (a ``submit``'s ``TaskSpec``s), as one frame:
    the same msgpack map ``framing.encode_frame`` makes of the equivalent plain map (a Struct
    is a map of its set fields; bytes are bin, text str), so any version-1 daemon reads it.
    Encoded after room for the header, which is then written in place: no second copy."""
    frame = bytearray(_HEADER.size)
    _ENCODER.encode_into(request, frame, _HEADER.size)
    _HEADER.pack_into(frame, 0, len(frame) - _HEADER.size)
    return frame
