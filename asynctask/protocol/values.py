"""Task values: arguments and results keep their Python types across the wire.

msgpack alone knows ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, lists and maps:
a tuple came back a list, and a ``datetime`` was refused. This codec adds msgpack *ext types*
for the rest, and is the one place that encodes and decodes a task's values: the client when
it packs arguments and reads results, the worker when it reads arguments and packs the result.
The daemon never calls it. It stores and forwards the bytes as they came (a destination's
``result`` too: ``msgpack`` hands an ext value it does not know back as an ``ExtType``, packed
again unchanged), so it never imports user code nor runs anything a value names.

Ext codes (part of the wire format: a code is never reused)::

    1 datetime   ISO 8601 text, e.g. 2026-12-07T10:00:00.5+01:00; naive without an offset; a
                 zoneinfo zone adds its key: 2026-12-07T10:00:00+01:00[Europe/Paris]
    2 date       ISO 8601 text, 2026-12-07
    3 time       ISO 8601 text, 10:00:00.000001 (+HH:MM when it has an offset)
    4 UUID       its 16 bytes
    5 Decimal    str(value): 1.10, -0, NaN, 1E+3
    6 tuple      msgpack of the items (an array), encoded by this codec
    7 set        the same
    8 frozenset  the same
    9 dataclass  msgpack of ["module:qualname", {field: value}], encoded by this codec
   -1 msgpack's standard timestamp (from other msgpack writers): an aware UTC datetime

A tuple subclass (a ``NamedTuple``) comes back a plain tuple; subclasses of ``int``, ``str``,
``dict``... (an ``IntEnum``, a ``defaultdict``) travel as their base type, as before.

Dataclasses, and the trust boundary
-----------------------------------
A dataclass travels as its ``module:qualname`` and its fields, and is rebuilt as ``pickle``
rebuilds an object: ``cls.__new__(cls)``, then each field set, without calling ``__init__``
or ``__post_init__`` (the value comes back as it was, ``init=False`` fields included). The
class is looked up only among the modules *already imported* by the decoding process; nothing
is ever imported because a value names it. In the worker, the task function's module is
imported before its arguments are decoded, so the classes it imports are found; in a client,
the program's own imports. That keeps the rule of ``[tenants.<t>] functions``: what a worker
imports is what the tenant's functions import, never a module a submitted value chose, and
the daemon imports nothing. A client that has not imported the class (the command line never
does) gets a ``DataclassRecord`` with the class's reference and the fields.

Hostile bytes
-------------
Decoding refuses, with ``ValueDecodingError``, an unknown ext code, an ext payload that does
not parse as its type, ext values nested deeper than ``MAX_DEPTH``, and bytes that are not one
msgpack value; the size is bounded by the frame and ``[daemon] max_payload`` before it gets
here. Encoding refuses, with ``ValueEncodingError``, a type it does not know, saying where in
the value it is (``args[1]['when']``), and a value nested deeper than ``MAX_DEPTH`` ext levels
(a cycle), so whatever encodes also decodes.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import msgpack

if TYPE_CHECKING:
    import uuid
    from decimal import Decimal

DATETIME: Final = 1
DATE: Final = 2
TIME: Final = 3
UUID: Final = 4
DECIMAL: Final = 5
TUPLE: Final = 6
SET: Final = 7
FROZENSET: Final = 8
DATACLASS: Final = 9

#: Ext values inside ext values (a tuple in a tuple ...), on both sides.
MAX_DEPTH: Final = 64
#: Longest ISO text of a date, time or datetime with a zone key.
_MAX_TEXT: Final = 128

_NAMES: Final = {
    DATETIME: "datetime",
    DATE: "date",
    TIME: "time",
    UUID: "UUID",
    DECIMAL: "Decimal",
    TUPLE: "tuple",
    SET: "set",
    FROZENSET: "frozenset",
    DATACLASS: "dataclass",
}

SUPPORTED: Final = (
    "None, bool, int, float, str, bytes, list, dict, tuple, set, frozenset, datetime, date, "
    "time, UUID, Decimal, and dataclasses of these"
)


class ValueEncodingError(TypeError):
    """A value this codec cannot encode: raised to the client at submit (as ``UsageError``)
    and in the worker for a task's result (error kind ``bad_result``). Change the value."""


class ValueDecodingError(ValueError):
    """Bytes that are not a value this codec wrote, or a dataclass whose class is not
    imported: raised in the worker for a task's arguments (the attempt fails) and by strict
    decoding. Not the reader's fault unless it lacks the class."""


