"""Status lookups of the status listener: which experiments a task instance or a DAG run decides.

An experiment's task instances are the rows of ``experiment_tasks`` (its creator and its writers); an
experiment *belongs to* the DAG run of its creator row. Runs that only write into an experiment created
elsewhere (another run, outside Airflow) never end it (docs/architecture.md).

Functions take the :class:`~airflow_mltrack.store.TrackingStore` first and only read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import and_, or_, select

from airflow_mltrack.store import tables

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

experiments, experiment_tasks = tables.experiments, tables.experiment_tasks
OPEN_STATUSES = ("Pending", "Running")


class TaskExperiment(TypedDict):
    """An experiment and its creator in this run (``None`` when it was created elsewhere)."""

    experiment_id: int
    status: str
    creator_task_id: str | None
    creator_map_index: int | None


def _with_creator_in_run(dag_id: str, run_id: str) -> tuple[Any, Any]:
    """``(columns, from)``: experiments with the task_id/map_index of their creator in this run (NULL when
    the experiment was created elsewhere)."""
    creator = experiment_tasks.alias("creator")
    joined = experiments.outerjoin(
        creator,
        and_(
            creator.c.experiment_id == experiments.c.experiment_id,
            creator.c.role == "creator",
            creator.c.dag_id == dag_id,
            creator.c.run_id == run_id,
        ),
    )
    columns = (
        experiments.c.experiment_id,
        experiments.c.status,
        creator.c.task_id.label("creator_task_id"),
        creator.c.map_index.label("creator_map_index"),
    )
    return columns, joined


def experiments_of_task(
    store: TrackingStore,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    named_ids: Iterable[int] = (),
    creator_task_ids: Iterable[str] = (),
) -> list[TaskExperiment]:
    """The experiments a task instance belongs to, in one query: those it created or wrote to, those it
    names by id (``named_ids``), and those created in this run by ``creator_task_ids`` (the tasks whose
    XCom it reads its experiment id from)."""
    et = experiment_tasks
    in_run = and_(et.c.dag_id == dag_id, et.c.run_id == run_id)
    conditions = [
        experiments.c.experiment_id.in_(
            select(et.c.experiment_id).where(in_run, et.c.task_id == task_id, et.c.map_index == map_index)
        )
    ]
    creators = sorted(set(creator_task_ids))
    if creators:
        conditions.append(
            experiments.c.experiment_id.in_(
                select(et.c.experiment_id).where(in_run, et.c.role == "creator", et.c.task_id.in_(creators))
            )
        )
    ids = sorted({int(i) for i in named_ids})
    if ids:
        conditions.append(experiments.c.experiment_id.in_(ids))
    columns, joined = _with_creator_in_run(dag_id, run_id)
    query = select(*columns).select_from(joined).where(or_(*conditions)).order_by(experiments.c.experiment_id)
    with store.read() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]  # type: ignore[misc]


def open_experiments_of_run(store: TrackingStore, dag_id: str, run_id: str) -> list[TaskExperiment]:
    """Experiments created in DAG run ``(dag_id, run_id)`` (their creator row is in it) still Pending or
    Running; rows as :func:`experiments_of_task`."""
    columns, joined = _with_creator_in_run(dag_id, run_id)
    query = (
        select(*columns)
        .select_from(joined)
        .where(columns[2].is_not(None), experiments.c.status.in_(OPEN_STATUSES))
        .order_by(experiments.c.experiment_id)
    )
    with store.read() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]  # type: ignore[misc]


def members_in_run(
    store: TrackingStore, experiment_ids: Iterable[int], dag_id: str, run_id: str
) -> dict[int, set[tuple[str, int]]]:
    """``{experiment_id: {(task_id, map_index), ...}}``: the recorded task instances of each experiment in
    this run (creator and writers)."""
    ids = sorted({int(i) for i in experiment_ids})
    found: dict[int, set[tuple[str, int]]] = {i: set() for i in ids}
    if not ids:
        return found
    et = experiment_tasks
    query = select(et.c.experiment_id, et.c.task_id, et.c.map_index).where(
        et.c.experiment_id.in_(ids), et.c.dag_id == dag_id, et.c.run_id == run_id
    )
    with store.read() as conn:
        for experiment_id, task_id, map_index in conn.execute(query):
            found[int(experiment_id)].add((task_id, int(map_index)))
    return found


__all__ = [
    "OPEN_STATUSES",
    "TaskExperiment",
    "experiments_of_task",
    "members_in_run",
    "open_experiments_of_run",
]
