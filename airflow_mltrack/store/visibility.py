"""Which rows a reader may see: the one place a read filters by DAG (docs/architecture.md, "Visibility").

No Airflow imports: the caller (``airflow_mltrack.plugins.auth``) asks the auth manager which of
:func:`dag_ids` the user may read and passes them in as ``visible_dag_ids`` (``None`` means every DAG).
Rows without a ``dag_id`` (written outside Airflow) are visible to every reader. The condition goes into
the SQL of each read, before any LIMIT, never into Python after it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, union

from airflow_mltrack.store import tables

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore


def readable(column: Any, visible_dag_ids: Collection[str] | None) -> Any:
    """The condition "``column`` (a ``dag_id``) is readable", or None when every DAG is."""
    if visible_dag_ids is None:
        return None
    return column.is_(None) | column.in_(sorted(visible_dag_ids))


def only_readable(query: Any, column: Any, visible_dag_ids: Collection[str] | None) -> Any:
    """``query`` limited to the rows whose ``column`` (a ``dag_id``) is readable."""
    condition = readable(column, visible_dag_ids)
    return query if condition is None else query.where(condition)


def distinct_values(store: TrackingStore, column: Any) -> Any:
    """SELECT of the distinct non-null values of an indexed ``column`` (its index's leading column).

    On PostgreSQL a skip scan: a recursive CTE that asks the index for the next larger value, one probe
    per distinct value instead of reading every row (8 DAGs over 100k experiments: 8 probes).
    """
    if not store.is_postgres:
        return select(column.label("value")).where(column.is_not(None)).distinct()
    found = select(func.min(column).label("value")).cte(
        f"distinct_{column.table.name}_{column.name}", recursive=True
    )
    following = (
        select(select(func.min(column)).where(column > found.c.value).scalar_subquery())
        .select_from(found)
        .where(found.c.value.is_not(None))
    )
    found = found.union_all(following)
    return select(found.c.value).where(found.c.value.is_not(None))


def dag_ids(store: TrackingStore) -> set[str]:
    """Every DAG id that appears in the tracking store (to ask the auth manager about)."""
    jobs, assignments = tables.preprocessing_jobs, tables.endpoint_models
    every = union(
        distinct_values(store, tables.experiments.c.dag_id),
        select(jobs.c.dag_id).where(jobs.c.dag_id.is_not(None)),
        select(assignments.c.dag_id).where(assignments.c.dag_id.is_not(None)),
    )
    with store.read() as conn:
        return set(conn.execute(every).scalars())


def visible_experiment_ids(
    store: TrackingStore, ids: Collection[int], visible_dag_ids: Collection[str] | None = None
) -> set[int]:
    """Those of ``ids`` that exist and that the reader may see (hidden and missing ids look the same)."""
    experiments = tables.experiments
    query = only_readable(
        select(experiments.c.experiment_id).where(experiments.c.experiment_id.in_(list(ids))),
        experiments.c.dag_id,
        visible_dag_ids,
    )
    with store.read() as conn:
        return {int(i) for i in conn.execute(query).scalars()}


__all__ = ["dag_ids", "distinct_values", "only_readable", "readable", "visible_experiment_ids"]