@dataclasses.dataclass(frozen=True, slots=True)
class DataclassRecord:
    """A dataclass value whose class the decoding process has not imported: its
    ``module:qualname`` and its fields (also readable as attributes)."""

    ref: str
    fields: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("ref", "fields"):  # not set yet (copy, pickle)
            raise AttributeError(name)
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(f"{self.ref} value has no field {name!r}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class Undecodable:
    """A stored value that could not be decoded (lenient decoding): why."""

    reason: str


# -- encoding --------------------------------------------------------------------------------

_PACKERS: Final = threading.local()


def pack_value(value: Any, root: str = "value") -> bytes:
    """msgpack bytes of ``value``; ``ValueEncodingError`` naming where (from ``root``) the
    first value it cannot encode is."""
    try:
        packer = _PACKERS.packer
    except AttributeError:
        packer = _PACKERS.packer = _new_packer(0)
    try:
        data: bytes = packer.pack(value)
    except (TypeError, ValueError, OverflowError) as exc:  # a Packer empties itself after
        try:
            message = _explain(value, root, exc)
        except Exception:  # a value whose iteration or repr breaks: the encoder's words
            message = f"{root} cannot be encoded: {exc}"
        raise ValueEncodingError(message) from None
    return data


def pack_arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
    """The payload of a task: ``[args, kwargs]``, with errors naming ``args[i]`` or
    ``kwargs['name']``."""
    try:
        return pack_value([list(args), dict(kwargs)])
    except ValueEncodingError as whole:
        for root, value in (("args", list(args)), ("kwargs", dict(kwargs))):
            pack_value(value, root)  # raises, naming args[i] or kwargs['name']
        raise whole from None


def _new_packer(depth: int) -> Any:
    return msgpack.Packer(use_bin_type=True, strict_types=True, default=partial(_default, depth))


def _nested(value: Any, depth: int) -> bytes:
    """The items of a container inside an ext value, one level deeper."""
    if depth >= MAX_DEPTH:
        raise ValueEncodingError(f"values nested more than {MAX_DEPTH} levels deep (a cycle?)")
    data: bytes = _new_packer(depth + 1).pack(value)
    return data


def _default(depth: int, value: Any) -> Any:
    """msgpack's hook for what it does not know itself (``strict_types``: a tuple, a
    subclass of a type it knows)."""
    kind = type(value)
    encode = _ENCODERS.get(kind)
    if encode is not None:
        return encode(value, depth)
    # Subclasses: a NamedTuple is a plain tuple. (A snapshot: another thread may be adding
    # UUID and Decimal, below.)
    for base, encode in tuple(_ENCODERS.items()):
        if isinstance(value, base):
            return encode(value, depth)
    if _learn_lazy_types():  # a UUID or Decimal met for the first time: known now
        return _default(depth, value)
    if isinstance(value, DataclassRecord):  # passed on as it came: the class it names
        return msgpack.ExtType(DATACLASS, _nested([value.ref, dict(value.fields)], depth))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_dataclass(value, depth)
    plain: Any = value
    for builtin in _BUILTINS:
        if isinstance(plain, builtin):
            return builtin(plain)  # an IntEnum, a StrEnum, a defaultdict: as their base type
    raise TypeError(f"a {_type_name(value)} cannot be encoded")


#: Types msgpack packs itself, whose subclasses travel as them (``strict_types`` sends those
#: to ``_default``).
_BUILTINS: Final[tuple[type[Any], ...]] = (int, float, str, bytes, list, dict)


def _learn_lazy_types() -> bool:
    """Add ``UUID`` and ``Decimal`` to the encoders once their modules are imported (a value
    of either means its module is). Importing ``uuid`` costs a worker ~15 ms at start-up, for
    ``platform``; the fork server's workers would not pay it, a worker started with limits of
    its own would. ``True`` if this learned something."""
    learned = False
    uuid_module = sys.modules.get("uuid")
    if uuid_module is not None and uuid_module.UUID not in _ENCODERS:
        _ENCODERS[uuid_module.UUID] = lambda value, depth: msgpack.ExtType(UUID, value.bytes)
        learned = True
    decimal_module = sys.modules.get("decimal")
    if decimal_module is not None and decimal_module.Decimal not in _ENCODERS:
        _ENCODERS[decimal_module.Decimal] = lambda value, depth: msgpack.ExtType(
            DECIMAL, str(value).encode()
        )
        learned = True
    return learned


def _is_lazy_type(value: Any) -> bool:
    """A ``UUID`` or ``Decimal``, without importing their modules."""
    uuid_module = sys.modules.get("uuid")
    decimal_module = sys.modules.get("decimal")
    return (uuid_module is not None and isinstance(value, uuid_module.UUID)) or (
        decimal_module is not None and isinstance(value, decimal_module.Decimal)
    )


def _encode_datetime(value: datetime, depth: int) -> msgpack.ExtType:
    text = value.isoformat()
    key = _zone_key(value.tzinfo)
    if key is not None and value.utcoffset() is not None:
        text += f"[{key}]"
    return msgpack.ExtType(DATETIME, text.encode())


def _zone_key(zone: tzinfo | None) -> str | None:
    """A ``zoneinfo.ZoneInfo``'s key (checked by type name: no import of zoneinfo here)."""
    if zone is None or type(zone).__module__ != "zoneinfo":
        return None
    key = getattr(zone, "key", None)
    return key if isinstance(key, str) else None


def _encode_dataclass(value: Any, depth: int) -> msgpack.ExtType:
    cls = type(value)
    ref = f"{cls.__module__}:{cls.__qualname__}"
    if "<" in cls.__qualname__:
        raise TypeError(f"dataclass {ref} is defined inside a function: it cannot be rebuilt")
    if cls.__module__ == "__main__":
        raise TypeError(
            f"dataclass {cls.__qualname__} is defined in __main__, which the other side "
            "cannot find; define it in a module both import"
        )
    fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    return msgpack.ExtType(DATACLASS, _nested([ref, fields], depth))


_ENCODERS: Final[dict[type, Callable[[Any, int], msgpack.ExtType]]] = {
    datetime: _encode_datetime,
    date: lambda value, depth: msgpack.ExtType(DATE, value.isoformat().encode()),
    time: lambda value, depth: msgpack.ExtType(TIME, value.isoformat().encode()),
    tuple: lambda value, depth: msgpack.ExtType(TUPLE, _nested(list(value), depth)),
    set: lambda value, depth: msgpack.ExtType(SET, _nested(list(value), depth)),
    frozenset: lambda value, depth: msgpack.ExtType(FROZENSET, _nested(list(value), depth)),
}


def _explain(value: Any, root: str, exc: BaseException) -> str:
    """Why ``value`` did not encode: the path and type of the first part that cannot be, else
    the encoder's own words."""
    found = _first_unencodable(value, root, 0, set())
    if found is None:
        return f"{root} cannot be encoded: {exc}"
    path, bad = found
    if isinstance(bad, int):
        return f"{path} is an int outside the encodable range, -2**63 to 2**64 - 1: {bad}"
    if dataclasses.is_dataclass(bad):  # one the other side could not find: the encoder says
        return f"{path}: {exc}"
    return f"{path} has type {_type_name(bad)}, which cannot be encoded; supported: {SUPPORTED}"


def _first_unencodable(value: Any, path: str, depth: int, seen: set[int]) -> tuple[str, Any] | None:
    if depth > 200 or id(value) in seen:
        return None  # a cycle or a deep nest: the encoder's message says it
    if value is None or type(value) in (bool, float, str, bytes, bytearray, memoryview):
        return None
    if isinstance(value, int):
        return None if -(2**63) <= value < 2**64 else (path, value)
    seen = seen | {id(value)}
    children: Iterator[tuple[str, Any]]
    if isinstance(value, dict):
        children = _mapping_children(value, path)
    elif isinstance(value, list | tuple | set | frozenset):
        children = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        if "<" in type(value).__qualname__ or type(value).__module__ == "__main__":
            return path, value
        children = (
            (f"{path}.{field.name}", getattr(value, field.name))
            for field in dataclasses.fields(value)
        )
    elif isinstance(value, date | time | str | float | bytes) or _is_lazy_type(value):
        return None
    else:
        return path, value
    for child_path, child in children:
        found = _first_unencodable(child, child_path, depth + 1, seen)
        if found is not None:
            return found
    return None


def _mapping_children(value: Mapping[Any, Any], path: str) -> Iterator[tuple[str, Any]]:
    for key, item in value.items():
        yield f"{path} key {key!r}", key
        yield f"{path}[{key!r}]", item


def _type_name(value: Any) -> str:
    cls = type(value)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


# -- decoding --------------------------------------------------------------------------------


def unpack_value(data: bytes, *, lenient: bool = False, classes: bool = True) -> Any:
    """The value ``data`` holds. Strict (the worker's arguments): ``ValueDecodingError`` for
    anything wrong. ``lenient`` (a client reading a task's result): a dataclass whose class is
    not imported comes back a ``DataclassRecord``, and bytes that do not decode an
    ``Undecodable`` saying why, so one bad value does not hide a whole listing.
    ``classes=False`` (the daemon showing a tenant's value, in the web console): every
    dataclass comes back a ``DataclassRecord``, so no class of the decoding process is
    instantiated from what a tenant wrote."""
    try:
        return _unpack(data, _Hook(lenient, 0, classes))
    except ValueDecodingError as exc:
        if lenient:
            return Undecodable(str(exc))
        raise


def _unpack(data: bytes, hook: _Hook) -> Any:
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=False, ext_hook=hook, timestamp=3, use_list=True
        )
    except ValueDecodingError:
        raise
    except RecursionError:
        raise ValueDecodingError("the value is nested too deeply") from None
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ValueDecodingError(f"not a value asynctask encoded: {_short(exc)}") from None


