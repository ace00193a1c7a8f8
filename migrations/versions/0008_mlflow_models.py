"""MLflow 3 logged models, deleted runs and MLflow-length tag names (issue 14).

- ``experiments.deleted_at`` TIMESTAMP NULL: set by MLflow's ``delete_run``, cleared by ``restore_run``. The row
  stays (MLflow calls never delete ours); the experiments list hides deleted ones by default.
- ``projects.deleted_at`` TIMESTAMP NULL: set by MLflow's ``delete_experiment`` (with the ``deleted_at`` of its
  experiments that were not deleted yet), cleared by ``restore_experiment``; the row stays.
- ``tags.name`` VARCHAR(100) -> VARCHAR(250): MLflow's ``MAX_TAG_KEY_LENGTH``, so every tag key its client
  accepts is stored.
- ``models``: what a logged model adds. ``status`` VARCHAR(20) NOT NULL DEFAULT 'Ready' (Pending, Ready,
  Failed: MLflow's PENDING, READY, FAILED; rows written before are ready models), ``source_experiment_id``
  INT NULL (the run that logged it; ``fk_model_source_experiment`` ON DELETE SET NULL),
  ``params`` JSON NULL (the model's text params) and ``deleted_at`` TIMESTAMP NULL (MLflow's
  ``delete_logged_model``).

On SQLite ``models`` and ``tags`` are rebuilt by batch mode (neither has a partial index a rebuild could lose;
``env.py`` turns foreign keys off meanwhile); ``experiments`` and ``projects`` only get a column added in place.

The downgrade drops the columns: deleted runs and MLflow experiments are visible again, logged models lose
their status, params and source run. Tag names longer than 100 characters cannot be kept in VARCHAR(100): those tags (and their
assignments) are deleted first.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
MODEL_STATUSES = ("Pending", "Ready", "Failed")
OLD_TAG_NAME_LEN = 100
TAG_NAME_LEN = 250


def upgrade() -> None:
    op.add_column("experiments", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("projects", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("tags") as batch:
        batch.alter_column(
            "name",
            existing_type=sa.String(OLD_TAG_NAME_LEN),
            type_=sa.String(TAG_NAME_LEN),
            existing_nullable=False,
        )
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("status", sa.String(20), server_default="Ready", nullable=False))
        batch.add_column(sa.Column("source_experiment_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("params", JSON_TYPE, nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint(
            "ck_models_status", "status IN (" + ", ".join(f"'{s}'" for s in MODEL_STATUSES) + ")"
        )
        batch.create_foreign_key(
            "fk_model_source_experiment",
            "experiments",
            ["source_experiment_id"],
            ["experiment_id"],
            ondelete="SET NULL",
        )
        batch.create_index("idx_models_source_experiment_id", ["source_experiment_id"])


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_index("idx_models_source_experiment_id")
        batch.drop_constraint("fk_model_source_experiment", type_="foreignkey")
        batch.drop_constraint("ck_models_status", type_="check")
        batch.drop_column("deleted_at")
        batch.drop_column("params")
        batch.drop_column("source_experiment_id")
        batch.drop_column("status")
    op.execute(f"DELETE FROM tags WHERE length(name) > {OLD_TAG_NAME_LEN}")  # noqa: S608 - constants
    with op.batch_alter_table("tags") as batch:
        batch.alter_column(
            "name",
            existing_type=sa.String(TAG_NAME_LEN),
            type_=sa.String(OLD_TAG_NAME_LEN),
            existing_nullable=False,
        )
    op.drop_column("projects", "deleted_at")
    op.drop_column("experiments", "deleted_at")
