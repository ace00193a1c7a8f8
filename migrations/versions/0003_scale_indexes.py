"""Indexes for queries at scale: hyperparameter containment, and the metric sort's tie-breaker.

- ``idx_experiments_hyperparameters``: GIN (``jsonb_path_ops``) on ``experiments.hyperparameters``, so the
  ``hyperparameters @> '{...}'`` filter of the experiment list and ``find_experiments`` is an index scan
  instead of a scan of every experiment. PostgreSQL only (SQLite has no JSON index of this kind).
- ``idx_metric_latest_key_value`` gains ``experiment_id``: the experiment list sorted by a metric walks one
  (name, split) of ``metric_latest`` in (value, experiment_id) order and stops after a page.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "idx_experiments_hyperparameters",
            "experiments",
            ["hyperparameters"],
            postgresql_using="gin",
            postgresql_ops={"hyperparameters": "jsonb_path_ops"},
        )
    op.drop_index("idx_metric_latest_key_value", table_name="metric_latest")
    op.create_index(
        "idx_metric_latest_key_value", "metric_latest", ["name", "evaluation_set", "value", "experiment_id"]
    )


def downgrade() -> None:
    op.drop_index("idx_metric_latest_key_value", table_name="metric_latest")
    op.create_index("idx_metric_latest_key_value", "metric_latest", ["name", "evaluation_set", "value"])
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("idx_experiments_hyperparameters", table_name="experiments")
