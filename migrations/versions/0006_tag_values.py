"""Tags get a value: ``tag_assignments.value`` TEXT NULL.

MLflow's tags are key=value pairs (``set_tag("team", "vision")``) where ours were labels; MLflow code writing
into our schema (issue 14) needs the value kept. NULL is a label, which every tag written before this revision
stays. The primary key (tag_id, entity_type, entity_id) is kept, so an entity carries at most one value per
tag name: setting a tag again overwrites its value, as MLflow's ``set_tag`` does. The tag names stay in
``tags`` (``uq_tags_name``), shared by labels and values.

The column is added and dropped in place (``ALTER TABLE``, SQLite 3.35+ for the drop), not by a batch rebuild:
the table's CHECK constraint, foreign key and index stay untouched. The downgrade drops the column: the values
are lost and every tag becomes a label again (the assignments themselves are kept).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tag_assignments", sa.Column("value", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("tag_assignments", "value")