class _Hook:
    """msgpack's ``ext_hook`` at one depth of ext values."""

    __slots__ = ("classes", "depth", "lenient")

    def __init__(self, lenient: bool, depth: int, classes: bool = True) -> None:
        self.lenient = lenient
        self.depth = depth
        self.classes = classes

    def __call__(self, code: int, data: bytes) -> Any:
        decode = _DECODERS.get(code)
        if decode is None:
            raise ValueDecodingError(
                f"unknown ext type {code}: not a value asynctask encoded (types: "
                f"{', '.join(f'{c} {n}' for c, n in _NAMES.items())})"
            )
        if self.depth >= MAX_DEPTH:
            raise ValueDecodingError(f"ext values nested more than {MAX_DEPTH} levels deep")
        try:
            return decode(data, self)
        except ValueDecodingError:
            raise
        except Exception as exc:  # ValueError, TypeError, UnicodeError, decimal's errors
            raise ValueDecodingError(f"a malformed {_NAMES[code]} value: {_short(exc)}") from None

    def items(self, data: bytes) -> list[Any]:
        items = _unpack(data, _Hook(self.lenient, self.depth + 1, self.classes))
        if not isinstance(items, list):
            raise ValueDecodingError(f"expected an array of items, not {type(items).__name__}")
        return items


