"""Initial tracking schema: seed 002 (projects, datasets, models, experiments, metrics) plus
preprocessing jobs, deployment endpoints, endpoint models, tags and tag assignments.

Written by hand (a frozen snapshot: it does not import the models), so later model edits need their own
revision. On PostgreSQL it also installs ``mltrack_touch_updated_at()`` and a BEFORE UPDATE trigger on every
table with ``updated_at``, so the column moves even on raw SQL updates.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("CURRENT_TIMESTAMP")
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
AIRFLOW_ID_LEN = 250

# Tables that carry updated_at (and get the PostgreSQL touch trigger).
TOUCHED_TABLES = (
    "projects",
    "datasets",
    "models",
    "experiments",
    "preprocessing_jobs",
    "deployment_endpoints",
)

TOUCH_FUNCTION = """
CREATE OR REPLACE FUNCTION mltrack_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- An UPDATE that sets updated_at itself (the ORM's onupdate, a backfill) keeps its value;
    -- any other UPDATE moves it to the transaction's timestamp.
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := CURRENT_TIMESTAMP;
    END IF;
    RETURN NEW;
END;
$$
"""


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=True),
    ]


def _airflow_link() -> list[sa.Column]:
    return [
        sa.Column("dag_id", sa.String(AIRFLOW_ID_LEN), nullable=True),
        sa.Column("run_id", sa.String(AIRFLOW_ID_LEN), nullable=True),
        sa.Column("task_id", sa.String(AIRFLOW_ID_LEN), nullable=True),
        sa.Column("map_index", sa.Integer(), nullable=True),
        sa.Column("try_number", sa.Integer(), nullable=True),
    ]


def _nulls_not_distinct_supported() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    version = bind.dialect.server_version_info
    # Offline (--sql) there is no server to ask: assume a supported one (15+).
    return version is None or version >= (15,)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("start_date", sa.Date(), server_default=sa.text("CURRENT_DATE"), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(50), server_default="Active", nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("project_id"),
        sa.UniqueConstraint("name", name="projects_name_key"),
        sa.CheckConstraint(
            "status IN ('Planning', 'Active', 'Completed', 'Archived')", name="projects_status_check"
        ),
    )
    op.create_index("idx_projects_name", "projects", ["name"])
    op.create_index("idx_projects_status", "projects", ["status"])

    op.create_table(
        "datasets",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(50), server_default="1.0", nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("source_url", sa.String(512), nullable=True),
        sa.Column("data_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("num_records", sa.BigInteger(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("dataset_id"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name="fk_dataset_project", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("project_id", "name", "version", name="uq_dataset_project_name_version"),
        sa.CheckConstraint(
            "data_type IN ('Image', 'Text', 'Tabular', 'Audio', 'Video', 'Other')",
            name="datasets_data_type_check",
        ),
        sa.CheckConstraint("size_bytes IS NULL OR size_bytes >= 0", name="ck_datasets_size_bytes"),
        sa.CheckConstraint("num_records IS NULL OR num_records >= 0", name="ck_datasets_num_records"),
    )
    op.create_index("idx_datasets_project_id", "datasets", ["project_id"])
    op.create_index("idx_datasets_name_version", "datasets", ["name", "version"])
    op.create_index("idx_datasets_data_type", "datasets", ["data_type"])

    op.create_table(
        "models",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(50), server_default="1.0", nullable=False),
        sa.Column("architecture", sa.String(255), nullable=True),
        sa.Column("framework", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("model_path", sa.String(1024), nullable=True),
        sa.Column("model_type", sa.String(100), nullable=True),
        sa.Column("input_schema", JSON_TYPE, nullable=True),
        sa.Column("output_schema", JSON_TYPE, nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("model_id"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name="fk_model_project", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("project_id", "name", "version", name="uq_model_project_name_version"),
    )
    op.create_index("idx_models_project_id", "models", ["project_id"])
    op.create_index("idx_models_name_version", "models", ["name", "version"])
    op.create_index("idx_models_framework", "models", ["framework"])

    op.create_table(
        "experiments",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(50), server_default="Pending", nullable=False),
        sa.Column("hyperparameters", JSON_TYPE, nullable=True),
        sa.Column("code_version", sa.String(255), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        *_timestamps(),
        *_airflow_link(),
        sa.PrimaryKeyConstraint("experiment_id"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name="fk_experiment_project", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.model_id"], name="fk_experiment_model", ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.dataset_id"], name="fk_experiment_dataset", ondelete="RESTRICT"
        ),
        sa.CheckConstraint(
            "status IN ('Pending', 'Running', 'Completed', 'Failed', 'Cancelled')",
            name="experiments_status_check",
        ),
        sa.CheckConstraint("end_time IS NULL OR end_time >= start_time", name="ck_experiments_times"),
    )
    op.create_index("idx_experiments_project_id", "experiments", ["project_id"])
    op.create_index("idx_experiments_model_id", "experiments", ["model_id"])
    op.create_index("idx_experiments_dataset_id", "experiments", ["dataset_id"])
    op.create_index("idx_experiments_status", "experiments", ["status"])
    op.create_index("idx_experiments_dag_run", "experiments", ["dag_id", "run_id"])
    op.create_index(
        "uq_experiment_airflow_link",
        "experiments",
        ["dag_id", "run_id", "task_id", "map_index", "name"],
        unique=True,
        postgresql_where=sa.text("dag_id IS NOT NULL"),
        sqlite_where=sa.text("dag_id IS NOT NULL"),
    )

    op.create_table(
        "metrics",
        sa.Column("metric_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("evaluation_set", sa.String(50), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=NOW, nullable=True),
        sa.PrimaryKeyConstraint("metric_id"),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name="fk_metric_experiment",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "experiment_id",
            "name",
            "step",
            "evaluation_set",
            name="uq_metric_experiment_name_step_evalset",
            postgresql_nulls_not_distinct=_nulls_not_distinct_supported(),
        ),
        sa.CheckConstraint(
            "evaluation_set IN ('train', 'validation', 'test', 'inference')",
            name="metrics_evaluation_set_check",
        ),
    )
    op.create_index(
        "uq_metric_stepless",
        "metrics",
        ["experiment_id", "name", "evaluation_set"],
        unique=True,
        postgresql_where=sa.text("step IS NULL"),
        sqlite_where=sa.text("step IS NULL"),
    )
    op.create_index("idx_metrics_experiment_id", "metrics", ["experiment_id"])
    op.create_index("idx_metrics_name", "metrics", ["name"])
    op.create_index("idx_metrics_evaluation_set", "metrics", ["evaluation_set"])

    op.create_table(
        "preprocessing_jobs",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("input_dataset_id", sa.Integer(), nullable=False),
        sa.Column("output_dataset_id", sa.Integer(), nullable=True),
        sa.Column("parameters", JSON_TYPE, nullable=True),
        sa.Column("status", sa.String(50), server_default="Pending", nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        *_timestamps(),
        *_airflow_link(),
        sa.PrimaryKeyConstraint("job_id"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name="fk_prepjob_project", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["input_dataset_id"],
            ["datasets.dataset_id"],
            name="fk_prepjob_input_dataset",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["output_dataset_id"],
            ["datasets.dataset_id"],
            name="fk_prepjob_output_dataset",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(
            "status IN ('Pending', 'Running', 'Completed', 'Failed', 'Cancelled')",
            name="ck_preprocessing_jobs_status",
        ),
        sa.CheckConstraint(
            "output_dataset_id IS NULL OR output_dataset_id <> input_dataset_id",
            name="ck_preprocessing_jobs_distinct_datasets",
        ),
    )
    op.create_index("idx_preprocessing_jobs_project_id", "preprocessing_jobs", ["project_id"])
    op.create_index("idx_preprocessing_jobs_input", "preprocessing_jobs", ["input_dataset_id"])
    op.create_index("idx_preprocessing_jobs_output", "preprocessing_jobs", ["output_dataset_id"])
    op.create_index(
        "uq_preprocessing_job_airflow_link",
        "preprocessing_jobs",
        ["dag_id", "run_id", "task_id", "map_index", "name"],
        unique=True,
        postgresql_where=sa.text("dag_id IS NOT NULL"),
        sqlite_where=sa.text("dag_id IS NOT NULL"),
    )

    op.create_table(
        "deployment_endpoints",
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("url", sa.String(512), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(50), server_default="Active", nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("endpoint_id"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name="fk_endpoint_project", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("project_id", "name", name="uq_endpoint_project_name"),
        sa.CheckConstraint(
            "status IN ('Active', 'Inactive', 'Retired')", name="ck_deployment_endpoints_status"
        ),
    )
    op.create_index("idx_deployment_endpoints_project_id", "deployment_endpoints", ["project_id"])

    op.create_table(
        "endpoint_models",
        sa.Column("endpoint_model_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("traffic_percentage", sa.Double(), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dag_id", sa.String(AIRFLOW_ID_LEN), nullable=True),
        sa.Column("run_id", sa.String(AIRFLOW_ID_LEN), nullable=True),
        sa.PrimaryKeyConstraint("endpoint_model_id"),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["deployment_endpoints.endpoint_id"],
            name="fk_endpoint_model_endpoint",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.model_id"], name="fk_endpoint_model_model", ondelete="RESTRICT"
        ),
        sa.CheckConstraint(
            "traffic_percentage >= 0 AND traffic_percentage <= 100", name="ck_endpoint_models_traffic"
        ),
        sa.CheckConstraint(
            "retired_at IS NULL OR retired_at >= promoted_at", name="ck_endpoint_models_times"
        ),
    )
    op.create_index("idx_endpoint_models_endpoint_id", "endpoint_models", ["endpoint_id"])
    op.create_index("idx_endpoint_models_model_id", "endpoint_models", ["model_id"])
    op.create_index(
        "uq_endpoint_models_active",
        "endpoint_models",
        ["endpoint_id", "model_id"],
        unique=True,
        postgresql_where=sa.text("retired_at IS NULL"),
        sqlite_where=sa.text("retired_at IS NULL"),
    )

    op.create_table(
        "tags",
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=True),
        sa.PrimaryKeyConstraint("tag_id"),
        sa.UniqueConstraint("name", name="uq_tags_name"),
    )

    op.create_table(
        "tag_assignments",
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.Column("entity_type", sa.String(50), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=True),
        sa.PrimaryKeyConstraint("tag_id", "entity_type", "entity_id", name="pk_tag_assignments"),
        sa.ForeignKeyConstraint(
            ["tag_id"], ["tags.tag_id"], name="fk_tag_assignment_tag", ondelete="CASCADE"
        ),
        sa.CheckConstraint(
            "entity_type IN ('project', 'dataset', 'model', 'experiment', 'preprocessing_job', "
            "'deployment_endpoint')",
            name="ck_tag_assignments_entity_type",
        ),
    )
    op.create_index("idx_tag_assignments_entity", "tag_assignments", ["entity_type", "entity_id"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(TOUCH_FUNCTION)
        for table in TOUCHED_TABLES:
            op.execute(
                f"CREATE TRIGGER trg_{table}_touch_updated_at BEFORE UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION mltrack_touch_updated_at()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TOUCHED_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_touch_updated_at ON {table}")
        op.execute("DROP FUNCTION IF EXISTS mltrack_touch_updated_at()")

    op.drop_index("idx_tag_assignments_entity", table_name="tag_assignments")
    op.drop_table("tag_assignments")
    op.drop_table("tags")

    op.drop_index("uq_endpoint_models_active", table_name="endpoint_models")
    op.drop_index("idx_endpoint_models_model_id", table_name="endpoint_models")
    op.drop_index("idx_endpoint_models_endpoint_id", table_name="endpoint_models")
    op.drop_table("endpoint_models")

    op.drop_index("idx_deployment_endpoints_project_id", table_name="deployment_endpoints")
    op.drop_table("deployment_endpoints")

    op.drop_index("uq_preprocessing_job_airflow_link", table_name="preprocessing_jobs")
    op.drop_index("idx_preprocessing_jobs_output", table_name="preprocessing_jobs")
    op.drop_index("idx_preprocessing_jobs_input", table_name="preprocessing_jobs")
    op.drop_index("idx_preprocessing_jobs_project_id", table_name="preprocessing_jobs")
    op.drop_table("preprocessing_jobs")

    op.drop_index("idx_metrics_evaluation_set", table_name="metrics")
    op.drop_index("idx_metrics_name", table_name="metrics")
    op.drop_index("idx_metrics_experiment_id", table_name="metrics")
    op.drop_index("uq_metric_stepless", table_name="metrics")
    op.drop_table("metrics")

    op.drop_index("uq_experiment_airflow_link", table_name="experiments")
    op.drop_index("idx_experiments_dag_run", table_name="experiments")
    op.drop_index("idx_experiments_status", table_name="experiments")
    op.drop_index("idx_experiments_dataset_id", table_name="experiments")
    op.drop_index("idx_experiments_model_id", table_name="experiments")
    op.drop_index("idx_experiments_project_id", table_name="experiments")
    op.drop_table("experiments")

    op.drop_index("idx_models_framework", table_name="models")
    op.drop_index("idx_models_name_version", table_name="models")
    op.drop_index("idx_models_project_id", table_name="models")
    op.drop_table("models")

    op.drop_index("idx_datasets_data_type", table_name="datasets")
    op.drop_index("idx_datasets_name_version", table_name="datasets")
    op.drop_index("idx_datasets_project_id", table_name="datasets")
    op.drop_table("datasets")

    op.drop_index("idx_projects_status", table_name="projects")
    op.drop_index("idx_projects_name", table_name="projects")
    op.drop_table("projects")
