"""The task value codec (``asynctask/protocol/values.py``): every supported value comes back
with its type, what cannot be encoded says where, and hostile bytes get a clear error."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import subprocess
import sys
import uuid
from collections import OrderedDict
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.protocol import values
from asynctask.protocol.values import (
    DataclassRecord,
    Undecodable,
    ValueDecodingError,
    ValueEncodingError,
    pack_arguments,
    pack_value,
    to_jsonable,
    unpack_value,
)


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    name: str
    tags: frozenset[str] = frozenset()


@dataclasses.dataclass
class Derived:
    """A field ``__init__`` does not take and ``__post_init__`` sets: kept as it was."""

    base: int
    double: int = dataclasses.field(init=False, default=-1)

    def __post_init__(self) -> None:
        self.double = self.base * 2


@dataclasses.dataclass
class Nested:
    point: Point
    when: datetime
    items: tuple[Any, ...]


class Pair(NamedTuple):
    a: int
    b: int


class Colour(enum.IntEnum):
    RED = 1


# -- equal values of the same types ----------------------------------------------------------


def same(left: Any, right: Any) -> bool:
    """``left`` and ``right`` are equal with the same type all the way down (``1 == True`` and
    ``[1] == (1,)`` are not good enough), offsets and ``-0.0`` included."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return (math.isnan(left) and math.isnan(right)) or (
            left == right and math.copysign(1, left) == math.copysign(1, right)
        )
    if isinstance(left, Decimal):
        return left.as_tuple() == right.as_tuple()
    if isinstance(left, datetime | time):
        return (
            left.replace(tzinfo=None) == right.replace(tzinfo=None)
            and left.utcoffset() == right.utcoffset()
            and (left.tzinfo is None) == (right.tzinfo is None)
        )
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, set | frozenset):
        return left == right and all(any(same(item, other) for other in right) for item in left)
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if dataclasses.is_dataclass(left):
        return all(
            same(getattr(left, f.name), getattr(right, f.name)) for f in dataclasses.fields(left)
        )
    return bool(left == right)


offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
)
zones = st.one_of(st.none(), offsets, st.just(UTC))
ints = st.integers(-(2**63), 2**64 - 1)
#: NaNs are never equal, not even to themselves, so no set or key holds one here.
hashable_leaves = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.datetimes(timezones=zones),
    st.dates(),
    st.times(timezones=zones),
    st.uuids(),
    st.decimals(allow_nan=False),
)
hashables = st.recursive(
    hashable_leaves,
    lambda children: (
        st.lists(children, max_size=4).map(tuple) | st.frozensets(children, max_size=4)
    ),
    max_leaves=10,
)
values_ = st.recursive(
    hashables
    | st.floats()
    | st.sampled_from([Decimal("NaN"), Decimal("-sNaN"), Decimal("Infinity")])
    | st.builds(Point, ints, ints),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.sets(hashables, max_size=4)
        | st.dictionaries(st.text(max_size=8) | ints | hashables, children, max_size=4)
        | st.builds(
            Nested,
            st.builds(Point, ints),
            st.datetimes(timezones=zones),
            st.lists(children, max_size=3).map(tuple),
        )
        | st.builds(Frozen, st.text(max_size=8), st.frozensets(st.text(max_size=4), max_size=3))
    ),
    max_leaves=25,
)


@settings(max_examples=300)
@given(values_)
def test_every_value_comes_back_with_its_types(value: Any) -> None:
    assert same(unpack_value(pack_value(value)), value)


@given(st.lists(values_, max_size=4), st.dictionaries(st.text(max_size=8), values_, max_size=4))
def test_arguments_come_back_as_the_worker_reads_them(
    args: list[Any], kwargs: dict[str, Any]
) -> None:
    assert same(unpack_value(pack_arguments(args, kwargs)), [args, kwargs])


@given(st.datetimes(timezones=st.timezones()))
def test_a_zoneinfo_datetime_keeps_its_zone(value: datetime) -> None:
    back = unpack_value(pack_value(value))
    assert same(back, value)
    assert back.tzinfo is value.tzinfo  # ZoneInfo(key) is cached: the very zone object


