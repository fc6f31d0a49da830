"""The PostgreSQL schema, its migrations, and every statement of the PostgreSQL store.

Columns come from ``asynctask.taskfields`` at import time: ``COLUMNS`` is ``STORED``'s names
and ``UPDATE_COLUMNS`` ``MUTABLE``'s, and each column's SQL type follows from its field
(``sql_type``), so a new field needs no change here beyond its migration (``add_column``). The
parameters are the SQLite store's own (``codec.row_params`` and ``codec.update_params``, also
generated from the table): options and trace as msgpack ``bytea``, labels as ``jsonb`` (so a
label filter is an indexed containment test, ``labels @> '{"k": "v"}'``), state as ``text``.

``error`` and ``errors`` are ``json``, not ``jsonb``: an error message may hold a lone surrogate
(output decoded with ``surrogateescape``) or a NUL, which ``jsonb`` refuses ("Unicode low
surrogate must follow a high surrogate") while ``json`` keeps the ASCII-escaped text exactly, as
SQLite does. Nothing filters on them.

Text key columns are ``COLLATE "C"``: comparisons and orders are then by code point whatever
the database's locale, which is what the ID-prefix range (``query.prefix_successor``) and the
sorted reads (pauses, crons) assume - and a "C" b-tree serves that range.

Migrations are positions in ``MIGRATIONS`` as in ``schema.py``: version N is the database after
the first N steps, each step commits with its ``meta.schema_version`` and a newer database is
refused. They run under ``pg_advisory_lock`` (``MIGRATION_LOCK``), so daemons starting
together migrate once: the second waits, then finds the version current.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from asynctask.model import FINAL_STATES, LIVE_STATES, TaskState
from asynctask.store import schema as sqlite_schema
from asynctask.store.pglogs import LOGS_MIGRATION
from asynctask.taskfields import MUTABLE, STORED, TaskField

COLUMNS: Final = tuple(f.name for f in STORED)
UPDATE_COLUMNS: Final = tuple(f.name for f in MUTABLE if f.column is not None)

# The parameters come from the SQLite codec, generated from the same table: same order.
assert COLUMNS == sqlite_schema.COLUMNS, "regenerate: python scripts/taskfields.py"

_BY_KIND: Final = {
    "state": "text",
    "options": "bytea",
    "labels": "jsonb",
    "json": "json",
    "msgpack": "bytea",
    "bool": "boolean",
}
_BY_TYPE: Final = {
    "int": "bigint",
    "float": "double precision",
    "str": 'text COLLATE "C"',
    "bytes": "bytea",
}


def sql_type(f: TaskField) -> str:
    """The column type of a stored field, from how it is stored and its Python type."""
    assert f.column is not None
    if f.column != "plain":
        return _BY_KIND[f.column]
    base = f.type.removesuffix(" | None")
    return _BY_TYPE[base]


def _bare_type(f: TaskField) -> str:
    """The type without its collation, for array casts (``$1::text[]``)."""
    return sql_type(f).split(" COLLATE ")[0]


def column_ddl(f: TaskField) -> str:
    """A column's definition: NOT NULL unless its field may be ``None``."""
    nullable = f.type.endswith("| None")
    default = ""
    if f.default is not None and f.default != "None":
        default = f" DEFAULT {'false' if f.default == 'False' else f.default}"
    return f"{f.name} {sql_type(f)}{'' if nullable else ' NOT NULL'}{default}"


def add_column(name: str) -> str:
    """The migration statement of a field added to ``taskfields`` after version 1."""
    (f,) = (f for f in STORED if f.name == name)
    return f"ALTER TABLE tasks ADD COLUMN {column_ddl(f)}"


def _state_list(states: frozenset[TaskState]) -> str:
    return ", ".join(f"'{state.value}'" for state in TaskState if state in states)


LIVE_CONDITION: Final = f"state IN ({_state_list(LIVE_STATES)})"
FINAL_CONDITION: Final = f"state IN ({_state_list(FINAL_STATES)})"

#: The fields of version 1 (every field of the table when this store was written); a field
#: added later gets its own step, ``(add_column("name"),)``.
_V1_FIELDS: Final = (
    "seq", "tenant", "id", "function", "queue", "priority", "state", "payload", "options",
    "labels", "created_at", "due_at", "attempts", "started_at", "finished_at", "result",
    "error", "errors", "held", "trace_id", "trace",
)  # fmt: skip


def _v1_table() -> str:
    by_name = {f.name: f for f in STORED}
    columns = [column_ddl(by_name[name]) for name in _V1_FIELDS if name in by_name]
    return f"CREATE TABLE tasks ({', '.join(columns)}, PRIMARY KEY (seq))"


MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: every table, and one index per access path (``schema.py`` explains each; the history
    # ones end with (created_at, seq) for pages newest first). PostgreSQL's planner picks among
    # them with its statistics, so there is no ``plan.py`` here.
    (
        _v1_table(),
        "CREATE UNIQUE INDEX tasks_tenant_id ON tasks (tenant, id)",
        "CREATE INDEX tasks_created_at ON tasks (created_at, seq)",
        "CREATE INDEX tasks_state_created ON tasks (state, created_at, seq)",
        "CREATE INDEX tasks_tenant_state_created ON tasks (tenant, state, created_at, seq)",
        "CREATE INDEX tasks_tenant_queue_created ON tasks (tenant, queue, created_at, seq)",
        "CREATE INDEX tasks_function_created ON tasks (function, created_at, seq)",
        "CREATE INDEX tasks_tenant_function_created ON tasks (tenant, function, created_at, seq)",
        f"CREATE INDEX tasks_live ON tasks (seq) WHERE {LIVE_CONDITION}",
        "CREATE INDEX tasks_trace_id ON tasks (trace_id, seq) WHERE trace_id IS NOT NULL",
        "CREATE INDEX tasks_labels ON tasks USING gin (labels jsonb_path_ops) "
        "WHERE labels <> '{}'::jsonb",
        'CREATE TABLE pauses (kind text COLLATE "C" NOT NULL, tenant text COLLATE "C" NOT NULL, '
        'name text COLLATE "C" NOT NULL, PRIMARY KEY (kind, tenant, name))',
        'CREATE TABLE crons (tenant text COLLATE "C" NOT NULL, name text COLLATE "C" NOT NULL, '
        "definition bytea NOT NULL, PRIMARY KEY (tenant, name))",
        'CREATE TABLE tenant_uids (tenant text COLLATE "C" PRIMARY KEY, '
        "uid bigint NOT NULL UNIQUE)",
        "CREATE TABLE quarantine (id bigserial PRIMARY KEY, source text NOT NULL, "
        "key text NOT NULL, row text NOT NULL, error text NOT NULL, at double precision NOT NULL)",
    ),
    # 2: the lease table and the heartbeats of scale-out (docs/scale-out.md; ``pgleases.py``
    # has the statements and says why the times are the writer's clock, in epoch seconds).
    # ``partitions`` has no row per partition up front: the count is configuration, and a
    # missing row reads as free at epoch 0 (``core.leases.FREE``); the first take inserts it.
    # ``expires_at`` of a free row is kept (a release leaves it), and '-Infinity' is a row
    # never held. No handover columns: a drain is the holder's own state
    # (``Holdings.draining``); the table sees only its release. ``nodes`` keeps, beside the
    # heartbeat the planner reads, what ``asynctask nodes`` shows: pid, host, start time and
    # running attempts, written by each heartbeat.
    (
        "CREATE TABLE partitions (partition integer PRIMARY KEY CHECK (partition >= 0), "
        'owner text COLLATE "C", epoch bigint NOT NULL CHECK (epoch >= 0), '
        "expires_at double precision NOT NULL)",
        'CREATE TABLE nodes (node text COLLATE "C" PRIMARY KEY, '
        "heartbeat_at double precision NOT NULL, pid integer, host text, "
        "started_at double precision, running integer NOT NULL DEFAULT 0)",
    ),
    # 3: daemons sharing the database (docs/scale-out.md, "Several daemons"). ``inbox``: a
    # task stored by a daemon that does not hold its partition, for the owner to take in
    # (``pgcluster.py``); a row lives from that submit's commit to the owner's next read.
    # ``task_seq_blocks``: each daemon draws blocks of ``SEQ_BLOCK`` task numbers from it, so
    # daemons never hand out one seq twice. ``tasks_live_tenant``: a partition's live tasks
    # are those of its tenants, found without reading every live row.
    (
        "CREATE TABLE inbox (seq bigint PRIMARY KEY, partition integer NOT NULL)",
        "CREATE INDEX inbox_partition ON inbox (partition)",
        "CREATE SEQUENCE task_seq_blocks START 1",
        f"CREATE INDEX tasks_live_tenant ON tasks (tenant) WHERE {LIVE_CONDITION}",
    ),
    # 4: ended attempts' logs, readable by every daemon (``pglogs.py``).
    LOGS_MIGRATION,
    # 5: the options each tenant's functions declare in code (SQLite's migration 10).
    (
        'CREATE TABLE code_options (tenant text COLLATE "C" NOT NULL, '
        'function text COLLATE "C" NOT NULL, options bytea NOT NULL, '
        "PRIMARY KEY (tenant, function))",
    ),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)

