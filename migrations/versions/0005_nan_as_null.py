"""NaN metric values as NULL on SQLite, whose REAL type has no NaN.

On SQLite, ``metrics.value`` and ``metric_latest.value`` / ``min_value`` / ``max_value`` become nullable and
NULL stands for NaN (sqlite3 reads None, pandas NaN; the store reads ``float('nan')``). The text 'NaN' that
SQLite databases held until now becomes NULL. PostgreSQL keeps NaN as a real double and the columns NOT NULL:
nothing changes there (the models mark the columns ``nullable_on`` SQLite; ``mltrack db check`` knows).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("metrics", ("value",)), ("metric_latest", ("value", "min_value", "max_value")))


def _alter(nullable: bool) -> None:
    for table, columns in COLUMNS:
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(column, existing_type=sa.Double(), nullable=nullable)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _alter(nullable=True)
    for table, columns in COLUMNS:
        for column in columns:
            op.execute(f"UPDATE {table} SET {column} = NULL WHERE typeof({column}) = 'text'")  # noqa: S608


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in COLUMNS:
        for column in columns:
            op.execute(f"UPDATE {table} SET {column} = 'NaN' WHERE {column} IS NULL")  # noqa: S608
    _alter(nullable=False)