def test_plain_values_keep_the_bytes_msgpack_gave_them() -> None:
    """Old payloads and other msgpack writers: what has no ext type is encoded as before."""
    plain = [None, True, 1, -1, 2**64 - 1, 1.5, "text", b"raw", [1, [2]], {"k": {"n": 1}}]
    assert pack_value(plain) == msgpack.packb(plain, use_bin_type=True)
    assert unpack_value(msgpack.packb(plain, use_bin_type=True)) == plain


def test_subclasses_travel_as_their_base_types() -> None:
    value = [Pair(1, 2), Colour.RED, OrderedDict(a=1), Derived(3)]
    back = unpack_value(pack_value(value))
    assert same(back[0], (1, 2))  # a NamedTuple comes back a plain tuple
    assert type(back[1]) is int
    assert back[1] == 1
    assert type(back[2]) is dict
    assert back[2] == {"a": 1}
    assert (back[3].base, back[3].double) == (3, 6)  # rebuilt without __post_init__: kept


def test_an_offset_with_a_fraction_of_a_second_is_kept() -> None:
    """Python 3.11's ``fromisoformat`` reads "+00:00:00.000001" as UTC (found by the round-trip
    property test): such offsets are parsed by hand."""
    for offset in (timedelta(microseconds=1), -timedelta(hours=5, seconds=7, microseconds=500)):
        zone = timezone(offset)
        moment = datetime(2000, 1, 1, tzinfo=zone)
        back = unpack_value(values.pack_value(moment))
        assert back == moment
        assert back.utcoffset() == offset
        clock = time(1, 2, 3, 4, tzinfo=zone)
        assert unpack_value(values.pack_value(clock)).utcoffset() == offset


def test_special_decimals_and_floats() -> None:
    for text in ("NaN", "-0", "1E+3", "Infinity", "-Infinity", "1.10", "sNaN"):
        assert str(unpack_value(pack_value(Decimal(text)))) == text
    assert math.copysign(1, unpack_value(pack_value(-0.0))) == -1


def test_a_zone_this_machine_does_not_know_keeps_the_offset() -> None:
    data = msgpack.packb(
        msgpack.ExtType(values.DATETIME, b"2026-06-01T10:00:00+02:00[Nowhere/Atlantis]")
    )
    back = unpack_value(data)
    assert back.utcoffset() == timedelta(hours=2)
    assert back.tzinfo == timezone(timedelta(hours=2))


def test_a_msgpack_timestamp_is_an_aware_utc_datetime() -> None:
    stamp = msgpack.Timestamp.from_unix(1_800_000_000)
    assert unpack_value(msgpack.packb(stamp)) == datetime.fromtimestamp(1_800_000_000, UTC)


# -- what cannot be encoded says where --------------------------------------------------------


def test_an_unencodable_value_is_named_by_its_place() -> None:
    with pytest.raises(ValueEncodingError) as refused:
        pack_value({"items": [1, {"when": object()}]}, "result")
    assert str(refused.value).startswith(
        "result['items'][1]['when'] has type object, which cannot be encoded; supported: None,"
    )
    with pytest.raises(ValueEncodingError, match=r"^args\[1\] has type .*Path"):
        pack_arguments((1, Path("/tmp")), {})
    with pytest.raises(ValueEncodingError, match=r"^kwargs\['when'\]\.x has type complex"):
        pack_arguments((), {"when": Point(1j)})  # type: ignore[arg-type]
    with pytest.raises(ValueEncodingError, match=r"^value\[0\] is an int outside the encodable"):
        pack_value([2**70])
    with pytest.raises(ValueEncodingError, match="key 1j"):
        pack_value({1j: 1})


def test_a_dataclass_the_other_side_cannot_find_is_refused() -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    with pytest.raises(ValueEncodingError, match="defined inside a function"):
        pack_value(Local(1))
    main = dataclasses.make_dataclass("Script", [("x", int)])
    main.__module__ = "__main__"
    with pytest.raises(ValueEncodingError, match="defined in __main__"):
        pack_value([main(1)], "result")


