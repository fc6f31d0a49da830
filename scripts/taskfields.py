"""Generate every list of a task's fields from ``asynctask/taskfields.py``, the one definition.

The generated code sits between marker comments in the modules that need it
(``# <generated taskfields:NAME>`` ... ``# </generated taskfields:NAME>``), so each module keeps
its hand-written logic around it and reads as ordinary code. Generated rather than built at
run time because the classes must be visible to mypy, and because the hot paths (decoding a
million rows at start-up, one ``UpdateTask`` per state change) must stay the positional,
straight-line code they were by hand.

Usage: ``python scripts/taskfields.py`` rewrites the blocks; ``--check`` exits 1, changing
nothing, when a block differs from what the table gives (``make lint`` runs it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask.taskfields import FIELDS, MUTABLE, STORED, VIEW, TaskField  # noqa: E402

Lines = list[str]


def _live_task() -> Lines:
    slots = sorted([f.name for f in FIELDS] + ["queued_at"])
    out = ["__slots__ = (", *[f'    "{name}",' for name in slots], ")", ""]
    out.append("def __init__(  # positional too: recovery builds a million, keywords cost 4x")
    out.append("    self,")
    for f in FIELDS:
        default = "" if f.default is None else f" = {f.default}"
        out.append(f"    {f.name}: {f.type}{default},")
    out.append(") -> None:")
    out += [f"    self.{f.name} = {f.name}" for f in FIELDS]
    out.append("    self.queued_at = 0.0  # when it last became ready; set by the scheduler")
    return out


def _fields(fields: tuple[TaskField, ...], defaults: bool = True) -> Lines:
    out = []
    for f in fields:
        if f.doc:
            out.append(f"#: {f.doc[0].upper()}{f.doc[1:]}.")
        default = "" if f.default is None or not defaults else f" = {f.default}"
        out.append(f"{f.name}: {f.type}{default}")
    return out


def _task_row() -> Lines:
    return _fields(STORED)


def _update_task() -> Lines:
    return ["seq: int", *_fields(MUTABLE)]


def _columns() -> Lines:
    return [
        "#: The columns of ``tasks`` in ``TaskRow`` field order; reads and inserts use this order.",
        "COLUMNS: Final = (",
        *[f'    "{f.name}",' for f in STORED],
        ")",
        "#: The columns an ``UpdateTask`` writes, in its parameter order (``seq`` last).",
        "_UPDATE_COLUMNS: Final = (",
        *[f'    "{f.name}",' for f in MUTABLE],
        ")",
    ]


def _encoded(f: TaskField, owner: str) -> tuple[str | None, str]:
    """(a line that encodes the field before the tuple, or None; its expression in the tuple)."""
    value = f"{owner}.{f.name}"
    if f.column == "options":
        return f"{f.name} = _pack_options({value})", f.name
    if f.column == "labels":
        return f"{f.name} = _dump_json({value}) if {value} else _EMPTY_MAP_JSON", f.name
    if f.column == "json":
        return f"{f.name} = None if {value} is None else _dump_json({value})", f.name
    if f.column == "msgpack":
        return f"{f.name} = None if {value} is None else _packb({value})", f.name
    if f.column == "state":
        return None, f"{value}.value"
    return None, value


def _params(
    name: str, owner: str, kind: str, fields: tuple[TaskField, ...], doc: str, error: str
) -> Lines:
    encoded = [_encoded(f, owner) for f in fields]
    out = [f"def {name}({owner}: {kind}) -> Params:", f'    """{doc}"""', "    try:"]
    out += [f"        {line}" for line, _ in encoded if line is not None]
    out += [
        "    except (TypeError, ValueError, OverflowError) as exc:",
        f'        raise StoreError(f"{error}: {{exc}}") from exc',
        "    return (",
    ]
    out += [f"        {value}," for _, value in encoded]
    if owner == "op":
        out.append("        op.seq,")
    out.append("    )")
    return out


def _row_params() -> Lines:
    return _params(
        "row_params", "row", "TaskRow", STORED,
        "The ``INSERT`` parameters of a row, in ``schema.COLUMNS`` order.",
        "cannot encode task {row.tenant}/{row.id}",
    )  # fmt: skip


def _update_params() -> Lines:
    return _params(
        "update_params", "op", "UpdateTask", MUTABLE,
        "The ``UPDATE`` parameters of an op, in ``schema.UPDATE`` order.",
        "cannot encode the error of task seq={op.seq}",
    )  # fmt: skip


_READ_NAME = {"id": "task_id", "options": "options_blob", "labels": "labels_text"}


def _read_name(f: TaskField) -> str:
    return _READ_NAME.get(f.name, f.name)


def _decode_unpack() -> Lines:
    return ["(", *[f"    {_read_name(f)}," for f in STORED], ") = row"]


def _number_test(f: TaskField) -> str:
    kind = (f.number or "").rstrip("?")
    test = f"type({f.name}) is {kind}"
    return f"({f.name} is None or {test})" if (f.number or "").endswith("?") else test


def _decode_check() -> Lines:
    tests = [_number_test(f) for f in STORED if f.number]
    return [
        "if not (  # SQLite keeps what it cannot convert ('x' in an INTEGER column) as it is",
        *[f"    {'and ' if i else ''}{test}" for i, test in enumerate(tests)],
        "):",
        "    raise TypeError(_mistyped(row))",
    ]


def _decoded(f: TaskField) -> str:
    name = _read_name(f)
    if f.column == "state":
        return f"_STATES[{name}]"
    if f.column == "options":
        return "options"
    if f.column == "labels":
        return "labels"
    if f.column == "json":
        return f"None if {name} is None else _json_loads({name})"
    if f.column == "msgpack":
        return f"None if {name} is None else _unpackb({name})"
    if f.column == "bool":
        return f"bool({name})"
    return name


def _decode_build() -> Lines:
    return ["return TaskRow(", *[f"    {_decoded(f)}," for f in STORED], ")"]


def _mistyped() -> Lines:
    out = ["columns = ("]
    for index, f in enumerate(STORED):
        if f.number:
            kind = f.number.rstrip("?")
            optional = f.number.endswith("?")
            out.append(f'    ("{f.name}", {index}, {kind}, {optional}),')
    out.append(")")
    return out


def _views() -> Lines:
    out = [
        "def update_of(task: LiveTask) -> UpdateTask:",
        '    """The op that writes every mutable column of ``task`` as it is now."""',
        "    return UpdateTask(",
        "        task.seq,",
        *[f"        task.{f.name}," for f in MUTABLE],
        "    )",
        "",
        "",
        "def row_of(task: LiveTask) -> TaskRow:",
        "    return TaskRow(",
        *[f"        task.{f.name}," for f in STORED],
        "    )",
        "",
        "",
        "def task_from_row(row: TaskRow) -> LiveTask:",
        '    """Positional, in ``LiveTask``\'s parameter order: recovery makes a million."""',
        "    options = row.options",
        "    return LiveTask(",
    ]
    for f in FIELDS:
        out.append(f"        {f.from_row if f.column is None else f'row.{f.name}'},")
    out += [
        "    )",
        "",
        "",
        "def view_of(task: LiveTask) -> dict[str, Any]:",
        "    return {",
        *[f'        "{key}": {expression},' for key, expression in VIEW],
        "    }",
    ]
    return out


