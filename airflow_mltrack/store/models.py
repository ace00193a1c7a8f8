"""The tracking schema as SQLAlchemy 2 typed models.

Seed 002 gives projects, datasets, models, experiments and metrics (names of columns, constraints and
indexes are kept as written there); seed 000 adds preprocessing jobs, deployment endpoints and the
endpoint-to-model associative entity. Every deviation from the seeds is listed in ``docs/schema.md``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Allowed values of every CHECK-listed column (seed 002 as written, plus the added tables).
PROJECT_STATUSES = ("Planning", "Active", "Completed", "Archived")
DATA_TYPES = ("Image", "Text", "Tabular", "Audio", "Video", "Other")
EXPERIMENT_STATUSES = ("Pending", "Running", "Completed", "Failed", "Cancelled")
EVALUATION_SETS = ("train", "validation", "test", "inference")
JOB_STATUSES = EXPERIMENT_STATUSES
ENDPOINT_STATUSES = ("Active", "Inactive", "Retired")
# What a row of endpoint_models records (revision 0004): the first model of an endpoint ("deploy"), a new
# model beside others ("canary"), a model taken to 100 % ("promote"), a model that served this endpoint
# before coming back ("rollback"), or a traffic change of a model already serving ("adjust").
ROLLOUT_KINDS = ("deploy", "canary", "promote", "rollback", "adjust")
# How a task instance belongs to an experiment (revision 0004): it created it, or it wrote to it.
EXPERIMENT_TASK_ROLES = ("creator", "writer")
TAGGABLE_ENTITIES = (
    "project",
    "dataset",
    "model",
    "experiment",
    "preprocessing_job",
    "deployment_endpoint",
)

# Column sizes shared with validation.
NAME_LEN = 255
VERSION_LEN = 50
METRIC_NAME_LEN = 100
AIRFLOW_ID_LEN = 250  # Airflow's own ID_LEN for dag_id / task_id / run_id

JSONType = JSON().with_variant(JSONB(), "postgresql")
# Column info: nullable on these dialects only, where NULL stands for NaN (SQLite's REAL has no NaN; revision
# 0005). ``mltrack db check`` accepts the difference there.
NAN_AS_NULL = {"nullable_on": ("sqlite",)}
NOW = text("CURRENT_TIMESTAMP")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base holding the tracking metadata."""

    metadata = MetaData()


class TimestampMixin:
    """created_at at insert; updated_at moves on every update (ORM onupdate + PostgreSQL trigger)."""

    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), server_default=NOW)
    updated_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=NOW, onupdate=func.current_timestamp()
    )


class AirflowLinkMixin:
    """The Airflow task instance that created a row (nullable: rows may come from plain Python)."""

    dag_id: Mapped[str | None] = mapped_column(String(AIRFLOW_ID_LEN))
    run_id: Mapped[str | None] = mapped_column(String(AIRFLOW_ID_LEN))
    task_id: Mapped[str | None] = mapped_column(String(AIRFLOW_ID_LEN))
    map_index: Mapped[int | None] = mapped_column(Integer)
    try_number: Mapped[int | None] = mapped_column(Integer)


class Project(TimestampMixin, Base):
    __tablename__ = "projects"

    project_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    start_date: Mapped[dt.date] = mapped_column(Date, nullable=False, server_default=text("CURRENT_DATE"))
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(50), nullable=False, server_default="Active")

    __table_args__ = (
        UniqueConstraint("name", name="projects_name_key"),
        CheckConstraint(_in("status", PROJECT_STATUSES), name="projects_status_check"),
        Index("idx_projects_name", "name"),
        Index("idx_projects_status", "status"),
    )


class Dataset(TimestampMixin, Base):
    __tablename__ = "datasets"

    dataset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(NAME_LEN), nullable=False)
    # Deviation: NOT NULL (seed: nullable). A NULL version would defeat uq_dataset_project_name_version.
    version: Mapped[str] = mapped_column(String(VERSION_LEN), nullable=False, server_default="1.0")
    description: Mapped[str | None] = mapped_column(Text)
    source_url: Mapped[str | None] = mapped_column(String(512))
    data_type: Mapped[str] = mapped_column(String(100), nullable=False)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    num_records: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name="fk_dataset_project", ondelete="CASCADE"
        ),
        UniqueConstraint("project_id", "name", "version", name="uq_dataset_project_name_version"),
        CheckConstraint(_in("data_type", DATA_TYPES), name="datasets_data_type_check"),
        CheckConstraint("size_bytes IS NULL OR size_bytes >= 0", name="ck_datasets_size_bytes"),
        CheckConstraint("num_records IS NULL OR num_records >= 0", name="ck_datasets_num_records"),
        Index("idx_datasets_project_id", "project_id"),
        Index("idx_datasets_name_version", "name", "version"),
        Index("idx_datasets_data_type", "data_type"),
    )


