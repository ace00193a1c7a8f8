"""The catalog as a reader sees it: projects with their counts, datasets and models with their usage,
endpoints with their traffic and history, preprocessing jobs.

Functions take the :class:`~airflow_mltrack.store.TrackingStore` first; the counts and lists cover only
rows of DAGs the reader may see (``visible_dag_ids``, filtered in SQL: docs/architecture.md, "Visibility").
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from airflow_mltrack.store import tables
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import rows
from airflow_mltrack.store.reads.experiment_list import MAX_PAGE
from airflow_mltrack.store.visibility import only_readable, readable

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

experiments, projects, jobs = tables.experiments, tables.projects, tables.preprocessing_jobs
endpoints, endpoint_models = tables.deployment_endpoints, tables.endpoint_models


def project_summaries(
    store: TrackingStore, visible_dag_ids: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Projects with their counts of datasets, models, visible experiments and endpoints."""

    def counter(table: Any, condition: Any = None) -> Any:
        query = select(func.count()).where(table.c.project_id == projects.c.project_id)
        return (query if condition is None else query.where(condition)).scalar_subquery()

    query = select(
        projects,
        counter(tables.datasets).label("datasets"),
        counter(tables.models).label("models"),
        counter(experiments, readable(experiments.c.dag_id, visible_dag_ids)).label("experiments"),
        counter(endpoints).label("endpoints"),
    ).order_by(projects.c.name)
    with store.read() as conn:
        return rows(conn.execute(query))


def _experiment_counts(
    store: TrackingStore, column: Any, visible_dag_ids: Collection[str] | None
) -> dict[int, int]:
    query = only_readable(
        select(column, func.count()).group_by(column), experiments.c.dag_id, visible_dag_ids
    )
    with store.read() as conn:
        return {int(k): int(n) for k, n in conn.execute(query)}


def datasets_with_usage(
    store: TrackingStore, project: str | None = None, visible_dag_ids: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Datasets (every version) with the number of visible experiments that used each."""
    found = store.list_datasets(project or None)
    counts = _experiment_counts(store, experiments.c.dataset_id, visible_dag_ids)
    for row in found:
        row["experiments"] = counts.get(row["dataset_id"], 0)
    return found


def models_with_usage(
    store: TrackingStore, project: str | None = None, visible_dag_ids: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Models (every version) with their visible experiment count and the active endpoints of deployments
    the reader may see."""
    found = store.list_models(project or None)
    counts = _experiment_counts(store, experiments.c.model_id, visible_dag_ids)
    serving = only_readable(
        select(endpoint_models.c.model_id, endpoints.c.name, endpoint_models.c.traffic_percentage)
        .join(endpoints, endpoints.c.endpoint_id == endpoint_models.c.endpoint_id)
        .where(endpoint_models.c.retired_at.is_(None)),
        endpoint_models.c.dag_id,
        visible_dag_ids,
    ).order_by(endpoints.c.name)
    with store.read() as conn:
        active: dict[int, list[dict[str, Any]]] = {}
        for model_id, name, traffic in conn.execute(serving):
            active.setdefault(int(model_id), []).append({"endpoint": name, "traffic_percentage": traffic})
    for row in found:
        row["experiments"] = counts.get(row["model_id"], 0)
        row["serving"] = active.get(row["model_id"], [])
    return found


def deployments_overview(
    store: TrackingStore, project: str | None = None, visible_dag_ids: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Every endpoint (of a project) with its project name, current split (``active``, highest share
    first) and full history (oldest first): only the assignments made by DAGs the reader may see. Two
    queries, whatever the number of endpoints."""
    query = (
        select(endpoints, projects.c.name.label("project"))
        .join(projects, projects.c.project_id == endpoints.c.project_id)
        .order_by(projects.c.name, endpoints.c.name)
    )
    if project:
        query = query.where(projects.c.name == project)
    with store.read() as conn:
        found = rows(conn.execute(query))
        if not found:
            return []
        assignments = only_readable(
            store.assignment_query().where(
                endpoint_models.c.endpoint_id.in_([row["endpoint_id"] for row in found])
            ),
            endpoint_models.c.dag_id,
            visible_dag_ids,
        ).order_by(endpoint_models.c.endpoint_model_id)
        history: dict[int, list[dict[str, Any]]] = {}
        for row in rows(conn.execute(assignments)):
            history.setdefault(row["endpoint_id"], []).append(row)
    for row in found:
        row["history"] = history.get(row["endpoint_id"], [])
        active = [a for a in row["history"] if a["retired_at"] is None]
        row["active"] = sorted(active, key=lambda a: -a["traffic_percentage"])
    return found


def preprocessing_jobs(
    store: TrackingStore,
    project: str | None = None,
    visible_dag_ids: Collection[str] | None = None,
    limit: int = MAX_PAGE,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Preprocessing jobs (of a project) the reader may see, oldest first, one page."""
    limit = v.integer("limit", limit, minimum=1) or MAX_PAGE
    offset = v.integer("offset", offset, minimum=0) or 0
    query = only_readable(select(jobs), jobs.c.dag_id, visible_dag_ids)
    if project:
        query = query.join(projects, projects.c.project_id == jobs.c.project_id).where(
            projects.c.name == project
        )
    with store.read() as conn:
        return rows(conn.execute(query.order_by(jobs.c.job_id).limit(min(limit, MAX_PAGE)).offset(offset)))


__all__ = [
    "datasets_with_usage",
    "deployments_overview",
    "models_with_usage",
    "preprocessing_jobs",
    "project_summaries",
]