def test_cycles_and_deep_nests_are_refused_not_crashed() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueEncodingError, match="cannot be encoded"):
        pack_value(loop)
    through_tuples: list[Any] = []
    through_tuples.append((through_tuples,))
    with pytest.raises(ValueEncodingError, match="nested more than 64 levels"):
        pack_value(through_tuples)
    deep: Any = 1
    for _ in range(values.MAX_DEPTH + 1):
        deep = (deep,)
    with pytest.raises(ValueEncodingError, match="nested more than"):
        pack_value(deep)
    deep = 1
    for _ in range(values.MAX_DEPTH):
        deep = (deep,)
    assert unpack_value(pack_value(deep)) == deep  # what encodes, decodes


# -- hostile bytes -----------------------------------------------------------------------------


def ext(code: int, data: bytes) -> bytes:
    return msgpack.packb(msgpack.ExtType(code, data))


def nested_ext(levels: int) -> bytes:
    data = msgpack.packb(1)
    for _ in range(levels):
        data = ext(values.TUPLE, b"\x91" + data)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (ext(42, b"x"), "unknown ext type 42"),
        (b"\xd4\xfbx", "unknown ext type -5"),  # fixext 1, code -5
        (pack_value((1, 2, 3))[:-1], "not a value asynctask encoded"),
        (ext(values.TUPLE, b"\x93\x01"), "exceeds max_array_len"),  # 3 items in 2 bytes
        (ext(values.TUPLE, msgpack.packb({"a": 1})), "expected an array"),
        (ext(values.DATETIME, b"2026-13-45T00:00:00"), "a malformed datetime value"),
        (ext(values.DATETIME, b"2026-01-01T00:00:00[Europe/Paris]"), "naive datetime"),
        (ext(values.DATETIME, b"9" * 1000), "more than 128"),
        (ext(values.DATE, b"\xff\xfe"), "a malformed date value"),
        (ext(values.TIME, b"25:00"), "a malformed time value"),
        (ext(values.UUID, b"short"), "5 bytes, not 16"),
        (ext(values.DECIMAL, b"one point five"), "a malformed Decimal value"),
        (ext(values.SET, msgpack.packb([[1]])), "unhashable"),
        (ext(values.DATACLASS, msgpack.packb([1, 2, 3])), "expected ['module:qualname'"),
        (nested_ext(values.MAX_DEPTH + 5), "nested more than 64 levels"),
        (b"\x91" * 200_000 + b"\x01", "not a value asynctask encoded"),
        (b"\xc9\xff\xff\xff\xff\x06" + b"x" * 10, "not a value asynctask encoded"),
        (b"\xc1", "not a value asynctask encoded"),
        (msgpack.packb(1) + msgpack.packb(2), "not a value asynctask encoded"),
    ],
)
def test_hostile_bytes_get_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueDecodingError) as refused:
        unpack_value(data)
    assert message in str(refused.value)
    shown = unpack_value(data, lenient=True)
    assert isinstance(shown, Undecodable)
    assert message in shown.reason


def test_a_dataclass_is_rebuilt_only_from_an_imported_module() -> None:
    def record(ref: str, fields: dict[str, Any]) -> bytes:
        return ext(values.DATACLASS, msgpack.packb([ref, fields]))

    assert "antigravity" not in sys.modules
    with pytest.raises(ValueDecodingError, match="module 'antigravity' is not imported here"):
        unpack_value(record("antigravity:Fly", {}))
    assert "antigravity" not in sys.modules  # a value never makes anything import
    with pytest.raises(ValueDecodingError, match="is not a dataclass"):
        unpack_value(record("collections:OrderedDict", {}))
    with pytest.raises(ValueDecodingError, match="is not a dataclass"):
        unpack_value(record(f"{__name__}:Point.__init__.__globals__", {}))
    with pytest.raises(ValueDecodingError, match="has no field 'z'"):
        unpack_value(record(f"{__name__}:Point", {"x": 1, "z": 2}))
    with pytest.raises(ValueDecodingError, match="value has no field 'x'"):
        unpack_value(record(f"{__name__}:Point", {}))
    assert unpack_value(record(f"{__name__}:Point", {"x": 1})) == Point(1, 0)  # a default
    # Lenient (a client that lacks the class): the reference and the fields.
    shown = unpack_value(record("antigravity:Fly", {"height": 3}), lenient=True)
    assert shown == DataclassRecord("antigravity:Fly", {"height": 3})
    assert shown.height == 3