class Model(TimestampMixin, Base):
    __tablename__ = "models"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(NAME_LEN), nullable=False)
    # Deviation: NOT NULL, as for datasets.version.
    version: Mapped[str] = mapped_column(String(VERSION_LEN), nullable=False, server_default="1.0")
    architecture: Mapped[str | None] = mapped_column(String(NAME_LEN))
    framework: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    # Seed 002's suggested extension: model artifact fields.
    model_path: Mapped[str | None] = mapped_column(String(1024))
    model_type: Mapped[str | None] = mapped_column(String(100))
    input_schema: Mapped[Any | None] = mapped_column(JSONType)
    output_schema: Mapped[Any | None] = mapped_column(JSONType)

    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name="fk_model_project", ondelete="CASCADE"
        ),
        UniqueConstraint("project_id", "name", "version", name="uq_model_project_name_version"),
        Index("idx_models_project_id", "project_id"),
        Index("idx_models_name_version", "name", "version"),
        Index("idx_models_framework", "framework"),
    )


class Experiment(TimestampMixin, AirflowLinkMixin, Base):
    __tablename__ = "experiments"

    experiment_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, nullable=False)
    model_id: Mapped[int] = mapped_column(Integer, nullable=False)
    dataset_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(NAME_LEN), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=NOW
    )
    end_time: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(50), nullable=False, server_default="Pending")
    hyperparameters: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    code_version: Mapped[str | None] = mapped_column(String(NAME_LEN))
    notes: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name="fk_experiment_project", ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["model_id"], ["models.model_id"], name="fk_experiment_model", ondelete="RESTRICT"
        ),
        ForeignKeyConstraint(
            ["dataset_id"], ["datasets.dataset_id"], name="fk_experiment_dataset", ondelete="RESTRICT"
        ),
        CheckConstraint(_in("status", EXPERIMENT_STATUSES), name="experiments_status_check"),
        CheckConstraint("end_time IS NULL OR end_time >= start_time", name="ck_experiments_times"),
        Index("idx_experiments_project_id", "project_id"),
        Index("idx_experiments_model_id", "model_id"),
        Index("idx_experiments_dataset_id", "dataset_id"),
        Index("idx_experiments_status", "status"),
        Index("idx_experiments_dag_run", "dag_id", "run_id"),
        # The same creating task instance (any try) finds the same experiment again.
        Index(
            "uq_experiment_airflow_link",
            "dag_id",
            "run_id",
            "task_id",
            "map_index",
            "name",
            unique=True,
            postgresql_where=text("dag_id IS NOT NULL"),
            sqlite_where=text("dag_id IS NOT NULL"),
        ),
        # Hyperparameter filters (``@>`` containment) at scale; PostgreSQL only (revision 0003).
        Index(
            "idx_experiments_hyperparameters",
            "hyperparameters",
            postgresql_using="gin",
            postgresql_ops={"hyperparameters": "jsonb_path_ops"},
            info={"dialects": ("postgresql",)},
        ),
    )


class Metric(Base):
    __tablename__ = "metrics"

    # Deviation: BIGINT (seed: SERIAL); metrics is the one table that outgrows 2^31 rows.
    metric_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(METRIC_NAME_LEN), nullable=False)
    # Deviation: DOUBLE PRECISION (seed: DECIMAL(18,9)); see docs/schema.md. NOT NULL, except on SQLite,
    # whose REAL has no NaN: there NULL is NaN (revision 0005).
    value: Mapped[float] = mapped_column(Double, nullable=False, info=NAN_AS_NULL)
    step: Mapped[int | None] = mapped_column(Integer)
    evaluation_set: Mapped[str] = mapped_column(String(50), nullable=False)
    recorded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), server_default=NOW)

    __table_args__ = (
        ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name="fk_metric_experiment",
            ondelete="CASCADE",
        ),
        # NULLS NOT DISTINCT on PostgreSQL 15+: a step-less metric has one row, however often it is logged.
        UniqueConstraint(
            "experiment_id",
            "name",
            "step",
            "evaluation_set",
            name="uq_metric_experiment_name_step_evalset",
            postgresql_nulls_not_distinct=True,
        ),
        # The same guarantee where NULLS NOT DISTINCT does not exist (SQLite): one step-less row per key.
        Index(
            "uq_metric_stepless",
            "experiment_id",
            "name",
            "evaluation_set",
            unique=True,
            postgresql_where=text("step IS NULL"),
            sqlite_where=text("step IS NULL"),
        ),
        CheckConstraint(_in("evaluation_set", EVALUATION_SETS), name="metrics_evaluation_set_check"),
        Index("idx_metrics_experiment_id", "experiment_id"),
        Index("idx_metrics_name", "name"),
        Index("idx_metrics_evaluation_set", "evaluation_set"),
    )


