"""What every table model shares: allowed values and sizes, the JSON type, the declarative base and
the timestamp / Airflow-link column mixins."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    MetaData,
    String,
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
# A model's status (revision 0008): MLflow's logged-model PENDING / READY / FAILED; models registered by
# our own operators are ready.
MODEL_STATUSES = ("Pending", "Ready", "Failed")
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
TAG_NAME_LEN = 250  # MLflow's MAX_TAG_KEY_LENGTH (revision 0008; 100 before)
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
