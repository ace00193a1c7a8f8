"""Metric writes (one transaction per batch, upsert on the metric key) and metric reads.

PostgreSQL: batches of ``COPY_THRESHOLD`` rows or more go through binary COPY, straight into ``metrics``
when every key only grows past its stored steps, else into a temporary staging table and one
``INSERT .. SELECT .. ORDER BY key ON CONFLICT DO UPDATE``; smaller batches are one multi-row upsert.
SQLite: executemany. Rows are deduplicated and written in key order, so two writers of the same
experiment lock rows in the same order and cannot deadlock.

Every write also keeps ``metric_latest`` (the final value, min, max and count of points per (experiment,
metric, split)) in the same transaction: the batch's own per-key summary is folded in with one upsert per
chunk of keys (in key order: again no deadlocks), and only keys whose stored rows the batch replaced are
recomputed from ``metrics``. Leaderboards, ``compare``, ``latest_metrics`` and the metric sort of the
experiments list read it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import psycopg
from sqlalchemy import (
    Connection,
    String,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    tuple_,
    type_coerce,
)
from sqlalchemy.sql import Select

from airflow_mltrack.errors import NotFoundError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import rows, utcnow
from airflow_mltrack.store.experiments import ExperimentStore, experiments
from airflow_mltrack.store.models import EVALUATION_SETS, EXPERIMENT_STATUSES, Metric, MetricLatest
from airflow_mltrack.store.payloads import KeySummary, MetricRow, dedupe, parse_metrics, summarize

#: Statuses a leaderboard ranks by default: not Failed or Cancelled (issue 11, item 3).
RANKED_STATUSES = ("Pending", "Running", "Completed")

metrics = Metric.__table__
metric_latest = MetricLatest.__table__

LATEST_CHUNK = 500  # metric keys per metric_latest refresh statement (2 bind parameters each)
_LATEST_COLUMNS = (
    "experiment_id",
    "name",
    "evaluation_set",
    "step",
    "value",
    "min_value",
    "max_value",
    "points",
    "recorded_at",
)

COPY_THRESHOLD = 500
_STAGE = "mltrack_metric_stage"
_STAGE_DDL = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS mltrack_metric_stage "
    "(experiment_id integer, name varchar(100), value double precision, step integer, "
    "evaluation_set varchar(50)) ON COMMIT DELETE ROWS"
)
_STAGE_COPY = (
    "COPY mltrack_metric_stage (experiment_id, name, value, step, evaluation_set) FROM STDIN (FORMAT BINARY)"
)
_METRICS_COPY = "COPY metrics (experiment_id, name, value, step, evaluation_set) FROM STDIN (FORMAT BINARY)"
# Merge the staged rows in key order; answer the keys where a stored row was replaced (xmax <> 0 on the
# row an INSERT .. ON CONFLICT DO UPDATE returns means it updated rather than inserted).
_STAGE_MERGE = (
    "WITH written AS ("
    "INSERT INTO metrics (experiment_id, name, value, step, evaluation_set, recorded_at) "
    "SELECT experiment_id, name, value, step, evaluation_set, now() FROM mltrack_metric_stage "
    "ORDER BY experiment_id, name, evaluation_set, step NULLS FIRST "
    "ON CONFLICT ON CONSTRAINT uq_metric_experiment_name_step_evalset "
    "DO UPDATE SET value = EXCLUDED.value, recorded_at = EXCLUDED.recorded_at "
    "RETURNING name, evaluation_set, xmax <> 0 AS replaced) "
    "SELECT name, evaluation_set FROM written GROUP BY name, evaluation_set HAVING bool_or(replaced) "
    "ORDER BY name, evaluation_set"
)
# Small batches on PostgreSQL: the rows travel as arrays, unnested in key order (the order of the batch).
_PG_UPSERT = text(
    "INSERT INTO metrics (experiment_id, name, value, step, evaluation_set, recorded_at) "
    "SELECT :experiment_id, u.name, u.value, u.step, u.evaluation_set, :now "
    "FROM unnest(CAST(:names AS varchar[]), CAST(:values AS float8[]), CAST(:steps AS integer[]), "
    "CAST(:splits AS varchar[])) WITH ORDINALITY AS u (name, value, step, evaluation_set, i) ORDER BY u.i "
    "ON CONFLICT ON CONSTRAINT uq_metric_experiment_name_step_evalset "
    "DO UPDATE SET value = EXCLUDED.value, recorded_at = EXCLUDED.recorded_at "
    "RETURNING name, evaluation_set, xmax <> 0"
)
# Fold per-key batch summaries into metric_latest (see MetricStore._advance_latest), in key order.
_PG_ADVANCE = text(
    "INSERT INTO metric_latest AS old "
    "(experiment_id, name, evaluation_set, step, value, min_value, max_value, points, recorded_at) "
    "SELECT :experiment_id, u.name, u.evaluation_set, u.step, u.value, u.min_value, u.max_value, u.points, :now "
    "FROM unnest(CAST(:names AS varchar[]), CAST(:splits AS varchar[]), CAST(:steps AS integer[]), "
    "CAST(:values AS float8[]), CAST(:mins AS float8[]), CAST(:maxes AS float8[]), CAST(:points AS integer[])) "
    "WITH ORDINALITY AS u (name, evaluation_set, step, value, min_value, max_value, points, i) ORDER BY u.i "
    "ON CONFLICT (experiment_id, name, evaluation_set) DO UPDATE SET "
    "step = CASE WHEN EXCLUDED.step IS NULL OR (old.step IS NOT NULL AND EXCLUDED.step >= old.step) "
    "THEN EXCLUDED.step ELSE old.step END, "
    "value = CASE WHEN EXCLUDED.step IS NULL OR (old.step IS NOT NULL AND EXCLUDED.step >= old.step) "
    "THEN EXCLUDED.value ELSE old.value END, "
    "min_value = least(old.min_value, EXCLUDED.min_value), "
    "max_value = greatest(old.max_value, EXCLUDED.max_value), "
    "points = old.points + EXCLUDED.points, recorded_at = EXCLUDED.recorded_at"
)


def _copy_rows(cur: Any, statement: str, experiment_id: int, batch: Sequence[MetricRow]) -> None:
    with cur.copy(statement) as copy:
        copy.set_types(["int4", "varchar", "float8", "int4", "varchar"])
        write = copy.write_row
        for r in batch:
            write((experiment_id, r.name, r.value, r.step, r.evaluation_set))


def _as_float(value: Any, *, null_is_nan: bool = False) -> Any:
    """Read side of ``_sqlite_value``: SQLite hands back untyped window results, NULL for NaN (and the text
    'NaN' in databases written before NaN was stored as NULL)."""
    if isinstance(value, str):
        return float(value)
    if value is None and null_is_nan:
        return math.nan
    return value


def _float_rows(
    found: list[dict[str, Any]],
    keys: tuple[str, ...] = ("value", "min_value", "max_value"),
    *,
    null_is_nan: bool = False,
) -> list[dict[str, Any]]:
    """Metric values of ``found`` as floats; ``null_is_nan`` for columns where NULL stands for NaN
    (``metrics.value`` and the values of ``metric_latest``: never NULL otherwise)."""
    for row in found:
        for key in keys:
            if key in row:
                row[key] = _as_float(row[key], null_is_nan=null_is_nan)
    return found


def _sqlite_value(value: float, nan: str | None) -> float | str | None:
    """A metric value as SQLite stores it: SQLite's REAL has no NaN, so NaN is stored as ``nan`` (NULL, or
    the text 'NaN' where the schema still refuses NULL; see ``MetricStore._sqlite_nan``)."""
    return nan if math.isnan(value) else value


def _max_nan_greatest(column: Any) -> Any:
    """``max(column)`` with NaN above every number, on both backends: PostgreSQL sorts NaN last already;
    on SQLite, where NaN is NULL, any NULL makes the maximum NULL (NaN)."""
    return case((func.count(column) < func.count(), null()), else_=func.max(column))


class MetricStore(ExperimentStore):
    """Metric logging and metric reads."""

    def log_metrics(
        self,
        experiment_id: int,
        metrics: Any,
        evaluation_set: str = "test",
        step: int | None = None,
    ) -> int:
        """Write a metric payload (any shape of DESIGN.md) in one transaction; returns rows written.

        Logging the same key again replaces its value: retries never duplicate a row.
        """
        experiment_id = v.entity_id("experiment_id", experiment_id)
        batch = dedupe(parse_metrics(metrics, evaluation_set, step))
        return self.log_metric_rows(experiment_id, batch)

    def log_metric(
        self,
        experiment_id: int,
        name: str,
        value: float,
        step: int | None = None,
        evaluation_set: str = "test",
    ) -> int:
        """Log one value."""
        return self.log_metrics(experiment_id, {name: value}, evaluation_set=evaluation_set, step=step)

    def log_metric_rows(self, experiment_id: int, batch: Sequence[MetricRow]) -> int:
        """Write already-parsed, deduplicated rows (see ``payloads.dedupe``) and keep ``metric_latest``.

        ``metric_latest`` is advanced from the batch itself (min, max, count, final row), which is exact
        when every row is new; keys whose stored rows the batch overwrote are then recomputed from
        ``metrics``. The advance also locks those ``metric_latest`` rows (in key order) before the
        recomputation reads, so a concurrent writer's committed rows are always counted.
        """
        if not batch:
            return 0
        summary = summarize(batch)
        with self._write(experiment_id=experiment_id) as conn:
            if self.is_postgres:
                if len(batch) >= COPY_THRESHOLD:
                    overwritten = self._pg_copy(conn, experiment_id, batch, summary)
                else:
                    overwritten = self._pg_upsert(conn, experiment_id, batch)
            else:
                self._require(conn, experiments, "experiment_id", experiment_id, "experiment_id")
                overwritten = self._sqlite_write(conn, experiment_id, batch, summary)
            self._advance_latest(conn, experiment_id, summary)
            if overwritten:
                self._refresh_latest(conn, experiment_id, overwritten)
            self._note_writer(conn, experiment_id)  # the task writing (if any) belongs to the experiment
        return len(batch)

    # -- PostgreSQL ---------------------------------------------------------------------------------
    def _pg_upsert(
        self, conn: Connection, experiment_id: int, batch: Sequence[MetricRow]
    ) -> list[tuple[str, str]]:
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
            },
        )
        return sorted({(name, split) for name, split, replaced in result if replaced})

    def _pg_copy(
        self,
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
        if self._appends_only(conn, experiment_id, summary):
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
        info = conn.connection.info
        with dbapi.cursor() as cur:
            if not info.get(_STAGE):
                cur.execute(_STAGE_DDL)
                info[_STAGE] = True
            _copy_rows(cur, _STAGE_COPY, experiment_id, batch)
            cur.execute(_STAGE_MERGE)
            return [(name, split) for name, split in cur.fetchall()]

    def _appends_only(self, conn: Connection, experiment_id: int, summary: Sequence[KeySummary]) -> bool:
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

    # -- SQLite -------------------------------------------------------------------------------------
    def _sqlite_write(
        self,
        conn: Connection,
        experiment_id: int,
        batch: Sequence[MetricRow],
        summary: Sequence[KeySummary],
    ) -> list[tuple[str, str]]:
        """Insert the new rows (``ON CONFLICT DO NOTHING``); if any key existed, upsert the whole batch and
        report all its keys as overwritten (SQLite has one writer at a time, so this is exact)."""
        now = utcnow()
        nan = self._sqlite_nan(conn, summary)
        params = [
            {
                "experiment_id": experiment_id,
                "name": r.name,
                "value": _sqlite_value(r.value, nan),
                "step": r.step,
                "evaluation_set": r.evaluation_set,
                "recorded_at": now,
            }
            for r in batch
        ]
        if conn.execute(self._sqlite_insert().on_conflict_do_nothing(), params).rowcount == len(batch):
            return []
        stepped = [p for p in params if p["step"] is not None]
        stepless = [p for p in params if p["step"] is None]
        for group, elements, where in (
            (stepped, ["experiment_id", "name", "step", "evaluation_set"], None),
            (stepless, ["experiment_id", "name", "evaluation_set"], metrics.c.step.is_(None)),
        ):
            if group:
                stmt = self._sqlite_insert()
                stmt = stmt.on_conflict_do_update(
                    index_elements=elements,
                    index_where=where,
                    set_={"value": stmt.excluded.value, "recorded_at": stmt.excluded.recorded_at},
                )
                conn.execute(stmt, group)
        return [(s.name, s.evaluation_set) for s in summary]

    def _sqlite_insert(self) -> Any:
        return self._insert(metrics).values(
            experiment_id=bindparam("experiment_id"),
            name=bindparam("name"),
            value=self._value_param("value"),
            step=bindparam("step"),
            evaluation_set=bindparam("evaluation_set"),
            recorded_at=bindparam("recorded_at"),
        )

    # -- metric_latest ------------------------------------------------------------------------------
    def _advance_latest(self, conn: Connection, experiment_id: int, summary: Sequence[KeySummary]) -> None:
        """Fold the batch's per-key summary into ``metric_latest``: one upsert, rows in key order
        (PostgreSQL: ``_PG_ADVANCE`` with arrays; SQLite: an executemany of the same upsert)."""
        now = utcnow()
        if self.is_postgres:
            conn.execute(
                _PG_ADVANCE,
                {
                    "experiment_id": experiment_id,
                    "now": now,
                    "names": [s.name for s in summary],
                    "splits": [s.evaluation_set for s in summary],
                    "steps": [s.final_step for s in summary],
                    "values": [s.final_value for s in summary],
                    "mins": [s.min_value for s in summary],
                    "maxes": [s.max_value for s in summary],
                    "points": [s.points for s in summary],
                },
            )
            return
        stmt = self._insert(metric_latest).values(
            {
                "experiment_id": bindparam("experiment_id"),
                "name": bindparam("name"),
                "evaluation_set": bindparam("evaluation_set"),
                "step": bindparam("step"),
                "points": bindparam("points"),
                "recorded_at": bindparam("recorded_at"),
                **{c: self._value_param(c) for c in ("value", "min_value", "max_value")},
            }
        )
        old, new = metric_latest.c, stmt.excluded
        # The batch's final row wins if it is step-less, or if the stored one has a step at most its own.
        wins = or_(new.step.is_(None), and_(old.step.is_not(None), new.step >= old.step))
        stmt = stmt.on_conflict_do_update(
            index_elements=["experiment_id", "name", "evaluation_set"],
            set_={
                "step": case((wins, new.step), else_=old.step),
                "value": case((wins, new.value), else_=old.value),
                # Two-argument min/max are NULL if either is: min ignores a NaN (NULL) side, max keeps it.
                "min_value": func.coalesce(
                    func.min(old.min_value, new.min_value), old.min_value, new.min_value
                ),
                "max_value": func.max(old.max_value, new.max_value),
                "points": old.points + new.points,
                "recorded_at": new.recorded_at,
            },
        )
        nan = self._sqlite_nan(conn, summary)
        params = [
            {
                "experiment_id": experiment_id,
                "name": s.name,
                "evaluation_set": s.evaluation_set,
                "step": s.final_step,
                "value": _sqlite_value(s.final_value, nan),
                "min_value": _sqlite_value(s.min_value, nan),
                "max_value": _sqlite_value(s.max_value, nan),
                "points": s.points,
                "recorded_at": now,
            }
            for s in summary
        ]
        conn.execute(stmt, params)

    @staticmethod
    def _value_param(name: str) -> Any:
        """A bound metric value for SQLite, untyped so NaN can travel as the text 'NaN' (older schema)."""
        return type_coerce(bindparam(name), String())

    @staticmethod
    def _sqlite_nan(conn: Connection, summary: Sequence[KeySummary]) -> str | None:
        """How SQLite stores a NaN of this batch: NULL (what sqlite3 and pandas read as missing / NaN) where
        ``metrics.value`` accepts NULL, else the text 'NaN' (a schema from before NULL meant NaN). Asked
        only when the batch holds a NaN (a key's max is NaN then)."""
        if not any(math.isnan(s.max_value) for s in summary):
            return None
        not_null = conn.exec_driver_sql(
            "SELECT \"notnull\" FROM pragma_table_info('metrics') WHERE name = 'value'"
        ).scalar()
        return "NaN" if not_null else None

    def _refresh_latest(self, conn: Connection, experiment_id: int, keys: Sequence[tuple[str, str]]) -> None:
        """Recompute the ``metric_latest`` rows of ``keys`` from ``metrics`` (in key order)."""
        keys = sorted(keys)
        for start in range(0, len(keys), LATEST_CHUNK):
            chunk = keys[start : start + LATEST_CHUNK]
            source = self._latest_source(
                and_(
                    metrics.c.experiment_id == experiment_id,
                    tuple_(metrics.c.name, metrics.c.evaluation_set).in_(chunk),
                )
            )
            stmt = self._insert(metric_latest).from_select(list(_LATEST_COLUMNS), source)
            stmt = stmt.on_conflict_do_update(
                index_elements=["experiment_id", "name", "evaluation_set"],
                set_={c: stmt.excluded[c] for c in _LATEST_COLUMNS[3:]},
            )
            conn.execute(stmt)

    # -- reads --------------------------------------------------------------------------------------
    def metric_history(
        self, experiment_id: int, name: str, evaluation_set: str = "test"
    ) -> list[dict[str, Any]]:
        """Every value of one metric of one split, by step (a step-less value first)."""
        experiment_id = v.entity_id("experiment_id", experiment_id)
        split = v.choice("evaluation_set", evaluation_set, EVALUATION_SETS)
        name = v.lookup_name("name", name) or ""
        query = (
            select(metrics.c.step, metrics.c.value, metrics.c.recorded_at)
            .where(
                metrics.c.experiment_id == experiment_id,
                metrics.c.name == name,
                metrics.c.evaluation_set == split,
            )
            .order_by(metrics.c.step.asc().nulls_first())
        )
        with self._read() as conn:
            return _float_rows(rows(conn.execute(query)), null_is_nan=True)

    def metric_curves(self, experiment_ids: Iterable[int]) -> list[dict[str, Any]]:
        """All metric rows of the given experiments (for charts), ordered by experiment, key, step."""
        ids = [v.entity_id("experiment_id", i) for i in experiment_ids]
        query = (
            select(
                metrics.c.experiment_id,
                metrics.c.name,
                metrics.c.evaluation_set,
                metrics.c.step,
                metrics.c.value,
            )
            .where(metrics.c.experiment_id.in_(ids))
            .order_by(
                metrics.c.experiment_id,
                metrics.c.name,
                metrics.c.evaluation_set,
                metrics.c.step.asc().nulls_first(),
            )
        )
        with self._read() as conn:
            return _float_rows(rows(conn.execute(query)), null_is_nan=True)

    @staticmethod
    def _latest_source(where: Any) -> Select:
        """``metric_latest`` rows recomputed from ``metrics`` for the keys matching ``where``, in key order.

        The same result as ``_final_values`` (step-less value, else the highest step; min, max and count
        over all rows), computed with a plain aggregate plus one index probe per key for the final row
        instead of a window that sorts every row of the key.
        """
        agg = (
            select(
                metrics.c.experiment_id,
                metrics.c.name,
                metrics.c.evaluation_set,
                func.min(metrics.c.value).label("min_value"),
                _max_nan_greatest(metrics.c.value).label("max_value"),
                func.count().label("points"),
                func.max(metrics.c.recorded_at).label("recorded_at"),
            )
            .where(where)
            .group_by(metrics.c.experiment_id, metrics.c.name, metrics.c.evaluation_set)
            .subquery()
        )
        last = metrics.alias("last_row")

        def final(column: str) -> Any:
            return (
                select(last.c[column])
                .where(
                    last.c.experiment_id == agg.c.experiment_id,
                    last.c.name == agg.c.name,
                    last.c.evaluation_set == agg.c.evaluation_set,
                )
                .order_by(last.c.step.desc().nulls_first())
                .limit(1)
                .scalar_subquery()
            )

        return (
            select(
                agg.c.experiment_id,
                agg.c.name,
                agg.c.evaluation_set,
                final("step").label("step"),
                final("value").label("value"),
                agg.c.min_value,
                agg.c.max_value,
                agg.c.points,
                agg.c.recorded_at,
            )
            .where(true())  # SQLite: a WHERE keeps INSERT .. SELECT .. ON CONFLICT unambiguous
            .order_by(agg.c.experiment_id, agg.c.name, agg.c.evaluation_set)
        )

    def _final_values(self, where: Any) -> Select:
        """Per (experiment, metric, split): the final value (step-less, else the highest step),
        with the best min/max, the number of points and the last write time: the reference definition
        of ``metric_latest`` (tests check the table against it); writes refresh the table with
        ``_latest_source`` and reads use the table."""
        key = (metrics.c.experiment_id, metrics.c.name, metrics.c.evaluation_set)
        ranked = (
            select(
                metrics.c.experiment_id,
                metrics.c.name,
                metrics.c.evaluation_set,
                metrics.c.step,
                metrics.c.value,
                func.row_number()
                .over(
                    partition_by=(metrics.c.experiment_id, metrics.c.name, metrics.c.evaluation_set),
                    order_by=(metrics.c.step.is_(None).desc(), metrics.c.step.desc()),
                )
                .label("rn"),
                func.min(metrics.c.value)
                .over(partition_by=(metrics.c.experiment_id, metrics.c.name, metrics.c.evaluation_set))
                .label("min_value"),
                case(
                    (
                        func.count(metrics.c.value).over(partition_by=key)
                        < func.count().over(partition_by=key),
                        null(),
                    ),
                    else_=func.max(metrics.c.value).over(partition_by=key),
                ).label("max_value"),  # NaN (NULL on SQLite) above every number, as _max_nan_greatest
                func.count()
                .over(partition_by=(metrics.c.experiment_id, metrics.c.name, metrics.c.evaluation_set))
                .label("points"),
                func.max(metrics.c.recorded_at)
                .over(partition_by=(metrics.c.experiment_id, metrics.c.name, metrics.c.evaluation_set))
                .label("recorded_at"),
            )
            .where(where)
            .subquery()
        )
        return select(
            ranked.c.experiment_id,
            ranked.c.name,
            ranked.c.evaluation_set,
            ranked.c.step,
            ranked.c.value,
            ranked.c.min_value,
            ranked.c.max_value,
            ranked.c.points,
            ranked.c.recorded_at,
        ).where(ranked.c.rn == 1)

    def latest_metrics(self, experiment_id: int) -> list[dict[str, Any]]:
        """The final value of every metric of an experiment, per split, with best min/max."""
        experiment_id = v.entity_id("experiment_id", experiment_id)
        query = self._latest_query().where(metric_latest.c.experiment_id == experiment_id)
        with self._read() as conn:
            found = _float_rows(rows(conn.execute(query)), null_is_nan=True)
            if not found:
                self._require(conn, experiments, "experiment_id", experiment_id, "experiment_id")
        return sorted(found, key=lambda r: (r["evaluation_set"], r["name"]))

    @staticmethod
    def _latest_query() -> Select:
        return select(
            metric_latest.c.experiment_id,
            metric_latest.c.name,
            metric_latest.c.evaluation_set,
            metric_latest.c.step,
            metric_latest.c.value,
            metric_latest.c.min_value,
            metric_latest.c.max_value,
            metric_latest.c.points,
        )

    def _finite(self, column: Any) -> Any:
        """Finite values only: a final value of NaN or +-Infinity is not ranked (leaderboard, the metric
        sort of the experiments list). PostgreSQL sorts NaN above Infinity; SQLite stores NaN as NULL
        (which no comparison passes; the text 'NaN' in databases written before)."""
        if self.is_postgres:
            return and_(
                column > literal_column("'-Infinity'::float8"), column < literal_column("'Infinity'::float8")
            )
        return and_(
            func.typeof(column) != "text", column > literal_column("-9e999"), column < literal_column("9e999")
        )

    def leaderboard(
        self,
        project: str | int,
        metric: str,
        evaluation_set: str = "test",
        mode: str = "max",
        limit: int = 10,
        visible_dag_ids: Collection[str] | None = None,
        statuses: Collection[str] = RANKED_STATUSES,
    ) -> list[dict[str, Any]]:
        """Top ``limit`` experiments of ``project`` by the final value of ``metric`` on a split.

        Only finite final values are ranked (NaN and +-Infinity are left out), and only experiments whose
        status is in ``statuses``: by default Pending, Running and Completed, so a Failed or Cancelled run
        (a skipped task, a timed-out DAG run) does not rank with what it logged before it stopped.
        ``visible_dag_ids``: only experiments of these DAGs (and those without a DAG), filtered before the
        limit; None: all.
        """
        statuses = sorted(v.choice("statuses", s, EXPERIMENT_STATUSES) for s in statuses)
        split = v.choice("evaluation_set", evaluation_set, EVALUATION_SETS)
        metric = v.lookup_name("metric", metric) or ""
        mode = v.choice("mode", mode, ("max", "min"))
        limit = v.integer("limit", limit, minimum=1) or 10
        with self._read() as conn:
            project_id = self._lookup_project_id(conn, project)
            final = metric_latest
            order = final.c.value.desc() if mode == "max" else final.c.value.asc()
            query = (
                select(
                    experiments.c.experiment_id,
                    experiments.c.name,
                    experiments.c.status,
                    experiments.c.hyperparameters,
                    experiments.c.model_id,
                    experiments.c.dag_id,
                    experiments.c.run_id,
                    final.c.value,
                    final.c.step,
                )
                .join(final, final.c.experiment_id == experiments.c.experiment_id)
                .where(
                    experiments.c.project_id == project_id,
                    final.c.name == metric,
                    final.c.evaluation_set == split,
                    self._finite(final.c.value),
                    experiments.c.status.in_(statuses),
                    true()
                    if visible_dag_ids is None
                    else or_(
                        experiments.c.dag_id.is_(None), experiments.c.dag_id.in_(sorted(visible_dag_ids))
                    ),
                )
                .order_by(order, experiments.c.experiment_id)
                .limit(limit)
            )
            result = rows(conn.execute(query))
        for rank, row in enumerate(result, start=1):
            row["rank"] = rank
        return result

    def _lookup_project_id(self, conn: Connection, project: str | int) -> int:
        from airflow_mltrack.store.catalog import projects

        column = projects.c.project_id if isinstance(project, int) else projects.c.name
        if not isinstance(project, int):
            project = v.lookup_name("project", project) or ""
        project_id = conn.execute(select(projects.c.project_id).where(column == project)).scalar_one_or_none()
        if project_id is None:
            raise NotFoundError("project", project, "no such project")
        return int(project_id)

    def compare(self, experiment_ids: Sequence[int]) -> dict[str, Any]:
        """Side by side: experiments, hyperparameters (with the keys that differ) and final metrics."""
        ids = list(dict.fromkeys(v.entity_id("experiment_id", i) for i in experiment_ids))
        if not 1 <= len(ids) <= 50:
            from airflow_mltrack.errors import MLTrackError

            raise MLTrackError("experiment_ids", experiment_ids, "give between 1 and 50 experiment ids")
        with self._read() as conn:
            found = {
                r["experiment_id"]: r
                for r in rows(
                    conn.execute(self._experiment_query().where(experiments.c.experiment_id.in_(ids)))
                )
            }
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFoundError("experiment_ids", missing, "no experiment with these ids")
            finals = _float_rows(
                rows(conn.execute(self._latest_query().where(metric_latest.c.experiment_id.in_(ids)))),
                null_is_nan=True,
            )
        keys = sorted({k for r in found.values() for k in (r["hyperparameters"] or {})})
        params = {k: {i: (found[i]["hyperparameters"] or {}).get(k) for i in ids} for k in keys}
        differing = [k for k, by_id in params.items() if len({repr(x) for x in by_id.values()}) > 1]
        table: dict[str, dict[str, Any]] = {}
        for r in finals:
            entry = table.setdefault(
                f"{r['evaluation_set']}/{r['name']}",
                {"name": r["name"], "evaluation_set": r["evaluation_set"], "values": {}},
            )
            entry["values"][r["experiment_id"]] = r["value"]
        return {
            "experiments": [found[i] for i in ids],
            "hyperparameters": params,
            "differing": differing,
            "metrics": [table[k] for k in sorted(table)],
        }


__all__ = ["MetricStore", "metric_latest", "metrics"]
