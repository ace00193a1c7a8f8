"""Artifacts: ``artifacts``, one row per file an experiment or a logged model logged (issue 14).

The bytes live under an Airflow ``ObjectStoragePath`` root (``[mltrack] artifact_root``); this table records
where (``storage_uri``), what (``path`` relative to its owner, ``content_type``) and how to check it
(``size_bytes``, sha256 ``checksum``). The owner is an experiment (``experiment_id``) or a model no run
logged (``model_id``, MLflow's logged models without a run): exactly one of the two is set (CHECK).
``UNIQUE (experiment_id, path)`` and ``UNIQUE (model_id, path)``: logging a file again replaces its row.
Deleting the owner deletes its rows (the stored bytes are the storage's to clean up).

The CHECKs are written in SQL that PostgreSQL and SQLite both run: ``path`` relative, POSIX, not empty and
without ``..`` segments or backslashes; ``checksum`` 64 lowercase hex digits. The downgrade drops the table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PATH_CHECK = (
    "path <> '' AND path NOT LIKE '/%' AND replace(path, '\\', '') = path AND path <> '..' "
    "AND path NOT LIKE '../%' AND path NOT LIKE '%/../%' AND path NOT LIKE '%/..'"
)

#: Exactly one owner: an experiment or a logged model.
OWNER_CHECK = (
    "(experiment_id IS NOT NULL AND model_id IS NULL) OR (experiment_id IS NULL AND model_id IS NOT NULL)"
)


def _hex64(column: str) -> str:
    stripped = column
    for digit in "0123456789abcdef":
        stripped = f"replace({stripped}, '{digit}', '')"
    return f"length({column}) = 64 AND {stripped} = ''"


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("artifact_id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=True),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=True),
        sa.Column("storage_uri", sa.String(2048), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.PrimaryKeyConstraint("artifact_id"),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name="fk_artifact_experiment",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.model_id"], name="fk_artifact_model", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("experiment_id", "path", name="uq_artifact_experiment_path"),
        sa.UniqueConstraint("model_id", "path", name="uq_artifact_model_path"),
        sa.CheckConstraint(OWNER_CHECK, name="ck_artifacts_owner"),
        sa.CheckConstraint(PATH_CHECK, name="ck_artifacts_path"),
        sa.CheckConstraint("size_bytes >= 0", name="ck_artifacts_size_bytes"),
        sa.CheckConstraint(_hex64("checksum"), name="ck_artifacts_checksum"),
    )
    op.create_index("idx_artifacts_experiment_id", "artifacts", ["experiment_id"])


def downgrade() -> None:
    op.drop_index("idx_artifacts_experiment_id", table_name="artifacts")
    op.drop_table("artifacts")
