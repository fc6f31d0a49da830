"""The SQLite schema, its migrations, and the connection settings.

Schema versions are positions in ``MIGRATIONS``: version N is the database after the first N
steps. ``migrate`` runs on every open and applies the missing steps, each in its own
transaction together with the new ``meta.schema_version``, so a crash mid-migration leaves the
database at the previous version, never between two. A database newer than this code is
refused rather than guessed at. A step is a tuple of single statements, not a script, because
``sqlite3``'s ``executescript`` commits before it runs and would break that atomicity.

Indexes follow the queries. Every index costs each insert a B-tree update, so there is one per
access path and no more:

* ``tasks_tenant_id`` (UNIQUE): ``get`` and the (tenant, id) de-duplication safety net; with a
  tenant it also serves ``id_prefix`` ranges.
* ``tasks_created_at``, ``tasks_state_created``, ``tasks_tenant_state_created``,
  ``tasks_tenant_queue_created``, ``tasks_function_created``, ``tasks_tenant_function_created``:
  history pages newest first (``ORDER BY created_at DESC, seq DESC``) filtered by nothing,
  state, tenant (and state), tenant and queue, function, tenant and function. Each ends with
  ``created_at`` and the implicit rowid (``seq``), so a walk yields page order, ``since``,
  ``until`` and the cursor bound it, and it stops at ``LIMIT`` without sorting; ``plan.py``
  picks one per query. ``tasks_created_at`` also finds the oldest finished tasks (retention).
* ``tasks_live`` (partial): start-up recovery reads only the live tasks, which are few next to
  the history, in ``seq`` order, without touching finished rows.
"""

from __future__ import annotations

from typing import Final, Literal

from asynctask.model import FINAL_STATES, LIVE_STATES, TaskState

Durability = Literal["full", "normal"]

#: ``synchronous`` per durability: FULL syncs the WAL at every commit (power loss loses
#: nothing acknowledged); NORMAL syncs at checkpoints only (a power loss may lose the last
#: commits; a process crash still loses nothing).
SYNCHRONOUS: Final[dict[str, str]] = {"full": "FULL", "normal": "NORMAL"}

#: How long a connection waits for another's lock before SQLITE_BUSY. Only our two connections
#: use the file, and readers never block the writer in WAL mode, so this covers checkpoints
#: and an operator's ``sqlite3`` shell holding a lock for a moment.
BUSY_TIMEOUT_MS: Final = 5_000

# <generated taskfields:columns>
#: The columns of ``tasks`` in ``TaskRow`` field order; reads and inserts use this order.
COLUMNS: Final = (
    "seq",
    "tenant",
    "id",
    "function",
    "queue",
    "priority",
    "state",
    "payload",
    "options",
    "labels",
    "created_at",
    "due_at",
    "attempts",
    "started_at",
    "finished_at",
    "result",
    "error",
    "errors",
    "held",
    "trace_id",
    "trace",
)
#: The columns an ``UpdateTask`` writes, in its parameter order (``seq`` last).
_UPDATE_COLUMNS: Final = (
    "state",
    "due_at",
    "attempts",
    "started_at",
    "finished_at",
    "result",
    "error",
    "errors",
    "held",
    "trace",
)
# </generated taskfields:columns>


def _state_list(states: frozenset[TaskState]) -> str:
    return ", ".join(f"'{state.value}'" for state in TaskState if state in states)


# scheduled, queued, running in TaskState's order: the partial index and load_live share it
_LIVE_LIST: Final = _state_list(LIVE_STATES)

