"""The lineage around a dataset: the preprocessing chain up and down, the experiments trained on it,
their models and the endpoints serving them (docs/architecture.md).

Takes the :class:`~airflow_mltrack.store.TrackingStore` first; rows of DAGs the reader may not see are
left out in SQL (``visible_dag_ids``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import func, select

from airflow_mltrack.errors import NotFoundError
from airflow_mltrack.store import tables
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import rows
from airflow_mltrack.store.visibility import only_readable

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

LINEAGE_EXPERIMENTS = 100  # experiments listed in a lineage (the newest); the rest are counted

datasets, experiments, jobs = tables.datasets, tables.experiments, tables.preprocessing_jobs
endpoints, endpoint_models = tables.deployment_endpoints, tables.endpoint_models


class Lineage(TypedDict):
    """The graph around ``dataset``; ``experiments`` are the newest, ``experiments_total`` counts all."""

    dataset: dict[str, Any]
    upstream_jobs: list[dict[str, Any]]
    downstream_jobs: list[dict[str, Any]]
    datasets: list[dict[str, Any]]
    experiments: list[dict[str, Any]]
    experiments_total: int
    models: list[dict[str, Any]]
    deployments: list[dict[str, Any]]


def _walk(all_jobs: list[dict[str, Any]], start: int, source: str, target: str) -> tuple[list[dict[str, Any]], set[int]]:  # fmt: skip
    """The jobs reachable from dataset ``start`` following ``source`` -> ``target`` columns, and the
    datasets met on the way (``start`` included)."""
    seen, found, frontier = {start}, [], [start]
    while frontier:
        current = frontier.pop()
        for job in all_jobs:
            if job[source] == current and job not in found:
                found.append(job)
                following = job[target]
                if following is not None and following not in seen:
                    seen.add(following)
                    frontier.append(following)
    return found, seen


def lineage(
    store: TrackingStore,
    dataset_id: int,
    visible_dag_ids: Collection[str] | None = None,
    experiment_limit: int = LINEAGE_EXPERIMENTS,
) -> Lineage:
    """The lineage around a dataset.

    Upstream: the preprocessing chain that produced it. Downstream: preprocessing jobs from it and from
    every dataset derived from it (transitively), the experiments trained on any of these datasets, their
    models and the endpoints serving those models (every assignment, active or retired).

    Experiments: the newest ``experiment_limit`` (``experiments_total`` counts them all); the models and
    endpoints are those of every experiment, shown or not.
    """
    dataset_id = v.entity_id("dataset_id", dataset_id)
    with store.read() as conn:
        root = conn.execute(select(datasets).where(datasets.c.dataset_id == dataset_id)).first()
        if root is None:
            raise NotFoundError("dataset_id", dataset_id, "no dataset with this id")
        all_jobs = rows(
            conn.execute(
                only_readable(
                    select(jobs).where(jobs.c.project_id == root.project_id), jobs.c.dag_id, visible_dag_ids
                ).order_by(jobs.c.job_id)
            )
        )
        down_jobs, downstream_ids = _walk(all_jobs, dataset_id, "input_dataset_id", "output_dataset_id")
        up_jobs, upstream_ids = _walk(all_jobs, dataset_id, "output_dataset_id", "input_dataset_id")
        dataset_rows = {
            r["dataset_id"]: r
            for r in rows(
                conn.execute(select(datasets).where(datasets.c.dataset_id.in_(downstream_ids | upstream_ids)))
            )
        }
        trained = only_readable(
            select(experiments.c.experiment_id).where(experiments.c.dataset_id.in_(downstream_ids)),
            experiments.c.dag_id,
            visible_dag_ids,
        ).subquery()
        of_trained = experiments.c.experiment_id.in_(select(trained.c.experiment_id))
        newest = (
            select(
                experiments.c.experiment_id,
                experiments.c.name,
                experiments.c.status,
                experiments.c.dataset_id,
                experiments.c.model_id,
                experiments.c.dag_id,
                experiments.c.run_id,
            )
            .where(of_trained)
            .order_by(experiments.c.experiment_id.desc())
            .limit(experiment_limit)
        )
        exp_rows = rows(conn.execute(newest))
        total = int(conn.execute(select(func.count()).select_from(trained)).scalar_one())
        model_ids = set(conn.execute(select(experiments.c.model_id).where(of_trained).distinct()).scalars())
        models = tables.models
        model_rows = rows(
            conn.execute(select(models).where(models.c.model_id.in_(model_ids)).order_by(models.c.model_id))
        )
        deployments = rows(
            conn.execute(
                only_readable(
                    select(endpoint_models, endpoints.c.name.label("endpoint"), endpoints.c.url)
                    .join(endpoints, endpoints.c.endpoint_id == endpoint_models.c.endpoint_id)
                    .where(endpoint_models.c.model_id.in_(model_ids)),
                    endpoint_models.c.dag_id,
                    visible_dag_ids,
                ).order_by(endpoint_models.c.endpoint_model_id)
            )
        )
    return {
        "dataset": dict(root._mapping),
        "upstream_jobs": up_jobs,
        "downstream_jobs": down_jobs,
        "datasets": [dataset_rows[i] for i in sorted(dataset_rows)],
        "experiments": exp_rows,
        "experiments_total": total,
        "models": model_rows,
        "deployments": deployments,
    }


__all__ = ["LINEAGE_EXPERIMENTS", "Lineage", "lineage"]
