"""The tracking schema as SQLAlchemy 2 typed models.

Seed 002 gives projects, datasets, models, experiments and metrics (names of columns, constraints and
indexes are kept as written there); seed 000 adds preprocessing jobs, deployment endpoints and the
endpoint-to-model associative entity. Every deviation from the seeds is listed in ``docs/schema.md``.
"""

from __future__ import annotations

from airflow_mltrack.store.models.artifacts import ARTIFACT_PATH_LEN, Artifact
from airflow_mltrack.store.models.common import (
    AIRFLOW_ID_LEN,
    DATA_TYPES,
    ENDPOINT_STATUSES,
    EVALUATION_SETS,
    EXPERIMENT_STATUSES,
    EXPERIMENT_TASK_ROLES,
    JOB_STATUSES,
    METRIC_NAME_LEN,
    MODEL_STATUSES,
    NAME_LEN,
    NAN_AS_NULL,
    NOW,
    PROJECT_STATUSES,
    ROLLOUT_KINDS,
    TAG_NAME_LEN,
    TAGGABLE_ENTITIES,
    VERSION_LEN,
    AirflowLinkMixin,
    Base,
    JSONType,
    TimestampMixin,
)
from airflow_mltrack.store.models.operations import (
    TAGGABLE_TABLES,
    DeploymentEndpoint,
    EndpointModel,
    PreprocessingJob,
    Tag,
    TagAssignment,
)
from airflow_mltrack.store.models.tracking import (
    Dataset,
    Experiment,
    ExperimentTask,
    Metric,
    MetricLatest,
    Model,
    Project,
)

__all__ = [
    "AIRFLOW_ID_LEN",
    "ARTIFACT_PATH_LEN",
    "Artifact",
    "AirflowLinkMixin",
    "Base",
    "DATA_TYPES",
    "Dataset",
    "DeploymentEndpoint",
    "ENDPOINT_STATUSES",
    "EVALUATION_SETS",
    "EXPERIMENT_STATUSES",
    "EXPERIMENT_TASK_ROLES",
    "EndpointModel",
    "Experiment",
    "ExperimentTask",
    "JOB_STATUSES",
    "JSONType",
    "METRIC_NAME_LEN",
    "MODEL_STATUSES",
    "Metric",
    "MetricLatest",
    "Model",
    "NAME_LEN",
    "NAN_AS_NULL",
    "NOW",
    "PROJECT_STATUSES",
    "PreprocessingJob",
    "Project",
    "ROLLOUT_KINDS",
    "TAGGABLE_ENTITIES",
    "TAGGABLE_TABLES",
    "TAG_NAME_LEN",
    "Tag",
    "TagAssignment",
    "TimestampMixin",
    "VERSION_LEN",
]
