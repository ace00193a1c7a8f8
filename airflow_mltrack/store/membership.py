"""Which task instances belong to an experiment (table ``experiment_tasks``): its creator and its writers.

The store stays Airflow-free: whoever runs inside a task (the hook) gives the store a :class:`TaskLink`,
and every write to an experiment made through that store records the task instance as a ``writer`` in the
write's own transaction (one ``INSERT .. ON CONFLICT DO NOTHING``). The status listener decides an
experiment's status from these task instances only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, update

from airflow_mltrack.store.tables import experiment_tasks
from airflow_mltrack.store.tables import experiments as _experiments

_KEY = ("experiment_id", "dag_id", "run_id", "task_id", "map_index")


@dataclass(frozen=True)
class TaskLink:
    """The Airflow task instance a store writes for (``map_index`` -1 when not mapped)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int | None = None

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.dag_id, self.run_id, self.task_id, self.map_index)


def link_of(fields: dict[str, Any]) -> TaskLink | None:
    """The TaskLink of validated Airflow link columns (see ``experiments.airflow_link``); None without one."""
    if fields.get("dag_id") is None:
        return None
    map_index = fields.get("map_index")
    return TaskLink(
        fields["dag_id"],
        fields["run_id"],
        fields["task_id"],
        -1 if map_index is None else int(map_index),
        fields.get("try_number"),
    )


def record_member(
    conn: Connection,
    insert: Callable[[Table], Any],
    experiment_id: int,
    link: TaskLink,
    role: str,
    *,
    start: bool = False,
) -> bool:
    """Record ``link`` as a ``role`` of the experiment (nothing when it is already recorded, whatever its
    role); True when the row is new. ``start``: a new writer also moves a Pending experiment to Running
    (a task is writing into it), in the same transaction."""
    stmt = (
        insert(experiment_tasks)
        .values(
            experiment_id=experiment_id,
            dag_id=link.dag_id,
            run_id=link.run_id,
            task_id=link.task_id,
            map_index=link.map_index,
            role=role,
        )
        .on_conflict_do_nothing(index_elements=list(_KEY))
        .returning(experiment_tasks.c.experiment_id)
    )
    new = conn.execute(stmt).first() is not None
    if new and start:
        conn.execute(
            update(_experiments)
            .where(_experiments.c.experiment_id == experiment_id, _experiments.c.status == "Pending")
            .values(status="Running")
        )
    return new