def _text(data: bytes) -> str:
    if len(data) > _MAX_TEXT:
        raise ValueError(f"{len(data)} bytes, more than {_MAX_TEXT}")
    return data.decode("ascii")


def _decode_datetime(data: bytes, hook: _Hook) -> datetime:
    text = _text(data)
    key = None
    if text.endswith("]") and "[" in text:
        text, _, key = text[:-1].partition("[")
    value = _fromisoformat(text)
    if key is None:
        return value
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("a zone key on a naive datetime")
    return _in_zone(value, key) or value


#: A UTC offset with a fraction of a second, which ``datetime.fromisoformat`` of Python 3.11
#: reads wrong ("+00:00:00.000001" comes back as UTC).
_FRACTIONAL_OFFSET = re.compile(r"([+-])(\d\d):(\d\d):(\d\d)\.(\d{1,6})$")


def _fromisoformat(text: str) -> datetime:
    found = _FRACTIONAL_OFFSET.search(text)
    if found is None:
        return datetime.fromisoformat(text)
    sign, hours, minutes, seconds, fraction = found.groups()
    offset = timedelta(
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds),
        microseconds=int(fraction.ljust(6, "0")),
    )
    naive = datetime.fromisoformat(text[: found.start()])
    return naive.replace(tzinfo=timezone(-offset if sign == "-" else offset))


def _time_fromisoformat(text: str) -> time:
    if _FRACTIONAL_OFFSET.search(text) is None:
        return time.fromisoformat(text)
    return _fromisoformat(f"2000-01-01T{text}").timetz()


def _in_zone(value: datetime, key: str) -> datetime | None:
    """``value`` in the zone ``key`` if this machine knows it and it gives the same offset
    (its rules may differ here); else ``None``: the fixed offset is kept."""
    try:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(key)
    except Exception:  # unknown key, no tz database, a key that is not a key
        return None
    for fold in (0, 1):
        local = value.replace(tzinfo=zone, fold=fold)
        if local.utcoffset() == value.utcoffset():
            return local
    return None


def _decode_uuid(data: bytes, hook: _Hook) -> uuid.UUID:
    import uuid  # on first use (see _learn_lazy_types)

    if len(data) != 16:
        raise ValueError(f"{len(data)} bytes, not 16")
    return uuid.UUID(bytes=data)


def _decode_decimal(data: bytes, hook: _Hook) -> Decimal:
    from decimal import Decimal

    return Decimal(data.decode("ascii"))


def _decode_dataclass(data: bytes, hook: _Hook) -> Any:
    items = hook.items(data)
    if (
        len(items) != 2
        or not isinstance(items[0], str)
        or not isinstance(items[1], dict)
        or not all(isinstance(name, str) for name in items[1])
    ):
        raise ValueError("expected ['module:qualname', {field: value}]")
    ref, fields = items
    if not hook.classes:
        return DataclassRecord(ref, fields)
    try:
        return _rebuild(ref, fields)
    except ValueDecodingError:
        if hook.lenient:
            return DataclassRecord(ref, fields)
        raise