#: The advisory lock migrations hold: one per schema, so deployments in separate schemas of
#: one database do not wait for each other.
MIGRATION_LOCK: Final = (
    "SELECT pg_advisory_lock(hashtextextended('asynctask.migrate.' || current_schema(), 0))"
)
MIGRATION_UNLOCK: Final = (
    "SELECT pg_advisory_unlock(hashtextextended('asynctask.migrate.' || current_schema(), 0))"
)
#: The lock of a schema's writers (``PostgresStore.open(lock=...)``): every daemon's write
#: connection holds it shared for the daemon's life (daemons share the schema by leased
#: partitions, docs/scale-out.md); ``migrate-store`` holds it exclusive while it copies, so a
#: copy never runs beside a daemon, which would not take in the tasks it writes. A session
#: lock: the server drops it with the connection, and a daemon whose write connection broke
#: stops (``pgwriter``), so it never outlives its holder.
SOLE_DAEMON_KEY: Final = (
    "hashtextextended('asynctask.daemon.' || coalesce(current_schema(), ''), 0)"
)
SOLE_DAEMON_LOCK: Final = f"SELECT pg_try_advisory_lock({SOLE_DAEMON_KEY})"
SHARED_DAEMON_LOCK: Final = f"SELECT pg_try_advisory_lock_shared({SOLE_DAEMON_KEY})"
#: Who holds it: the backend's pid, its client's application name and address, and since when.
SOLE_DAEMON_HOLDER: Final = (
    "SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'local socket'), "
    "a.backend_start::text FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    f"WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND "
    f"((l.classid::bigint << 32) | l.objid::bigint) = {SOLE_DAEMON_KEY} LIMIT 1"
)
CREATE_META: Final = "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)"
READ_VERSION: Final = "SELECT value FROM meta WHERE key = 'schema_version'"
WRITE_VERSION: Final = (
    "INSERT INTO meta (key, value) VALUES ('schema_version', $1) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
#: The columns of ``tasks`` as the database has them (checked against ``COLUMNS`` at open).
TABLE_COLUMNS: Final = (
    "SELECT column_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = 'tasks'"
)

_SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM tasks"
_BY_NAME: Final = {f.name: f for f in STORED}

#: One statement for a run of inserts: each column's values as one array parameter.
INSERT_UNNEST: Final = (
    f"INSERT INTO tasks ({', '.join(COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{_bare_type(_BY_NAME[c])}[]" for i, c in enumerate(COLUMNS, 1))
    + ")"
)
#: ``INSERT_UNNEST`` that skips a row whose seq or (tenant, id) is taken, and says which it
#: stored: daemons sharing a database may store one new ID at the same moment (``pgwriter``).
INSERT_UNNEST_NEW: Final = f"{INSERT_UNNEST} ON CONFLICT DO NOTHING RETURNING seq"
#: One statement for a run of updates (distinct seqs), the same way.
UPDATE_UNNEST: Final = (
    "UPDATE tasks SET "
    + ", ".join(f"{c} = v.{c}" for c in UPDATE_COLUMNS)
    + " FROM unnest("
    + ", ".join(
        f"${i}::{_bare_type(_BY_NAME[c])}[]" for i, c in enumerate((*UPDATE_COLUMNS, "seq"), 1)
    )
    + f") AS v({', '.join((*UPDATE_COLUMNS, 'seq'))}) WHERE tasks.seq = v.seq"
)
DELETE_MANY: Final = "DELETE FROM tasks WHERE seq = ANY($1::bigint[])"
SET_PAUSE: Final = (
    "INSERT INTO pauses (kind, tenant, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
)
CLEAR_PAUSE: Final = "DELETE FROM pauses WHERE kind = $1 AND tenant = $2 AND name = $3"
PUT_CRON: Final = (
    "INSERT INTO crons (tenant, name, definition) VALUES ($1, $2, $3) "
    "ON CONFLICT (tenant, name) DO UPDATE SET definition = excluded.definition"
)
DELETE_CRON: Final = "DELETE FROM crons WHERE tenant = $1 AND name = $2"
PUT_CODE: Final = (
    "INSERT INTO code_options (tenant, function, options) VALUES ($1, $2, $3) "
    "ON CONFLICT (tenant, function) DO UPDATE SET options = excluded.options"
)
DELETE_CODE: Final = "DELETE FROM code_options WHERE tenant = $1 AND function = $2"
ASSIGN_UID: Final = "INSERT INTO tenant_uids (tenant, uid) VALUES ($1, $2)"
TOUCH: Final = (
    "INSERT INTO meta (key, value) VALUES ('touched_at', $1) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def columns_of(rows: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Row tuples as one list per column: the arrays ``INSERT_UNNEST`` binds."""
    return tuple(list(column) for column in zip(*rows, strict=True))


def update_columns_of(rows: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """``codec.update_params`` tuples (seq last) as the arrays ``UPDATE_UNNEST`` binds."""
    return columns_of(rows)


SELECT_LIVE: Final = f"{_SELECT} WHERE {LIVE_CONDITION} ORDER BY seq"
SELECT_LIVE_AFTER: Final = f"{_SELECT} WHERE {LIVE_CONDITION} AND seq > $1 ORDER BY seq LIMIT $2"
SELECT_BY_KEY: Final = f"{_SELECT} WHERE tenant = $1 AND id = $2"
SELECT_BY_SEQ: Final = f"{_SELECT} WHERE seq = $1"
SELECT_BY_SEQS: Final = f"{_SELECT} WHERE seq = ANY($1::bigint[]) ORDER BY seq"
SELECT_MAX_SEQ: Final = "SELECT coalesce(max(seq), 0) FROM tasks"
SELECT_PAUSES: Final = "SELECT kind, tenant, name FROM pauses ORDER BY kind, tenant, name"
SELECT_CODE: Final = "SELECT tenant, function, options FROM code_options"
SELECT_CRONS: Final = "SELECT tenant, name, definition FROM crons ORDER BY tenant, name"
SELECT_TENANT_UIDS: Final = "SELECT tenant, uid FROM tenant_uids ORDER BY uid"
SELECT_OLD_FINISHED: Final = (
    f"SELECT seq, tenant, id, attempts FROM tasks WHERE {FINAL_CONDITION} "
    "AND created_at < $1 ORDER BY created_at, seq LIMIT $2"
)
SELECT_TENANT_OLD_FINISHED: Final = (
    f"SELECT seq, tenant, id, attempts FROM tasks WHERE tenant = $3 AND {FINAL_CONDITION} "
    "AND created_at < $1 ORDER BY created_at, seq LIMIT $2"
)
COUNT_FINISHED: Final = f"SELECT count(*) FROM tasks WHERE {FINAL_CONDITION}"
COUNT_FINISHED_BY_TENANT: Final = (
    f"SELECT tenant, count(*) FROM tasks WHERE {FINAL_CONDITION} GROUP BY tenant"
)


# -- several daemons (``pgcluster.py``) -----------------------------------------------------

#: Task numbers per block a daemon draws (``pgcluster.PgCluster.seq_block``).
SEQ_BLOCK: Final = 1 << 16
NEXT_SEQ_BLOCK: Final = "SELECT nextval('task_seq_blocks')"
#: Past blocks that numbers already stored (a migrated store, or one a single daemon wrote).
SKIP_SEQ_BLOCKS: Final = "SELECT setval('task_seq_blocks', $1)"
#: ``[store] partitions`` as the first daemon set it: every daemon must map tenants alike.
CLAIM_PARTITIONS: Final = (
    "INSERT INTO meta (key, value) VALUES ('partitions', $1) ON CONFLICT (key) DO NOTHING"
)
READ_PARTITIONS: Final = "SELECT value FROM meta WHERE key = 'partitions'"
INBOX_CHANNEL: Final = "asynctask_inbox"
INSERT_INBOX: Final = (
    "INSERT INTO inbox (seq, partition) SELECT * FROM unnest($1::bigint[], $2::integer[]) "
    "ON CONFLICT (seq) DO NOTHING"
)
NOTIFY_INBOX: Final = f"SELECT pg_notify('{INBOX_CHANNEL}', '')"
TAKE_INBOX: Final = "DELETE FROM inbox WHERE partition = ANY($1::integer[]) RETURNING seq"
CLEAR_INBOX: Final = "DELETE FROM inbox WHERE partition = ANY($1::integer[])"
SELECT_LIVE_TENANTS: Final = f"SELECT DISTINCT tenant FROM tasks WHERE {LIVE_CONDITION}"
SELECT_LIVE_OF_TENANTS: Final = (
    f"{_SELECT} WHERE {LIVE_CONDITION} AND tenant = ANY($1::text[]) ORDER BY seq"
)
SELECT_LIVE_BY_SEQS: Final = (
    f"{_SELECT} WHERE {LIVE_CONDITION} AND seq = ANY($1::bigint[]) ORDER BY seq"
)
SELECT_TENANTS_OF_SEQS: Final = "SELECT seq, tenant FROM tasks WHERE seq = ANY($1::bigint[])"
