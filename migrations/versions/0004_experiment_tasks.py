"""Which task instances belong to an experiment, and what each rollout step was.

- ``experiment_tasks``: the creating task instance of an experiment and every task instance that wrote to it
  (``role`` creator / writer). The status listener decides from these only, so an unrelated task of the same
  DAG run cannot fail or cancel an experiment. The upgrade records the creator of every experiment that has
  an Airflow link.
- ``endpoint_models.kind``: deploy / canary / promote / rollback / adjust; NULL for rows written before this
  revision (their kind was never recorded, and guessing it would rewrite history).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = ("creator", "writer")
KINDS = ("deploy", "canary", "promote", "rollback", "adjust")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "experiment_tasks",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("task_id", sa.String(250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False, server_default=sa.text("-1")),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=True,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.PrimaryKeyConstraint(
            "experiment_id", "dag_id", "run_id", "task_id", "map_index", name="pk_experiment_tasks"
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name="fk_experiment_task_experiment",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(_in("role", ROLES), name="ck_experiment_tasks_role"),
    )
    op.create_index(
        "idx_experiment_tasks_task_instance", "experiment_tasks", ["dag_id", "run_id", "task_id", "map_index"]
    )
    op.execute(
        "INSERT INTO experiment_tasks (experiment_id, dag_id, run_id, task_id, map_index, role) "
        "SELECT experiment_id, dag_id, run_id, task_id, COALESCE(map_index, -1), 'creator' FROM experiments "
        "WHERE dag_id IS NOT NULL AND run_id IS NOT NULL AND task_id IS NOT NULL"
    )
    # A column-level CHECK: SQLite can add (and later drop) it without rebuilding the table, whose partial
    # unique index uq_endpoint_models_active a batch rebuild could lose.
    op.execute(
        "ALTER TABLE endpoint_models ADD COLUMN kind VARCHAR(20) "
        f"CONSTRAINT ck_endpoint_models_kind CHECK ({_in('kind', KINDS)})"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE endpoint_models DROP COLUMN kind")  # drops its column-level CHECK with it
    op.drop_index("idx_experiment_tasks_task_instance", table_name="experiment_tasks")
    op.drop_table("experiment_tasks")