def _rebuild(ref: str, fields: dict[str, Any]) -> Any:
    cls = _find_class(ref)
    known = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ValueDecodingError(
            f"dataclass {ref} has no field {unknown[0]!r} (did the class change between "
            "the two sides?)"
        )
    factory: Any = cls
    value = factory.__new__(factory)
    for name, field in known.items():
        if name in fields:
            item = fields[name]
        elif field.default is not dataclasses.MISSING:
            item = field.default
        elif field.default_factory is not dataclasses.MISSING:
            item = field.default_factory()
        else:
            raise ValueDecodingError(f"dataclass {ref} value has no field {name!r}")
        object.__setattr__(value, name, item)
    return value


def _find_class(ref: str) -> type[Any]:
    """The dataclass ``ref`` names, from the modules already imported, never importing."""
    module_name, _, qualname = ref.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        raise ValueDecodingError(
            f"the value is a {ref} dataclass, but module {module_name!r} is not imported "
            "here: import it (in the task's module, or in the program reading the result); "
            "asynctask never imports a module a value names"
        )
    target: Any = module
    for part in qualname.split("."):
        if not part.isidentifier():
            target = None
            break
        target = getattr(target, part, None)
    if not isinstance(target, type) or not dataclasses.is_dataclass(target):
        raise ValueDecodingError(f"{ref} is not a dataclass in the imported module {module_name!r}")
    return target


_DECODERS: Final[dict[int, Callable[[bytes, _Hook], Any]]] = {
    DATETIME: _decode_datetime,
    DATE: lambda data, hook: date.fromisoformat(_text(data)),
    TIME: lambda data, hook: _time_fromisoformat(_text(data)),
    UUID: _decode_uuid,
    DECIMAL: _decode_decimal,
    TUPLE: lambda data, hook: tuple(hook.items(data)),
    SET: lambda data, hook: set(hook.items(data)),
    FROZENSET: lambda data, hook: frozenset(hook.items(data)),
    DATACLASS: _decode_dataclass,
}


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:295] + "[...]"


# -- JSON, for people and scripts -----------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """``value`` as JSON can show it (``status --json``, ``result``): lists for tuples, a
    one-key tag object for each other type - ``{"$datetime": "2026-12-07T10:00:00+01:00"}``,
    ``{"$date": ...}``, ``{"$time": ...}``, ``{"$uuid": ...}``, ``{"$decimal": "1.10"}``,
    ``{"$set": [...]}``, ``{"$frozenset": [...]}``, ``{"$dataclass": "mod:Cls", "fields":
    {...}}``, ``{"$undecodable": why}``; bytes as UTF-8 text, else hex."""
    return _jsonable(value, 0)


def _jsonable(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH * 16:
        return {"$undecodable": "nested too deeply to show"}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return raw.hex()
    if isinstance(value, msgpack.ExtType):  # a namedtuple: before tuples
        return {"$ext": value.code, "hex": value.data.hex()}
    if isinstance(value, list | tuple):
        return [_jsonable(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_key(key): _jsonable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, datetime):
        key = _zone_key(value.tzinfo)
        text = value.isoformat() + (f"[{key}]" if key and value.utcoffset() is not None else "")
        return {"$datetime": text}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    uuid_module = sys.modules.get("uuid")
    if uuid_module is not None and isinstance(value, uuid_module.UUID):
        return {"$uuid": str(value)}
    decimal_module = sys.modules.get("decimal")
    if decimal_module is not None and isinstance(value, decimal_module.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, set | frozenset):
        items = [_jsonable(item, depth + 1) for item in value]
        items.sort(key=_sort_key)
        return {"$frozenset" if isinstance(value, frozenset) else "$set": items}
    if isinstance(value, DataclassRecord):
        return {"$dataclass": value.ref, "fields": _jsonable(dict(value.fields), depth + 1)}
    if isinstance(value, Undecodable):
        return {"$undecodable": value.reason}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        return {
            "$dataclass": f"{cls.__module__}:{cls.__qualname__}",
            "fields": _jsonable(fields, depth + 1),
        }
    return {"$repr": repr(value)}


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    shown = _jsonable(key, 0)
    return shown if isinstance(shown, str) else _sort_key(shown)


def _sort_key(shown: Any) -> str:
    import json  # only the command line's rendering needs it

    return json.dumps(shown, sort_keys=True, default=str)