#: ``state IN (...)`` for the live states, spelled identically in the partial index and the
#: recovery query: SQLite uses a partial index only when the query's WHERE implies the index's.
LIVE_CONDITION: Final = f"state IN ({_LIVE_LIST})"

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the tasks table and its indexes.
    (
        """
        CREATE TABLE tasks (
            seq INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            function TEXT NOT NULL,
            queue TEXT NOT NULL,
            priority INTEGER NOT NULL,
            state TEXT NOT NULL,
            payload BLOB NOT NULL,
            options BLOB NOT NULL,
            labels TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            result BLOB,
            error TEXT,
            created_at REAL NOT NULL,
            due_at REAL,
            started_at REAL,
            finished_at REAL
        )
        """,
        "CREATE UNIQUE INDEX tasks_tenant_id ON tasks (tenant, id)",
        "CREATE INDEX tasks_state_seq ON tasks (state, seq)",
        "CREATE INDEX tasks_tenant_seq ON tasks (tenant, seq)",
        "CREATE INDEX tasks_tenant_queue_seq ON tasks (tenant, queue, seq)",
        "CREATE INDEX tasks_function_seq ON tasks (function, seq)",
        "CREATE INDEX tasks_created_at ON tasks (created_at)",
        f"CREATE INDEX tasks_live ON tasks (seq) WHERE {LIVE_CONDITION}",
    ),
    # 2: pauses of tenants, queues and functions, which outlive a restart.
    (
        "CREATE TABLE pauses (kind TEXT NOT NULL, tenant TEXT NOT NULL, name TEXT NOT NULL, "
        "PRIMARY KEY (kind, tenant, name)) WITHOUT ROWID",
    ),
    # 3: cron entries (their definition is the daemon's msgpack map).
    (
        "CREATE TABLE crons (tenant TEXT NOT NULL, name TEXT NOT NULL, definition BLOB NOT NULL, "
        "PRIMARY KEY (tenant, name)) WITHOUT ROWID",
    ),
    # 4: each failed attempt's error (JSON list; NULL until one fails), and the per-task hold
    # of ``pause`` by selector. ADD COLUMN with a constant default rewrites no row.
    (
        "ALTER TABLE tasks ADD COLUMN errors TEXT",
        "ALTER TABLE tasks ADD COLUMN held INTEGER NOT NULL DEFAULT 0",
    ),
    # 5: tracing: the client's ``trace_id`` (a partial index, so a task without one costs no
    # index entry) and each attempt's stage times (msgpack, not JSON: it is written at every
    # finish, and packing floats costs a tenth of printing them; NULL until an attempt ends).
    (
        "ALTER TABLE tasks ADD COLUMN trace_id TEXT",
        "ALTER TABLE tasks ADD COLUMN trace BLOB",
        "CREATE INDEX tasks_trace_id ON tasks (trace_id, seq) WHERE trace_id IS NOT NULL",
    ),
    # 6: history pages ordered by (created_at, seq), so that since/until and the page cursor
    # are ranges of the walked index (store/plan.py); a tenant's function and state get an
    # index of their own. Built from the table in this step's transaction: seconds for a
    # million rows, once.
    (
        "DROP INDEX tasks_state_seq",
        "DROP INDEX tasks_tenant_seq",
        "DROP INDEX tasks_tenant_queue_seq",
        "DROP INDEX tasks_function_seq",
        "CREATE INDEX tasks_state_created ON tasks (state, created_at)",
        "CREATE INDEX tasks_tenant_state_created ON tasks (tenant, state, created_at)",
        "CREATE INDEX tasks_tenant_queue_created ON tasks (tenant, queue, created_at)",
        "CREATE INDEX tasks_function_created ON tasks (function, created_at)",
        "CREATE INDEX tasks_tenant_function_created ON tasks (tenant, function, created_at)",
    ),
    # 7: labels as rows, so that ``list --label`` walks the tasks carrying a label newest first
    # instead of reading every task (store/plan.py). Triggers keep it in step with ``tasks``
    # in the same statement: labels never change after insert, and a task without labels
    # (stored as '{}') costs only the trigger's WHEN test.
    (
        "CREATE TABLE task_labels (key TEXT NOT NULL, value TEXT NOT NULL, "
        "created_at REAL NOT NULL, seq INTEGER NOT NULL, "
        "PRIMARY KEY (key, value, created_at, seq)) WITHOUT ROWID",
        "INSERT INTO task_labels SELECT j.key, j.value, t.created_at, t.seq "
        "FROM tasks AS t, json_each(t.labels) AS j WHERE t.labels != '{}' AND j.type = 'text'",
        "CREATE TRIGGER tasks_labels_insert AFTER INSERT ON tasks WHEN new.labels != '{}' BEGIN "
        "INSERT INTO task_labels SELECT key, value, new.created_at, new.seq "
        "FROM json_each(new.labels) WHERE type = 'text'; END",
        "CREATE TRIGGER tasks_labels_delete AFTER DELETE ON tasks WHEN old.labels != '{}' BEGIN "
        "DELETE FROM task_labels WHERE (key, value, created_at, seq) IN "
        "(SELECT key, value, old.created_at, old.seq FROM json_each(old.labels) "
        "WHERE type = 'text'); END",
    ),
    # 8: the uid each tenant's workers run as in per-tenant uid mode (isolation.py), kept so
    # that a tenant has the same uid after a restart (and owns what it left in /tmp).
    (
        "CREATE TABLE tenant_uids (tenant TEXT PRIMARY KEY, uid INTEGER NOT NULL UNIQUE) "
        "WITHOUT ROWID",
    ),
    # 9: rows start-up could not use, set aside (``Store.quarantine``): out of the live tables,
    # so they affect nothing and do not trip the next start, and kept whole for an operator
    # (``asynctask doctor`` lists them; the row can be put back by hand). ``source`` is the
    # table the row came from, ``key`` its key there as text, ``row`` every column as a JSON
    # object (a blob as {"hex": ...}), ``error`` why it was set aside, ``at`` when (Unix time).
    (
        "CREATE TABLE quarantine (id INTEGER PRIMARY KEY, source TEXT NOT NULL, "
        "key TEXT NOT NULL, row TEXT NOT NULL, error TEXT NOT NULL, at REAL NOT NULL)",
    ),
    # 10: the options each tenant's functions declare in code (``@asynctask.task``), as their
    # workers last reported them (msgpack map; ``daemon/codeoptions.py``), so that by-name
    # submits get them after a restart too.
    (
        "CREATE TABLE code_options (tenant TEXT NOT NULL, function TEXT NOT NULL, "
        "options BLOB NOT NULL, PRIMARY KEY (tenant, function)) WITHOUT ROWID",
    ),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)

