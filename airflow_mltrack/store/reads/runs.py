"""Which Airflow runs already have an experiment (and how many metric rows) in the store: what a metric
backfill skips or continues (``airflow_mltrack.reconcile``, docs/backfill.md).

Takes the :class:`~airflow_mltrack.store.TrackingStore` first and only reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypedDict

from sqlalchemy import func, select

from airflow_mltrack.store import tables

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

experiments, metrics = tables.experiments, tables.metrics

# Bound parameters per IN list: well under SQLite's and PostgreSQL's limits.
_CHUNK = 500


class LinkedExperiment(TypedDict):
    experiment_id: int
    metric_count: int


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
) -> dict[str, LinkedExperiment]:
    """Per run_id of ``run_ids``: the experiment linked to (dag_id, run_id, task_id, map_index).

    Returns ``{run_id: {"experiment_id": int, "metric_count": int}}`` for the runs that have one; where
    several experiments share the link (different names), the oldest is taken. ``metric_count`` counts the
    experiment's metric rows (of ``evaluation_set`` when given). Two queries per 500 run ids.
    """
    wanted = list(dict.fromkeys(run_ids))
    found: dict[str, LinkedExperiment] = {}
    if not wanted:
        return found
    with store.read() as conn:
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
        for chunk in _chunks(ids):  # type: ignore[arg-type]
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


__all__ = ["LinkedExperiment", "linked_experiments"]
