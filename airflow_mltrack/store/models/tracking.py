"""Seed 002's tables: projects, datasets, models, experiments (with the task instances that belong to
them) and metrics, plus metric_latest."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from airflow_mltrack.store.models.common import (
    AIRFLOW_ID_LEN,
    DATA_TYPES,
    EVALUATION_SETS,
    EXPERIMENT_STATUSES,
    EXPERIMENT_TASK_ROLES,
    METRIC_NAME_LEN,
    MODEL_STATUSES,
    NAME_LEN,
    NAN_AS_NULL,
    NOW,
    PROJECT_STATUSES,
    VERSION_LEN,
    AirflowLinkMixin,
    Base,
    JSONType,
    TimestampMixin,
    _in,
)


class Project(TimestampMixin, Base):
    __tablename__ = "projects"

    project_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    start_date: Mapped[dt.date] = mapped_column(Date, nullable=False, server_default=text("CURRENT_DATE"))
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(50), nullable=False, server_default="Active")
    # MLflow's delete_experiment sets it, restore_experiment clears it (revision 0008).
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

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
    # MLflow 3 logged models (revision 0008): status, the run (our experiment) that logged it, its text
    # params, and MLflow's soft delete.
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="Ready")
    source_experiment_id: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name="fk_model_project", ondelete="CASCADE"
        ),
        # use_alter: experiments.model_id points back at models (a cycle for CREATE/DROP ordering).
        ForeignKeyConstraint(
            ["source_experiment_id"],
            ["experiments.experiment_id"],
            name="fk_model_source_experiment",
            ondelete="SET NULL",
            use_alter=True,
        ),
        UniqueConstraint("project_id", "name", "version", name="uq_model_project_name_version"),
        CheckConstraint(_in("status", MODEL_STATUSES), name="ck_models_status"),
        Index("idx_models_project_id", "project_id"),
        Index("idx_models_name_version", "name", "version"),
        Index("idx_models_framework", "framework"),
        Index("idx_models_source_experiment_id", "source_experiment_id"),
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
    # MLflow's delete_run sets it, restore_run clears it (revision 0008); lists hide deleted experiments.
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

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