CREATE_META: Final = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID"
READ_VERSION: Final = "SELECT value FROM meta WHERE key = 'schema_version'"
WRITE_VERSION: Final = (
    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

_SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM tasks"

INSERT: Final = (
    f"INSERT INTO tasks ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
)
UPDATE: Final = (
    f"UPDATE tasks SET {', '.join(f'{column} = ?' for column in _UPDATE_COLUMNS)} WHERE seq = ?"
)


def insert_rows(count: int) -> str:
    """One ``INSERT`` of ``count`` rows: a batch binds and steps once, not once per row."""
    row = f"({', '.join('?' for _ in COLUMNS)})"
    return f"INSERT INTO tasks ({', '.join(COLUMNS)}) VALUES {', '.join([row] * count)}"


def update_rows(count: int) -> str:
    """One ``UPDATE ... FROM (VALUES ...)`` of ``count`` rows with distinct seqs, parameters in
    ``UPDATE`` order per row. SQLite steps it once; the join probes ``tasks`` by rowid."""
    row = f"({', '.join('?' for _ in range(len(_UPDATE_COLUMNS) + 1))})"
    names = ", ".join((*_UPDATE_COLUMNS, "seq"))
    sets = ", ".join(f"{column} = v.{column}" for column in _UPDATE_COLUMNS)
    return (
        f"WITH v({names}) AS (VALUES {', '.join([row] * count)}) "
        f"UPDATE tasks SET {sets} FROM v WHERE tasks.seq = v.seq"
    )


DELETE: Final = "DELETE FROM tasks WHERE seq = ?"
SET_PAUSE: Final = "INSERT OR IGNORE INTO pauses (kind, tenant, name) VALUES (?, ?, ?)"
CLEAR_PAUSE: Final = "DELETE FROM pauses WHERE kind = ? AND tenant = ? AND name = ?"
#: Retention: the oldest finished tasks first. One walk per final state along
#: ``tasks_state_created``, merged: a pass reads its batch, never the live tasks (a paused
#: backlog of old queued tasks would otherwise be read again by every pass).
SELECT_OLD_FINISHED: Final = (
    "SELECT seq, tenant, id, attempts FROM ("
    + " UNION ALL ".join(
        "SELECT * FROM (SELECT seq, tenant, id, attempts, created_at FROM tasks "
        f"INDEXED BY tasks_state_created WHERE state = '{state.value}' "
        "AND created_at < :before ORDER BY created_at, seq LIMIT :limit)"
        for state in TaskState
        if state in FINAL_STATES
    )
    + ") ORDER BY created_at, seq LIMIT :limit"
)
#: The distinct tenants, smallest first, up to ``?``: a skip scan of ``tasks_tenant_id`` (each
#: step one descent to the next tenant), so its cost grows with the tenants, not the tasks.
SELECT_TENANTS: Final = (
    "WITH RECURSIVE t(tenant) AS (SELECT min(tenant) FROM tasks UNION ALL "
    "SELECT (SELECT min(tenant) FROM tasks WHERE tenant > t.tenant) FROM t "
    "WHERE t.tenant IS NOT NULL) SELECT tenant FROM t WHERE tenant IS NOT NULL LIMIT ?"
)
#: How many finished tasks there are (the ``history_max`` cap): a count of index entries.
COUNT_FINISHED: Final = (
    "SELECT count(*) FROM tasks INDEXED BY tasks_state_created "
    f"WHERE state IN ({_state_list(FINAL_STATES)})"
)
#: History retention's per-tenant count cap: each tenant's finished tasks. One pass over the
#: covering index ``tasks_tenant_state_created``, already grouped by tenant (no sort).
COUNT_FINISHED_BY_TENANT: Final = (
    "SELECT tenant, count(*) FROM tasks INDEXED BY tasks_tenant_state_created "
    f"WHERE state IN ({_state_list(FINAL_STATES)}) GROUP BY tenant"
)
#: ``SELECT_OLD_FINISHED`` for one tenant (``:tenant``), on ``tasks_tenant_state_created``.
SELECT_TENANT_OLD_FINISHED: Final = (
    "SELECT seq, tenant, id, attempts FROM ("
    + " UNION ALL ".join(
        "SELECT * FROM (SELECT seq, tenant, id, attempts, created_at FROM tasks "
        f"INDEXED BY tasks_tenant_state_created WHERE tenant = :tenant "
        f"AND state = '{state.value}' AND created_at < :before ORDER BY created_at, seq "
        "LIMIT :limit)"
        for state in TaskState
        if state in FINAL_STATES
    )
    + ") ORDER BY created_at, seq LIMIT :limit"
)
PUT_CRON: Final = "INSERT OR REPLACE INTO crons (tenant, name, definition) VALUES (?, ?, ?)"
DELETE_CRON: Final = "DELETE FROM crons WHERE tenant = ? AND name = ?"
PUT_CODE: Final = "INSERT OR REPLACE INTO code_options (tenant, function, options) VALUES (?, ?, ?)"
DELETE_CODE: Final = "DELETE FROM code_options WHERE tenant = ? AND function = ?"
SELECT_CODE: Final = "SELECT tenant, function, options FROM code_options"
SELECT_CRONS: Final = "SELECT tenant, name, definition FROM crons ORDER BY tenant, name"
SELECT_PAUSES: Final = "SELECT kind, tenant, name FROM pauses ORDER BY kind, tenant, name"
#: Where each table that start-up loads finds one row by the key ``Quarantine.key`` holds.
QUARANTINE_KEYS: Final[dict[str, str]] = {
    "tasks": "seq = ?",
    "crons": "tenant = CAST(? AS TEXT) AND name = CAST(? AS TEXT)",
    "pauses": "kind = CAST(? AS TEXT) AND tenant = CAST(? AS TEXT) AND name = CAST(? AS TEXT)",
    "tenant_uids": "tenant = CAST(? AS TEXT)",
}
#: Before a task row is set aside: labels its delete trigger cannot parse (the trigger would
#: fail the delete) become none, and the label rows it may have left are dropped instead.
#: A scan of ``task_labels``, but only for such a row, and only at start-up.
CLEAR_BAD_LABELS: Final = "UPDATE tasks SET labels = '{}' WHERE seq = ? AND NOT json_valid(labels)"
DELETE_LABELS_OF: Final = "DELETE FROM task_labels WHERE seq = ?"
INSERT_QUARANTINE: Final = (
    "INSERT INTO quarantine (source, key, row, error, at) VALUES (?, ?, ?, ?, ?)"
)
SELECT_QUARANTINE: Final = "SELECT id, source, key, error, at, row FROM quarantine ORDER BY id"
ASSIGN_UID: Final = "INSERT INTO tenant_uids (tenant, uid) VALUES (?, ?)"
TOUCH: Final = "INSERT OR REPLACE INTO meta (key, value) VALUES ('touched_at', ?)"
SELECT_TENANT_UIDS: Final = "SELECT tenant, uid FROM tenant_uids ORDER BY uid"

#: ``INDEXED BY``: without ``ANALYZE`` statistics SQLite prefers a state index and then
#: sorts a million rows in a temporary B-tree (measured 5.2 s against 1.8 s for 1M live rows);
#: the partial index yields exactly the live rows already in ``seq`` order.
SELECT_LIVE: Final = f"{_SELECT} INDEXED BY tasks_live WHERE {LIVE_CONDITION} ORDER BY seq"
SELECT_LIVE_AFTER: Final = (
    f"{_SELECT} INDEXED BY tasks_live WHERE {LIVE_CONDITION} AND seq > ? ORDER BY seq"
)
SELECT_BY_KEY: Final = f"{_SELECT} WHERE tenant = ? AND id = ?"
SELECT_BY_SEQ: Final = f"{_SELECT} WHERE seq = ?"
#: ``SELECT_BY_SEQS.format(marks)``: the rows of a list of seqs (``marks``: one ``?`` each).
SELECT_BY_SEQS: Final = f"{_SELECT} WHERE seq IN ({{}}) ORDER BY seq"
#: The most seqs one ``SELECT_BY_SEQS`` names (SQLite allows 32,766 parameters).
SEQS_PER_SELECT: Final = 500
SELECT_MAX_SEQ: Final = "SELECT coalesce(max(seq), 0) FROM tasks"


def connection_pragmas(durability: Durability) -> tuple[str, ...]:
    """Settings every connection gets; ``journal_mode`` is separate (it answers, and persists).

    ``foreign_keys`` stays off: there are none, and the check would cost every write.
    ``wal_autocheckpoint`` keeps SQLite's default (1,000 pages), which bounds the WAL without
    stalling commits; ``temp_store`` keeps sorts of large history pages off the disk.
    """
    return (
        f"PRAGMA synchronous = {SYNCHRONOUS[durability]}",
        f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
        "PRAGMA foreign_keys = OFF",
        "PRAGMA temp_store = MEMORY",
    )
