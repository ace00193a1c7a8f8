"""Reads for metric backfills: which Airflow runs already have an experiment (and metrics) in the store.

SQLAlchemy Core on the store's engine; no Airflow imports (the reconcile logic lives in
``airflow_mltrack.backfill``). Every function takes a ``TrackingStore`` and only reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from airflow_mltrack.store.base import read_connection
from airflow_mltrack.store.models import Experiment, Metric

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

experiments = Experiment.__table__
metrics = Metric.__table__

# Bound parameters per IN list: well under SQLite's and PostgreSQL's limits.
_CHUNK = 500


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def linked_experiments(
    store: TrackingStore,
    dag_id: str,
    task_id: str,
    run_ids: Iterable[str],
    *,
    map_index: int = -1,
    evaluation_set: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Per run_id of ``run_ids``: the experiment linked to (dag_id, run_id, task_id, map_index).

    Returns ``{run_id: {"experiment_id": int, "metric_count": int}}`` for the runs that have one; where
    several experiments share the link (different names), the oldest is taken. ``metric_count`` counts the
    experiment's metric rows (of ``evaluation_set`` when given). Two queries per 500 run ids.
    """
    wanted = list(dict.fromkeys(run_ids))
    found: dict[str, dict[str, Any]] = {}
    if not wanted:
        return found
    with read_connection(store.engine) as conn:
        for chunk in _chunks(wanted):
            query = (
                select(experiments.c.run_id, func.min(experiments.c.experiment_id).label("experiment_id"))
                .where(
                    experiments.c.dag_id == dag_id,
                    experiments.c.task_id == task_id,
                    experiments.c.map_index == map_index,
                    experiments.c.run_id.in_(chunk),
                )
                .group_by(experiments.c.run_id)
            )
            for run_id, experiment_id in conn.execute(query):
                found[run_id] = {"experiment_id": int(experiment_id), "metric_count": 0}
        ids = [row["experiment_id"] for row in found.values()]
        counts: dict[int, int] = {}
        for chunk in _chunks(ids):
            query = (
                select(metrics.c.experiment_id, func.count().label("n"))
                .where(metrics.c.experiment_id.in_(chunk))
                .group_by(metrics.c.experiment_id)
            )
            if evaluation_set is not None:
                query = query.where(metrics.c.evaluation_set == evaluation_set)
            counts.update({int(e): int(n) for e, n in conn.execute(query)})
    for row in found.values():
        row["metric_count"] = counts.get(row["experiment_id"], 0)
    return found


def stored_metric_values(
    store: TrackingStore, experiment_id: int, names: Iterable[str] | None = None
) -> dict[tuple[str, int | None, str], float]:
    """``{(name, step, evaluation_set): value}`` of an experiment's metrics (only ``names`` when given)."""
    query = select(metrics.c.name, metrics.c.step, metrics.c.evaluation_set, metrics.c.value).where(
        metrics.c.experiment_id == experiment_id
    )
    if names is not None:
        query = query.where(metrics.c.name.in_(sorted(set(names))))
    with read_connection(store.engine) as conn:
        return {
            (name, step, split): float(value) if value is not None else float("nan")
            for name, step, split, value in conn.execute(query)
        }


def metric_steps(store: TrackingStore, experiment_id: int, evaluation_set: str) -> dict[str, int]:
    """``{metric name: number of rows}`` of one experiment and split (a cheap shape check for monitoring)."""
    query = (
        select(metrics.c.name, func.count())
        .where(metrics.c.experiment_id == experiment_id, metrics.c.evaluation_set == evaluation_set)
        .group_by(metrics.c.name)
    )
    with read_connection(store.engine) as conn:
        return {name: int(n) for name, n in conn.execute(query)}