class MetricLatest(Base):
    """The final value of each (experiment, metric, split), kept in the transaction of every metric write.

    ``value``/``step``: the step-less value if there is one, else the value at the highest step;
    ``min_value``/``max_value``/``points`` over all of the key's rows. Leaderboards and the metric sort of
    the experiments list read this table instead of ranking every row of ``metrics``.
    """

    __tablename__ = "metric_latest"

    experiment_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(METRIC_NAME_LEN), nullable=False)
    evaluation_set: Mapped[str] = mapped_column(String(50), nullable=False)
    step: Mapped[int | None] = mapped_column(Integer)
    # NULL is NaN on SQLite, as in metrics.value (revision 0005).
    value: Mapped[float] = mapped_column(Double, nullable=False, info=NAN_AS_NULL)
    min_value: Mapped[float] = mapped_column(Double, nullable=False, info=NAN_AS_NULL)
    max_value: Mapped[float] = mapped_column(Double, nullable=False, info=NAN_AS_NULL)
    points: Mapped[int] = mapped_column(Integer, nullable=False)
    recorded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        PrimaryKeyConstraint("experiment_id", "name", "evaluation_set", name="pk_metric_latest"),
        ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name="fk_metric_latest_experiment",
            ondelete="CASCADE",
        ),
        # Sort by a metric: walk one (name, split) in value order; experiment_id breaks ties (revision 0003).
        Index("idx_metric_latest_key_value", "name", "evaluation_set", "value", "experiment_id"),
    )


class PreprocessingJob(TimestampMixin, AirflowLinkMixin, Base):
    """Seed 000's PreprocessingJob: one input dataset turned into a derived dataset."""

    __tablename__ = "preprocessing_jobs"

    job_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(NAME_LEN), nullable=False)
    input_dataset_id: Mapped[int] = mapped_column(Integer, nullable=False)
    output_dataset_id: Mapped[int | None] = mapped_column(Integer)
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(50), nullable=False, server_default="Pending")
    start_time: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=NOW
    )
    end_time: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name="fk_prepjob_project", ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["input_dataset_id"],
            ["datasets.dataset_id"],
            name="fk_prepjob_input_dataset",
            ondelete="RESTRICT",
        ),
        ForeignKeyConstraint(
            ["output_dataset_id"],
            ["datasets.dataset_id"],
            name="fk_prepjob_output_dataset",
            ondelete="RESTRICT",
        ),
        CheckConstraint(_in("status", JOB_STATUSES), name="ck_preprocessing_jobs_status"),
        CheckConstraint(
            "output_dataset_id IS NULL OR output_dataset_id <> input_dataset_id",
            name="ck_preprocessing_jobs_distinct_datasets",
        ),
        Index("idx_preprocessing_jobs_project_id", "project_id"),
        Index("idx_preprocessing_jobs_input", "input_dataset_id"),
        Index("idx_preprocessing_jobs_output", "output_dataset_id"),
        Index(
            "uq_preprocessing_job_airflow_link",
            "dag_id",
            "run_id",
            "task_id",
            "map_index",
            "name",
            unique=True,
            postgresql_where=text("dag_id IS NOT NULL"),
            sqlite_where=text("dag_id IS NOT NULL"),
        ),
    )


class DeploymentEndpoint(TimestampMixin, Base):
    """Seed 000's DeploymentEndpoint: a named serving endpoint of a project."""

    __tablename__ = "deployment_endpoints"

    endpoint_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(NAME_LEN), nullable=False)
    url: Mapped[str | None] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(50), nullable=False, server_default="Active")

    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name="fk_endpoint_project", ondelete="CASCADE"
        ),
        UniqueConstraint("project_id", "name", name="uq_endpoint_project_name"),
        CheckConstraint(_in("status", ENDPOINT_STATUSES), name="ck_deployment_endpoints_status"),
        Index("idx_deployment_endpoints_project_id", "project_id"),
    )


