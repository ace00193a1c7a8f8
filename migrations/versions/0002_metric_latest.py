"""metric_latest: the final value of every (experiment, metric, split), kept with each metric write.

``value``/``step`` are the step-less value if there is one, else the value at the highest step; ``min_value``,
``max_value`` and ``points`` cover all rows of the key. The upgrade fills it from the existing metrics.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same definition as the store's MetricStore._final_values (frozen here as SQL).
FILL = """
INSERT INTO metric_latest
    (experiment_id, name, evaluation_set, step, value, min_value, max_value, points, recorded_at)
SELECT experiment_id, name, evaluation_set, step, value, min_value, max_value, points, recorded_at
FROM (
    SELECT experiment_id, name, evaluation_set, step, value,
           row_number() OVER (
               PARTITION BY experiment_id, name, evaluation_set
               ORDER BY (step IS NULL) DESC, step DESC
           ) AS rn,
           min(value) OVER (PARTITION BY experiment_id, name, evaluation_set) AS min_value,
           max(value) OVER (PARTITION BY experiment_id, name, evaluation_set) AS max_value,
           count(*) OVER (PARTITION BY experiment_id, name, evaluation_set) AS points,
           max(recorded_at) OVER (PARTITION BY experiment_id, name, evaluation_set) AS recorded_at
    FROM metrics
) ranked
WHERE rn = 1
"""


def upgrade() -> None:
    op.create_table(
        "metric_latest",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("evaluation_set", sa.String(50), nullable=False),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("min_value", sa.Double(), nullable=False),
        sa.Column("max_value", sa.Double(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("experiment_id", "name", "evaluation_set", name="pk_metric_latest"),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name="fk_metric_latest_experiment",
            ondelete="CASCADE",
        ),
    )
    op.execute(FILL)
    op.create_index("idx_metric_latest_key_value", "metric_latest", ["name", "evaluation_set", "value"])


def downgrade() -> None:
    op.drop_index("idx_metric_latest_key_value", table_name="metric_latest")
    op.drop_table("metric_latest")
