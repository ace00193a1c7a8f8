"""Artifacts (table ``artifacts``, revision 0007): which files an experiment logged, where they are stored,
their size and sha256 checksum. The bytes themselves are the hooks layer's (``hooks/artifacts.py``).

The owner of a file is an experiment (``experiment_id``, positional) or, for a logged model no run logged
(MLflow 3's ``log_model`` outside a run), that model (keyword ``model_id``, the experiment id None): every
method takes exactly one of the two.

A path is relative to its owner, POSIX (``plots/loss.png``): no leading ``/``, no backslash, no ``..``
segment; empty and ``.`` segments are dropped (``./a//b`` is ``a/b``). A prefix names a directory:
``plots`` covers ``plots`` and ``plots/...``, never ``plots2/...``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, or_, select

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import StoreBase, rows, utcnow
from airflow_mltrack.store.models.artifacts import ARTIFACT_PATH_LEN, CONTENT_TYPE_LEN, STORAGE_URI_LEN
from airflow_mltrack.store.tables import artifacts, experiments, models

_HEX = frozenset("0123456789abcdef")


def artifact_path(field: str, value: Any, *, required: bool = True) -> str | None:
    """A relative POSIX path in its canonical form; refused: absolute, ``..``, backslash, empty, too long."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise MLTrackError(field, value, f"must be a string, not {type(value).__name__}")
    v.filter_text(field, value, max_len=ARTIFACT_PATH_LEN * 4)
    if "\\" in value:
        raise MLTrackError(field, value, "must be a POSIX path (no backslash)")
    if value.startswith("/"):
        raise MLTrackError(field, value, "must be relative (no leading '/')")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise MLTrackError(field, value, "must not contain control characters")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise MLTrackError(field, value, "must not contain '..' segments")
    path = "/".join(parts)
    if not path:
        if required:
            raise MLTrackError(field, value, "must not be empty")
        return None
    if len(path) > ARTIFACT_PATH_LEN:
        raise MLTrackError(
            field, value, f"is {len(path)} characters long; at most {ARTIFACT_PATH_LEN} allowed"
        )
    return path


def sha256_hex(field: str, value: Any) -> str:
    """A sha256 hex digest (64 hex digits), returned lowercase."""
    if not isinstance(value, str) or len(value) != 64 or not set(value.lower()) <= _HEX:
        raise MLTrackError(field, value, "must be a sha256 hex digest (64 hex digits)")
    return value.lower()


def artifact_owner(experiment_id: Any, model_id: Any = None) -> tuple[str, int]:
    """``("experiment_id", id)`` or ``("model_id", id)``: the one owner given (both or neither: an error)."""
    if (experiment_id is None) == (model_id is None):
        raise MLTrackError(
            "model_id",
            model_id,
            f"give an experiment_id ({experiment_id!r}) or a model_id, exactly one: the owner of the files",
        )
    if model_id is not None:
        return "model_id", v.entity_id("model_id", model_id)
    return "experiment_id", v.entity_id("experiment_id", experiment_id)


class ArtifactStore(StoreBase):
    """Record, list, find and forget the artifact files of an experiment or of a logged model."""

    def record_artifact(
        self,
        experiment_id: int | None,
        path: str,
        size_bytes: int,
        checksum: str,
        content_type: str | None,
        storage_uri: str,
        *,
        model_id: int | None = None,
    ) -> dict[str, Any]:
        """Record a stored file (logging the same path again replaces its row); returns the row."""
        column, owner = artifact_owner(experiment_id, model_id)
        values = {
            column: owner,
            "path": artifact_path("path", path),
            "size_bytes": v.integer("size_bytes", size_bytes, minimum=0),
            "checksum": sha256_hex("checksum", checksum),
            "content_type": v.optional_text("content_type", content_type, CONTENT_TYPE_LEN) or None,
            "storage_uri": v.name("storage_uri", storage_uri, STORAGE_URI_LEN),
            "created_at": utcnow(),
        }
        with self.write(**{column: owner}) as conn:
            self._require(conn, experiments if column == "experiment_id" else models, column, owner, column)
            stmt = self._insert(artifacts).values(values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[column, "path"],
                set_={k: stmt.excluded[k] for k in values if k not in (column, "path")},
            )
            conn.execute(stmt)
            if column == "experiment_id":
                self._note_writer(conn, owner, start=False)
            return self._artifact(conn, column, owner, values["path"])

    def list_artifacts(
        self, experiment_id: int | None, prefix: str | None = None, *, model_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The owner's artifacts (all, or under the directory ``prefix``), ordered by path."""
        column, owner = artifact_owner(experiment_id, model_id)
        prefix = artifact_path("prefix", prefix, required=False)
        query = select(artifacts).where(artifacts.c[column] == owner)
        if prefix is not None:
            query = query.where(_under(prefix))
        with self.read() as conn:
            return rows(conn.execute(query.order_by(artifacts.c.path)))

    def get_artifact(
        self, experiment_id: int | None, path: str, *, model_id: int | None = None
    ) -> dict[str, Any]:
        """One artifact by path; NotFoundError when the owner has no such file."""
        column, owner = artifact_owner(experiment_id, model_id)
        path_ = artifact_path("path", path)
        with self.read() as conn:
            return self._artifact(conn, column, owner, path_)

    def delete_artifacts(
        self, experiment_id: int | None, prefix: str | None = None, *, model_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Forget the owner's artifacts under ``prefix`` (a file or a directory; None: all of them);
        returns the rows deleted, so the caller can delete their bytes."""
        column, owner = artifact_owner(experiment_id, model_id)
        prefix = artifact_path("prefix", prefix, required=False)
        where = [artifacts.c[column] == owner]
        if prefix is not None:
            where.append(_under(prefix))
        with self.write(**{column: owner}) as conn:
            found = rows(conn.execute(select(artifacts).where(*where).order_by(artifacts.c.path)))
            conn.execute(delete(artifacts).where(*where))
            return found

    @staticmethod
    def _artifact(conn: Connection, column: str, owner: int, path: str) -> dict[str, Any]:
        row = conn.execute(
            select(artifacts).where(artifacts.c[column] == owner, artifacts.c.path == path)
        ).first()
        if row is None:
            what = "experiment" if column == "experiment_id" else "model"
            raise NotFoundError("path", path, f"{what} {owner} has no artifact with this path")
        return dict(row._mapping)


def _under(prefix: str) -> Any:
    return or_(artifacts.c.path == prefix, artifacts.c.path.startswith(prefix + "/", autoescape=True))


def artifact_children(found: list[dict[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    """The entries directly under the directory ``prefix`` of the rows ``found``: files (``is_dir`` False,
    their ``size_bytes``) and subdirectories (``is_dir`` True, size None), by path. A file named exactly
    ``prefix`` has no children (MLflow's ``list_artifacts`` of a file is empty)."""
    base = f"{prefix.rstrip('/')}/" if prefix else ""
    out: dict[str, dict[str, Any]] = {}
    for row in found:
        if not row["path"].startswith(base):
            continue
        head, sep, _ = row["path"][len(base) :].partition("/")
        key = base + head
        if sep:
            out[key] = {"path": key, "is_dir": True, "size_bytes": None}
        elif key not in out:
            out[key] = {**row, "path": key, "is_dir": False}
    return [out[key] for key in sorted(out)]
