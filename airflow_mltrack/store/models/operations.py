"""Seed 000's tables: preprocessing jobs, deployment endpoints and the endpoint-to-model traffic history;
and the tags of any entity."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    CheckConstraint,
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
    ENDPOINT_STATUSES,
    JOB_STATUSES,
    NAME_LEN,
    NOW,
    ROLLOUT_KINDS,
    TAG_NAME_LEN,
    TAGGABLE_ENTITIES,
    AirflowLinkMixin,
    Base,
    JSONType,
    TimestampMixin,
    _in,
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


class Tag(Base):
    """Seed 002's suggested tags table (names up to MLflow's 250 characters since revision 0008)."""

    __tablename__ = "tags"

    tag_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(TAG_NAME_LEN), nullable=False)
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), server_default=NOW)

    __table_args__ = (UniqueConstraint("name", name="uq_tags_name"),)


class TagAssignment(Base):
    """A tag on any entity: (entity_type, entity_id) names the row. ``value``: NULL for a label, else the
    tag's text (MLflow's key=value tags, revision 0006); one value per tag name and entity (the key)."""

    __tablename__ = "tag_assignments"

    tag_id: Mapped[int] = mapped_column(Integer, nullable=False)
    entity_type: Mapped[str] = mapped_column(String(50), nullable=False)
    entity_id: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), server_default=NOW)
    value: Mapped[str | None] = mapped_column(Text)  # after created_at, where revision 0006 adds it

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