class EndpointModel(Base):
    """Seed 000's associative entity: one model serving a share of an endpoint's traffic for a period.

    A traffic change retires the current row and inserts a new one, so the rows are the rollout history
    (canary -> promotion). Active rows (retired_at IS NULL) of an endpoint sum to at most 100.
    """

    __tablename__ = "endpoint_models"

    endpoint_model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(Integer, nullable=False)
    model_id: Mapped[int] = mapped_column(Integer, nullable=False)
    traffic_percentage: Mapped[float] = mapped_column(Double, nullable=False)
    promoted_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=NOW
    )
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    dag_id: Mapped[str | None] = mapped_column(String(AIRFLOW_ID_LEN))
    run_id: Mapped[str | None] = mapped_column(String(AIRFLOW_ID_LEN))
    # NULL for rows written before revision 0004 (their kind was not recorded).
    kind: Mapped[str | None] = mapped_column(String(20))

    __table_args__ = (
        CheckConstraint(_in("kind", ROLLOUT_KINDS), name="ck_endpoint_models_kind"),
        ForeignKeyConstraint(
            ["endpoint_id"],
            ["deployment_endpoints.endpoint_id"],
            name="fk_endpoint_model_endpoint",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["model_id"], ["models.model_id"], name="fk_endpoint_model_model", ondelete="RESTRICT"
        ),
        CheckConstraint(
            "traffic_percentage >= 0 AND traffic_percentage <= 100",
            name="ck_endpoint_models_traffic",
        ),
        CheckConstraint("retired_at IS NULL OR retired_at >= promoted_at", name="ck_endpoint_models_times"),
        Index("idx_endpoint_models_endpoint_id", "endpoint_id"),
        Index("idx_endpoint_models_model_id", "model_id"),
        # One active row per model on an endpoint.
        Index(
            "uq_endpoint_models_active",
            "endpoint_id",
            "model_id",
            unique=True,
            postgresql_where=text("retired_at IS NULL"),
            sqlite_where=text("retired_at IS NULL"),
        ),
    )


class ExperimentTask(Base):
    """A task instance that belongs to an experiment: the one that created it, and every one that wrote to it.

    The status listener decides an experiment's status from these task instances only (revision 0004), so
    an unrelated task of the same DAG run cannot fail or cancel it.
    """

    __tablename__ = "experiment_tasks"

    experiment_id: Mapped[int] = mapped_column(Integer, nullable=False)
    dag_id: Mapped[str] = mapped_column(String(AIRFLOW_ID_LEN), nullable=False)
    run_id: Mapped[str] = mapped_column(String(AIRFLOW_ID_LEN), nullable=False)
    task_id: Mapped[str] = mapped_column(String(AIRFLOW_ID_LEN), nullable=False)
    map_index: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("-1"))
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), server_default=NOW)

    __table_args__ = (
        PrimaryKeyConstraint(
            "experiment_id", "dag_id", "run_id", "task_id", "map_index", name="pk_experiment_tasks"
        ),
        ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name="fk_experiment_task_experiment",
            ondelete="CASCADE",
        ),
        CheckConstraint(_in("role", EXPERIMENT_TASK_ROLES), name="ck_experiment_tasks_role"),
        # The listener's lookup: which experiments does this task instance belong to?
        Index("idx_experiment_tasks_task_instance", "dag_id", "run_id", "task_id", "map_index"),
    )


class Tag(Base):
    """Seed 002's suggested tags table."""

    __tablename__ = "tags"

    tag_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), server_default=NOW)

    __table_args__ = (UniqueConstraint("name", name="uq_tags_name"),)


class TagAssignment(Base):
    """A tag on any entity: (entity_type, entity_id) names the row."""

    __tablename__ = "tag_assignments"

    tag_id: Mapped[int] = mapped_column(Integer, nullable=False)
    entity_type: Mapped[str] = mapped_column(String(50), nullable=False)
    entity_id: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), server_default=NOW)

    __table_args__ = (
        PrimaryKeyConstraint("tag_id", "entity_type", "entity_id", name="pk_tag_assignments"),
        ForeignKeyConstraint(["tag_id"], ["tags.tag_id"], name="fk_tag_assignment_tag", ondelete="CASCADE"),
        CheckConstraint(_in("entity_type", TAGGABLE_ENTITIES), name="ck_tag_assignments_entity_type"),
        Index("idx_tag_assignments_entity", "entity_type", "entity_id"),
    )


# entity_type of tag_assignments -> (table, primary key column) it points at.
TAGGABLE_TABLES: dict[str, tuple[str, str]] = {
    "project": ("projects", "project_id"),
    "dataset": ("datasets", "dataset_id"),
    "model": ("models", "model_id"),
    "experiment": ("experiments", "experiment_id"),
    "preprocessing_job": ("preprocessing_jobs", "job_id"),
    "deployment_endpoint": ("deployment_endpoints", "endpoint_id"),
}

__all__ = [
    "Base",
    "Dataset",
    "DeploymentEndpoint",
    "EndpointModel",
    "Experiment",
    "ExperimentTask",
    "Metric",
    "MetricLatest",
    "Model",
    "PreprocessingJob",
    "Project",
    "Tag",
    "TagAssignment",
]