def test_without_classes_every_dataclass_stays_a_record() -> None:
    """The daemon (its web console) shows a tenant's values: it must not instantiate one of
    its own classes from what a tenant wrote, even one it has imported."""
    data = values.pack_value([Point(1, 2)])
    assert unpack_value(data) == [Point(1, 2)]
    [record] = unpack_value(data, classes=False)
    assert record == DataclassRecord(f"{__name__}:Point", {"x": 1, "y": 2})
    nested = values.pack_value({"at": (Point(0, 0),)})
    assert unpack_value(nested, classes=False) == {
        "at": (DataclassRecord(f"{__name__}:Point", {"x": 0, "y": 0}),)
    }


# -- JSON for the command line --------------------------------------------------------------


def test_json_rendering_tags_each_type() -> None:
    paris = timezone(timedelta(hours=1))
    value = {
        "when": datetime(2026, 12, 7, 10, 0, tzinfo=paris),
        "naive": datetime(2026, 12, 7, 10, 0, 0, 500),
        "day": date(2026, 12, 7),
        "at": time(10, 30),
        "id": uuid.UUID(int=1),
        "price": Decimal("1.10"),
        "pair": (1, 2),
        "tags": {"b", "a"},
        "frozen": frozenset({2, 1}),
        "point": Point(1, 2),
        "raw": b"\xff\x00",
        "text": b"hi",
        "elsewhere": DataclassRecord("other:Cls", {"n": 1}),
        "broken": Undecodable("why"),
        (1, 2): "tuple key",
    }
    shown = to_jsonable(value)
    assert json.loads(json.dumps(shown)) == {
        "when": {"$datetime": "2026-12-07T10:00:00+01:00"},
        "naive": {"$datetime": "2026-12-07T10:00:00.000500"},
        "day": {"$date": "2026-12-07"},
        "at": {"$time": "10:30:00"},
        "id": {"$uuid": "00000000-0000-0000-0000-000000000001"},
        "price": {"$decimal": "1.10"},
        "pair": [1, 2],
        "tags": {"$set": ["a", "b"]},
        "frozen": {"$frozenset": [1, 2]},
        "point": {"$dataclass": f"{__name__}:Point", "fields": {"x": 1, "y": 2}},
        "raw": "ff00",
        "text": "hi",
        "elsewhere": {"$dataclass": "other:Cls", "fields": {"n": 1}},
        "broken": {"$undecodable": "why"},
        "[1, 2]": "tuple key",
    }


def test_a_record_passed_on_is_the_dataclass_it_names() -> None:
    """A program without the class can still hand the value on, to a side that has it."""
    record = DataclassRecord(f"{__name__}:Point", {"x": 1, "y": 2})
    assert unpack_value(pack_value(record)) == Point(1, 2)


def test_the_worker_does_not_import_uuid_or_decimal_until_a_value_needs_them() -> None:
    """``uuid`` imports ``platform`` (~15 ms): a worker started with limits of its own would
    pay it before its first attempt. A fresh interpreter shows what the worker loads."""
    script = (
        "import sys, asynctask.executor.child as child\n"
        "from asynctask.protocol.values import pack_value, unpack_value\n"
        "assert not {'uuid', 'decimal', 'platform', 'json'} & set(sys.modules), sys.modules\n"
        "import uuid, decimal\n"
        "value = [uuid.UUID(int=3), decimal.Decimal('2.5'), (1,)]\n"
        "assert unpack_value(pack_value(value)) == value\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