BLOCKS: dict[str, tuple[str, Callable[[], Lines]]] = {
    "LiveTask": ("asynctask/model.py", _live_task),
    "TaskRow": ("asynctask/store/rows.py", _task_row),
    "UpdateTask": ("asynctask/store/rows.py", _update_task),
    "columns": ("asynctask/store/schema.py", _columns),
    "row_params": ("asynctask/store/codec.py", _row_params),
    "update_params": ("asynctask/store/codec.py", _update_params),
    "decode_unpack": ("asynctask/store/codec.py", _decode_unpack),
    "decode_check": ("asynctask/store/codec.py", _decode_check),
    "decode_build": ("asynctask/store/codec.py", _decode_build),
    "mistyped": ("asynctask/store/codec.py", _mistyped),
    "mappings": ("asynctask/daemon/views.py", _views),
}

_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)# <generated taskfields:(?P<name>\w+)>\n.*?"
    r"^(?P=indent)# </generated taskfields:(?P=name)>\n",
    re.MULTILINE | re.DOTALL,
)


def _render(text: str, path: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name, indent = match["name"], match["indent"]
        owner, make = BLOCKS[name]
        if owner != path:
            raise SystemExit(f"{path}: block {name} belongs in {owner}")
        body = "".join(f"{indent}{line}\n" if line else "\n" for line in make())
        return (
            f"{indent}# <generated taskfields:{name}>\n{body}"
            f"{indent}# </generated taskfields:{name}>\n"
        )

    rendered, count = _BLOCK.subn(replace, text)
    wanted = sum(1 for owner, _ in BLOCKS.values() if owner == path)
    if count != wanted:
        raise SystemExit(f"{path}: {count} generated block(s), expected {wanted}")
    return rendered


def _formatted(text: str, path: str) -> str:
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run(
        [str(ruff), "format", "--stdin-filename", path, "-"],
        input=text, capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return done.stdout


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path in sorted({owner for owner, _ in BLOCKS.values()}):
        current = (ROOT / path).read_text()
        wanted = _formatted(_render(current, path), path)
        if wanted != current:
            stale.append(path)
            if not check:
                (ROOT / path).write_text(wanted)
    if check and stale:
        print(
            "stale task field code (run python scripts/taskfields.py): " + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    if not check and stale:
        print("regenerated: " + ", ".join(stale))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
