"""The tracking tables as SQLAlchemy Core ``Table`` objects: the one place every query module takes them from.

The typed models in :mod:`airflow_mltrack.store.models` define the schema; queries are written in Core
against these names (``tables.experiments.c.status``), never by re-declaring ``Model.__table__``.
"""

from __future__ import annotations

from sqlalchemy import Table

from airflow_mltrack.store import models as m

projects: Table = m.Project.__table__  # type: ignore[assignment]
datasets: Table = m.Dataset.__table__  # type: ignore[assignment]
models: Table = m.Model.__table__  # type: ignore[assignment]
experiments: Table = m.Experiment.__table__  # type: ignore[assignment]
experiment_tasks: Table = m.ExperimentTask.__table__  # type: ignore[assignment]
metrics: Table = m.Metric.__table__  # type: ignore[assignment]
metric_latest: Table = m.MetricLatest.__table__  # type: ignore[assignment]
preprocessing_jobs: Table = m.PreprocessingJob.__table__  # type: ignore[assignment]
deployment_endpoints: Table = m.DeploymentEndpoint.__table__  # type: ignore[assignment]
endpoint_models: Table = m.EndpointModel.__table__  # type: ignore[assignment]
tags: Table = m.Tag.__table__  # type: ignore[assignment]
tag_assignments: Table = m.TagAssignment.__table__  # type: ignore[assignment]
artifacts: Table = m.Artifact.__table__  # type: ignore[assignment]

__all__ = [
    "artifacts",
    "datasets",
    "deployment_endpoints",
    "endpoint_models",
    "experiment_tasks",
    "experiments",
    "metric_latest",
    "metrics",
    "models",
    "preprocessing_jobs",
    "projects",
    "tag_assignments",
    "tags",
]
