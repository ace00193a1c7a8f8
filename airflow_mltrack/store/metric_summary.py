"""``metric_latest``: the final value, min, max and count of points per (experiment, metric, split), kept in
the metric write's own transaction.

The batch's own per-key summary is folded in with one upsert per chunk of keys (in key order: no
deadlocks), and only keys whose stored rows the batch replaced are recomputed from ``metrics``.
Leaderboards, ``compare``, ``latest_metrics`` and the metric sort of the experiments list read it;
:func:`final_values` is its reference definition (tests check the table against it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, case, func, null, or_, select, text, true, tuple_
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import Select

from airflow_mltrack.store.base import utcnow
from airflow_mltrack.store.metric_writes import LATEST_CHUNK, sqlite_nan, sqlite_value, value_param
from airflow_mltrack.store.payloads import KeySummary
from airflow_mltrack.store.tables import metric_latest, metrics

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
# Fold per-key batch summaries into metric_latest (see :func:`advance_latest`), in key order.
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


def max_nan_greatest(column: Any) -> Any:
    """``max(column)`` with NaN above every number, on both backends: PostgreSQL sorts NaN last already;
    on SQLite, where NaN is NULL, any NULL makes the maximum NULL (NaN)."""
    return case((func.count(column) < func.count(), null()), else_=func.max(column))


def advance_latest(
    conn: Connection, is_postgres: bool, experiment_id: int, summary: Sequence[KeySummary]
) -> None:
    """Fold the batch's per-key summary into ``metric_latest``: one upsert, rows in key order
    (PostgreSQL: ``_PG_ADVANCE`` with arrays; SQLite: an executemany of the same upsert)."""
    now = utcnow()
    if is_postgres:
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
    stmt = sqlite.insert(metric_latest).values(
        {
            "experiment_id": bindparam("experiment_id"),
            "name": bindparam("name"),
            "evaluation_set": bindparam("evaluation_set"),
            "step": bindparam("step"),
            "points": bindparam("points"),
            "recorded_at": bindparam("recorded_at"),
            **{c: value_param(c) for c in ("value", "min_value", "max_value")},
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
            "min_value": func.coalesce(func.min(old.min_value, new.min_value), old.min_value, new.min_value),
            "max_value": func.max(old.max_value, new.max_value),
            "points": old.points + new.points,
            "recorded_at": new.recorded_at,
        },
    )
    nan = sqlite_nan(conn, summary)
    params = [
        {
            "experiment_id": experiment_id,
            "name": s.name,
            "evaluation_set": s.evaluation_set,
            "step": s.final_step,
            "value": sqlite_value(s.final_value, nan),
            "min_value": sqlite_value(s.min_value, nan),
            "max_value": sqlite_value(s.max_value, nan),
            "points": s.points,
            "recorded_at": now,
        }
        for s in summary
    ]
    conn.execute(stmt, params)


def refresh_latest(
    conn: Connection, insert: Callable[[Table], Any], experiment_id: int, keys: Sequence[tuple[str, str]]
) -> None:
    """Recompute the ``metric_latest`` rows of ``keys`` from ``metrics`` (in key order)."""
    keys = sorted(keys)
    for start in range(0, len(keys), LATEST_CHUNK):
        chunk = keys[start : start + LATEST_CHUNK]
        source = latest_source(
            and_(
                metrics.c.experiment_id == experiment_id,
                tuple_(metrics.c.name, metrics.c.evaluation_set).in_(chunk),
            )
        )
        stmt = insert(metric_latest).from_select(list(_LATEST_COLUMNS), source)
        stmt = stmt.on_conflict_do_update(
            index_elements=["experiment_id", "name", "evaluation_set"],
            set_={c: stmt.excluded[c] for c in _LATEST_COLUMNS[3:]},
        )
        conn.execute(stmt)


def latest_source(where: Any) -> Select:
    """``metric_latest`` rows recomputed from ``metrics`` for the keys matching ``where``, in key order.

    The same result as ``final_values`` (step-less value, else the highest step; min, max and count
    over all rows), computed with a plain aggregate plus one index probe per key for the final row
    instead of a window that sorts every row of the key.
    """
    agg = (
        select(
            metrics.c.experiment_id,
            metrics.c.name,
            metrics.c.evaluation_set,
            func.min(metrics.c.value).label("min_value"),
            max_nan_greatest(metrics.c.value).label("max_value"),
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


def final_values(where: Any) -> Select:
    """Per (experiment, metric, split): the final value (step-less, else the highest step),
    with the best min/max, the number of points and the last write time: the reference definition
    of ``metric_latest`` (tests check the table against it); writes refresh the table with
    ``latest_source`` and reads use the table."""
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
                partition_by=key,
                order_by=(metrics.c.step.is_(None).desc(), metrics.c.step.desc()),
            )
            .label("rn"),
            func.min(metrics.c.value).over(partition_by=key).label("min_value"),
            case(
                (
                    func.count(metrics.c.value).over(partition_by=key) < func.count().over(partition_by=key),
                    null(),
                ),
                else_=func.max(metrics.c.value).over(partition_by=key),
            ).label("max_value"),  # NaN (NULL on SQLite) above every number, as max_nan_greatest
            func.count().over(partition_by=key).label("points"),
            func.max(metrics.c.recorded_at).over(partition_by=key).label("recorded_at"),
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


def latest_query() -> Select:
    """SELECT of ``metric_latest`` rows (add WHERE)."""
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
