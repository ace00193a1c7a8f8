"""How a batch of metric rows reaches ``metrics``: the write paths of ``MetricStore.log_metric_rows``.

PostgreSQL: batches of ``COPY_THRESHOLD`` rows or more go through binary COPY, straight into ``metrics``
when every key only grows past its stored steps, else into a temporary staging table and one
``INSERT .. SELECT .. ORDER BY key ON CONFLICT DO UPDATE``; smaller batches are one multi-row upsert.
The staging table is created (if missing), filled and read inside the write's one transaction, and
emptied at its commit: no session state is relied on, so this works behind PgBouncer's transaction
pooling.
SQLite: executemany. Each path answers the keys where a stored row was replaced, for ``metric_latest``
(:mod:`airflow_mltrack.store.metric_summary`) to recompute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection, String, bindparam, select, text, tuple_, type_coerce
from sqlalchemy.dialects import sqlite

from airflow_mltrack.store.base import utcnow
from airflow_mltrack.store.payloads import KeySummary, MetricRow
from airflow_mltrack.store.tables import metric_latest, metrics

LATEST_CHUNK = 500  # metric keys per metric_latest refresh statement (2 bind parameters each)

COPY_THRESHOLD = 500
# (Its name changed with its columns: a server session behind PgBouncer may still hold the older table.)
_STAGE_DDL = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS mltrack_metric_stage_at "
    "(experiment_id integer, name varchar(100), value double precision, step integer, "
    "evaluation_set varchar(50), recorded_at timestamptz) ON COMMIT DELETE ROWS"
)
_COLUMNS = "(experiment_id, name, value, step, evaluation_set, recorded_at) FROM STDIN (FORMAT BINARY)"
_STAGE_COPY = f"COPY mltrack_metric_stage_at {_COLUMNS}"
_METRICS_COPY = f"COPY metrics {_COLUMNS}"
# Merge the staged rows in key order; answer the keys where a stored row was replaced (xmax <> 0 on the
# row an INSERT .. ON CONFLICT DO UPDATE returns means it updated rather than inserted).
_STAGE_MERGE = (
    "WITH written AS ("
    "INSERT INTO metrics (experiment_id, name, value, step, evaluation_set, recorded_at) "
    "SELECT experiment_id, name, value, step, evaluation_set, recorded_at FROM mltrack_metric_stage_at "
    "ORDER BY experiment_id, name, evaluation_set, step NULLS FIRST "
    "ON CONFLICT ON CONSTRAINT uq_metric_experiment_name_step_evalset "
    "DO UPDATE SET value = EXCLUDED.value, recorded_at = EXCLUDED.recorded_at "
    "RETURNING name, evaluation_set, xmax <> 0 AS replaced) "
    "SELECT name, evaluation_set FROM written GROUP BY name, evaluation_set HAVING bool_or(replaced) "
    "ORDER BY name, evaluation_set"
)
# Small batches on PostgreSQL: the rows travel as arrays, unnested in key order (the order of the batch);
# a row without its own time (``recorded_at``) gets the batch's.
_PG_UPSERT = text(
    "INSERT INTO metrics (experiment_id, name, value, step, evaluation_set, recorded_at) "
    "SELECT :experiment_id, u.name, u.value, u.step, u.evaluation_set, COALESCE(u.recorded_at, :now) "
    "FROM unnest(CAST(:names AS varchar[]), CAST(:values AS float8[]), CAST(:steps AS integer[]), "
    "CAST(:splits AS varchar[]), CAST(:stamps AS timestamptz[])) "
    "WITH ORDINALITY AS u (name, value, step, evaluation_set, recorded_at, i) ORDER BY u.i "
    "ON CONFLICT ON CONSTRAINT uq_metric_experiment_name_step_evalset "
    "DO UPDATE SET value = EXCLUDED.value, recorded_at = EXCLUDED.recorded_at "
    "RETURNING name, evaluation_set, xmax <> 0"
)


def _copy_rows(cur: Any, statement: str, experiment_id: int, batch: Sequence[MetricRow]) -> None:
    now = utcnow()  # the time of a row without its own (``recorded_at``)
    with cur.copy(statement) as copy:
        copy.set_types(["int4", "varchar", "float8", "int4", "varchar", "timestamptz"])
        write = copy.write_row
        for r in batch:
            write((experiment_id, r.name, r.value, r.step, r.evaluation_set, r.recorded_at or now))


def sqlite_value(value: float, nan: str | None) -> float | str | None:
    """A metric value as SQLite stores it: SQLite's REAL has no NaN, so NaN is stored as ``nan`` (NULL, or
    the text 'NaN' where the schema still refuses NULL; see :func:`sqlite_nan`)."""
    return nan if math.isnan(value) else value


def value_param(name: str) -> Any:
    """A bound metric value for SQLite, untyped so NaN can travel as the text 'NaN' (older schema)."""
    return type_coerce(bindparam(name), String())


def sqlite_nan(conn: Connection, summary: Sequence[KeySummary]) -> str | None:
    """How SQLite stores a NaN of this batch: NULL (what sqlite3 and pandas read as missing / NaN) where
    ``metrics.value`` accepts NULL, else the text 'NaN' (a schema from before NULL meant NaN). Asked
    only when the batch holds a NaN (a key's max is NaN then)."""
    if not any(math.isnan(s.max_value) for s in summary):
        return None
    not_null = conn.exec_driver_sql(
        "SELECT \"notnull\" FROM pragma_table_info('metrics') WHERE name = 'value'"
    ).scalar()
    return "NaN" if not_null else None


# -- PostgreSQL ---------------------------------------------------------------------------------------
def pg_upsert(conn: Connection, experiment_id: int, batch: Sequence[MetricRow]) -> list[tuple[str, str]]:
    """One upsert of the whole batch sent as four arrays (a constant statement, so neither SQLAlchemy
    nor psycopg re-parses it per call); returns the keys where a stored row was replaced."""
    result = conn.execute(
        _PG_UPSERT,
        {
            "experiment_id": experiment_id,
            "now": utcnow(),
            "names": [r.name for r in batch],
            "values": [r.value for r in batch],
            "steps": [r.step for r in batch],
            "splits": [r.evaluation_set for r in batch],
            "stamps": [r.recorded_at for r in batch],
        },
    )
    return sorted({(name, split) for name, split, replaced in result if replaced})


def pg_copy(
    conn: Connection,
    experiment_id: int,
    batch: Sequence[MetricRow],
    summary: Sequence[KeySummary],
) -> list[tuple[str, str]]:
    """Binary COPY. Straight into ``metrics`` when ``metric_latest`` shows every key only grows past
    its stored steps (a training loop, a new experiment): no staging, no sort, no conflict handling.
    If a concurrent writer of the same keys makes the unique index refuse, or the batch rewrites
    steps, COPY into a staging table and one ordered ``INSERT .. ON CONFLICT`` instead."""
    dbapi = conn.connection.driver_connection
    if _appends_only(conn, experiment_id, summary):
        # Only a unique violation (a concurrent writer of the same keys) rolls back to the savepoint. Any
        # other error propagates as it is: a ROLLBACK TO SAVEPOINT on a connection that may be gone would
        # fail and hide the real cause; the whole transaction is rolled back anyway.
        savepoint = conn.begin_nested()
        try:
            with dbapi.cursor() as cur:
                _copy_rows(cur, _METRICS_COPY, experiment_id, batch)
        except psycopg.errors.UniqueViolation:
            savepoint.rollback()  # merge instead
        else:
            savepoint.commit()
            return []
    with dbapi.cursor() as cur:
        # In this transaction, every time: behind PgBouncer's transaction pooling the next transaction may
        # run on another server session (whose temporary tables are its own), and a rolled-back first
        # transaction takes its CREATE with it. ON COMMIT DELETE ROWS leaves an empty table behind.
        cur.execute(_STAGE_DDL)
        _copy_rows(cur, _STAGE_COPY, experiment_id, batch)
        cur.execute(_STAGE_MERGE)
        return [(name, split) for name, split in cur.fetchall()]


def _appends_only(conn: Connection, experiment_id: int, summary: Sequence[KeySummary]) -> bool:
    """True if each key of the batch is new, or has steps that all lie past its stored final step."""
    keys = [(s.name, s.evaluation_set) for s in summary]
    stored: dict[tuple[str, str], int | None] = {}
    latest = metric_latest.c
    for start in range(0, len(keys), LATEST_CHUNK):
        query = select(latest.name, latest.evaluation_set, latest.step).where(
            latest.experiment_id == experiment_id,
            tuple_(latest.name, latest.evaluation_set).in_(keys[start : start + LATEST_CHUNK]),
        )
        stored.update({(name, split): step for name, split, step in conn.execute(query)})
    for s in summary:
        key = (s.name, s.evaluation_set)
        if key in stored:
            last = stored[key]
            if last is None or s.first_step is None or s.first_step <= last:
                return False
    return True


# -- SQLite -------------------------------------------------------------------------------------------
def sqlite_write(
    conn: Connection,
    experiment_id: int,
    batch: Sequence[MetricRow],
    summary: Sequence[KeySummary],
) -> list[tuple[str, str]]:
    """Insert the new rows (``ON CONFLICT DO NOTHING``); if any key existed, upsert the whole batch and
    report all its keys as overwritten (SQLite has one writer at a time, so this is exact)."""
    now = utcnow()
    nan = sqlite_nan(conn, summary)
    params = [
        {
            "experiment_id": experiment_id,
            "name": r.name,
            "value": sqlite_value(r.value, nan),
            "step": r.step,
            "evaluation_set": r.evaluation_set,
            "recorded_at": r.recorded_at or now,
        }
        for r in batch
    ]
    if conn.execute(_sqlite_insert().on_conflict_do_nothing(), params).rowcount == len(batch):
        return []
    stepped = [p for p in params if p["step"] is not None]
    stepless = [p for p in params if p["step"] is None]
    for group, elements, where in (
        (stepped, ["experiment_id", "name", "step", "evaluation_set"], None),
        (stepless, ["experiment_id", "name", "evaluation_set"], metrics.c.step.is_(None)),
    ):
        if group:
            stmt = _sqlite_insert()
            stmt = stmt.on_conflict_do_update(
                index_elements=elements,
                index_where=where,
                set_={"value": stmt.excluded.value, "recorded_at": stmt.excluded.recorded_at},
            )
            conn.execute(stmt, group)
    return [(s.name, s.evaluation_set) for s in summary]


def _sqlite_insert() -> Any:
    return sqlite.insert(metrics).values(
        experiment_id=bindparam("experiment_id"),
        name=bindparam("name"),
        value=value_param("value"),
        step=bindparam("step"),
        evaluation_set=bindparam("evaluation_set"),
        recorded_at=bindparam("recorded_at"),
    )
