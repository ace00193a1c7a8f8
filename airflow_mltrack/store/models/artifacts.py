"""Artifacts (revision 0007): one row per file an experiment or a logged model (without a run) logged; the
bytes live in object storage."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from airflow_mltrack.store.models.common import NOW, Base

ARTIFACT_PATH_LEN = 1024
CONTENT_TYPE_LEN = 255
STORAGE_URI_LEN = 2048

# Relative, POSIX, not empty, no backslash, no ``..`` segment: SQL that PostgreSQL and SQLite both run.
ARTIFACT_PATH_CHECK = (
    "path <> '' AND path NOT LIKE '/%' AND replace(path, '\\', '') = path AND path <> '..' "
    "AND path NOT LIKE '../%' AND path NOT LIKE '%/../%' AND path NOT LIKE '%/..'"
)

#: Exactly one owner: an experiment or a logged model.
ARTIFACT_OWNER_CHECK = (
    "(experiment_id IS NOT NULL AND model_id IS NULL) OR (experiment_id IS NULL AND model_id IS NOT NULL)"
)


def _hex64(column: str) -> str:
    stripped = column
    for digit in "0123456789abcdef":
        stripped = f"replace({stripped}, '{digit}', '')"
    return f"length({column}) = 64 AND {stripped} = ''"


class Artifact(Base):
    """A file logged by an experiment or by a model no run logged (exactly one of ``experiment_id`` and
    ``model_id``): ``path`` relative to that owner, the full ``storage_uri`` written, its size and sha256
    ``checksum``. Logging the same path again replaces the row."""

    __tablename__ = "artifacts"

    artifact_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int | None] = mapped_column(Integer)
    model_id: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(ARTIFACT_PATH_LEN), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    checksum: Mapped[str] = mapped_column(String(64), nullable=False)
    content_type: Mapped[str | None] = mapped_column(String(CONTENT_TYPE_LEN))
    storage_uri: Mapped[str] = mapped_column(String(STORAGE_URI_LEN), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=NOW
    )

    __table_args__ = (
        ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name="fk_artifact_experiment",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(["model_id"], ["models.model_id"], name="fk_artifact_model", ondelete="CASCADE"),
        UniqueConstraint("experiment_id", "path", name="uq_artifact_experiment_path"),
        UniqueConstraint("model_id", "path", name="uq_artifact_model_path"),
        CheckConstraint(ARTIFACT_OWNER_CHECK, name="ck_artifacts_owner"),
        CheckConstraint(ARTIFACT_PATH_CHECK, name="ck_artifacts_path"),
        CheckConstraint("size_bytes >= 0", name="ck_artifacts_size_bytes"),
        CheckConstraint(_hex64("checksum"), name="ck_artifacts_checksum"),
        Index("idx_artifacts_experiment_id", "experiment_id"),
    )
