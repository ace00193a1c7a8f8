"""Small reads for the status listener (SQLAlchemy Core, no Airflow imports)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, or_, select

from airflow_mltrack.store.base import read_connection
from airflow_mltrack.store.models import Experiment

experiments = Experiment.__table__

_COLUMNS = (
    experiments.c.experiment_id,
    experiments.c.status,
    experiments.c.dag_id,
    experiments.c.run_id,
    experiments.c.task_id,
    experiments.c.map_index,
)


def experiments_for_task_run(
    engine: Engine, dag_id: str, run_id: str, named_ids: Iterable[int] = ()
) -> list[dict[str, Any]]:
    """Experiments created in DAG run ``(dag_id, run_id)`` plus the experiments ``named_ids``, in one query.

    Rows: ``experiment_id, status, dag_id, run_id, task_id, map_index`` (the creator's link).
    """
    ids = sorted({int(i) for i in named_ids})
    condition = (experiments.c.dag_id == dag_id) & (experiments.c.run_id == run_id)
    if ids:
        condition = or_(condition, experiments.c.experiment_id.in_(ids))
    query = select(*_COLUMNS).where(condition).order_by(experiments.c.experiment_id)
    with read_connection(engine) as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def open_experiments_of_run(engine: Engine, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Experiments created in DAG run ``(dag_id, run_id)`` that are still Pending or Running."""
    query = (
        select(*_COLUMNS)
        .where(
            experiments.c.dag_id == dag_id,
            experiments.c.run_id == run_id,
            experiments.c.status.in_(("Pending", "Running")),
        )
        .order_by(experiments.c.experiment_id)
    )
    with read_connection(engine) as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
