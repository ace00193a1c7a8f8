"""Where artifact bytes go: an Airflow ``ObjectStoragePath`` root, one folder per experiment (and per logged
model no run logged).

The root is ``[mltrack] artifact_root`` (``AIRFLOW__MLTRACK__ARTIFACT_ROOT``), default
``file://$AIRFLOW_HOME/mltrack-artifacts``; object stores name their Airflow connection in the URI as
``ObjectStoragePath`` reads it (``s3://aws_default@bucket/mltrack``). Layout:
``<root>/<project_id>/<experiment_id>/<path>``, and ``<root>/<project_id>/models/m-<model_id>/<path>`` for the
files of a logged model without a run (``model_id=``; see ``store/artifacts.py``). A file is streamed to a temporary key beside its target (the
sha256 and size computed on the way, never the whole file in memory), moved into place, then recorded in
the store's ``artifacts`` table: a failed upload leaves neither a row nor a half-written target.
"""

from __future__ import annotations

import hashlib
import mimetypes
import uuid
from collections.abc import Iterable
from typing import IO, Any

from airflow.sdk import ObjectStoragePath

from airflow_mltrack.hooks.connection_urls import airflow_home
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.artifacts import artifact_owner, artifact_path

#: Bytes read or written per step when streaming.
CHUNK_SIZE = 1024 * 1024
DEFAULT_DIRNAME = "mltrack-artifacts"


def artifact_root() -> str:
    """``[mltrack] artifact_root``, or ``file://$AIRFLOW_HOME/mltrack-artifacts`` (read at call time)."""
    try:
        from airflow.sdk import conf
    except ImportError:  # pragma: no cover - older Task SDK
        from airflow.configuration import conf
    configured = conf.get("mltrack", "artifact_root", fallback=None)
    return configured or f"file://{airflow_home()}/{DEFAULT_DIRNAME}"


def guess_content_type(path: str) -> str:
    """The media type of a file name (``application/octet-stream`` when unknown)."""
    return mimetypes.guess_type(path, strict=False)[0] or "application/octet-stream"


class ArtifactWriter:
    """One file being written: :meth:`write` chunks, then :meth:`commit` (or :meth:`abort`). ``owner``:
    ``("experiment_id", id)`` or ``("model_id", id)`` (:func:`~airflow_mltrack.store.artifacts.artifact_owner`)."""

    def __init__(self, storage: ArtifactStorage, owner: tuple[str, int], path: str, content_type: str | None):
        self.storage, self.owner, self.path = storage, owner, path
        self.content_type = content_type or guess_content_type(path)
        self.target = storage.folder(owner) / path
        self._tmp = self.target.parent / f".{self.target.name}.{uuid.uuid4().hex}.part"
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = self._tmp.fs.open(self._tmp.path, "wb")
        self._sha = hashlib.sha256()
        self.size = 0

    def _open_file(self) -> IO[bytes]:
        if self._file is None:
            raise ValueError(f"the writer of {self.path!r} is closed")
        return self._file

    def write(self, chunk: bytes) -> None:
        file = self._open_file()
        self._sha.update(chunk)
        self.size += len(chunk)
        file.write(chunk)

    def commit(self) -> dict[str, Any]:
        """Close, move into place and record; returns the store's row."""
        self._open_file().close()
        self._file = None
        try:
            self._tmp.move(self.target)
        except BaseException:
            self._remove_tmp()
            raise
        column, owner = self.owner
        return self.storage.store.record_artifact(
            owner if column == "experiment_id" else None,
            self.path,
            self.size,
            self._sha.hexdigest(),
            self.content_type,
            str(self.target),
            model_id=owner if column == "model_id" else None,
        )

    def abort(self) -> None:
        """Drop what was written (nothing recorded)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        try:
            self._tmp.unlink(missing_ok=True)
        except OSError:  # pragma: no cover - best effort on object stores
            pass

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._file is not None:
            self.abort()


class ArtifactStorage:
    """The files of experiments (and of logged models without a run: keyword ``model_id``, the experiment id
    None) under ``root`` (default :func:`artifact_root`), recorded in ``store``."""

    def __init__(self, store: TrackingStore, root: str | ObjectStoragePath | None = None) -> None:
        self.store = store
        self.root = (
            root if isinstance(root, ObjectStoragePath) else ObjectStoragePath(root or artifact_root())
        )

    def project_of(self, experiment_id: int) -> int:
        return int(self.store.get_experiment(experiment_id)["project_id"])

    def location(self, project_id: int, experiment_id: int, path: str) -> ObjectStoragePath:
        """Where the file ``path`` of an experiment is stored (``path`` validated first)."""
        return self.root / str(int(project_id)) / str(int(experiment_id)) / artifact_path("path", path)

    def folder(self, owner: tuple[str, int]) -> ObjectStoragePath:
        """The folder of an owner: ``<root>/<project_id>/<experiment_id>`` or
        ``<root>/<project_id>/models/m-<model_id>``."""
        column, owner_id = owner
        if column == "experiment_id":
            return self.root / str(self.project_of(owner_id)) / str(int(owner_id))
        project_id = int(self.store.get_model(owner_id)["project_id"])
        return self.root / str(project_id) / "models" / f"m-{int(owner_id)}"

    def model_files(self, model_id: int) -> tuple[dict[str, Any], dict[str, Any], str]:
        """Where the files of the logged model ``model_id`` are: (its ``models`` row, the owner as keywords
        of this class's methods, the prefix). A model a run logged keeps them under the run's
        ``models/m-<id>`` (MLflow's layout); a model without a run in its own folder (prefix "")."""
        row = self.store.get_model(model_id)
        source = row.get("source_experiment_id")
        if source is not None:
            return row, {"experiment_id": int(source)}, f"models/m-{int(row['model_id'])}"
        return row, {"experiment_id": None, "model_id": int(row["model_id"])}, ""

    def writer(
        self,
        experiment_id: int | None,
        path: str,
        content_type: str | None = None,
        *,
        model_id: int | None = None,
    ) -> ArtifactWriter:
        """A writer for chunks that arrive one by one (an HTTP upload); use as a context manager and
        :meth:`ArtifactWriter.commit` at the end."""
        owner = artifact_owner(experiment_id, model_id)
        return ArtifactWriter(self, owner, artifact_path("path", path) or "", content_type)

    def write(
        self,
        experiment_id: int | None,
        path: str,
        stream: IO[bytes] | Iterable[bytes] | bytes,
        content_type: str | None = None,
        *,
        model_id: int | None = None,
    ) -> dict[str, Any]:
        """Store ``stream`` (a binary file, an iterable of chunks, or bytes) as the owner's ``path``;
        returns the recorded row."""
        with self.writer(experiment_id, path, content_type, model_id=model_id) as out:
            if isinstance(stream, bytes | bytearray | memoryview):
                out.write(bytes(stream))
            elif hasattr(stream, "read"):
                while chunk := stream.read(CHUNK_SIZE):  # type: ignore[union-attr]
                    out.write(chunk)
            else:
                for chunk in stream:
                    out.write(chunk)
            return out.commit()

    def write_file(
        self,
        experiment_id: int | None,
        path: str,
        local_file: str,
        content_type: str | None = None,
        *,
        model_id: int | None = None,
    ) -> dict[str, Any]:
        """Store a local file as the owner's ``path``."""
        with open(local_file, "rb") as stream:
            kind = content_type or guess_content_type(local_file)
            return self.write(experiment_id, path, stream, kind, model_id=model_id)

    def list(
        self, experiment_id: int | None, prefix: str | None = None, *, model_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The recorded files of an owner (under the directory ``prefix``)."""
        return self.store.list_artifacts(experiment_id, prefix, model_id=model_id)

    def open(
        self, experiment_id: int | None, path: str, *, model_id: int | None = None
    ) -> tuple[dict[str, Any], IO[bytes]]:
        """The row of a recorded file and its bytes opened for reading (close it)."""
        row = self.store.get_artifact(experiment_id, path, model_id=model_id)
        stored = ObjectStoragePath(row["storage_uri"])
        return row, stored.fs.open(stored.path, "rb")

    def iter_bytes(
        self, experiment_id: int | None, path: str, *, model_id: int | None = None
    ) -> tuple[dict[str, Any], Iterable[bytes]]:
        """The row of a recorded file and its bytes in chunks (the file is opened now, closed at the end)."""
        row, stream = self.open(experiment_id, path, model_id=model_id)

        def chunks() -> Iterable[bytes]:
            with stream:
                while chunk := stream.read(CHUNK_SIZE):
                    yield chunk

        return row, chunks()

    def delete(
        self, experiment_id: int | None, prefix: str | None = None, *, model_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Forget the files under ``prefix`` (None: all) and delete their bytes; returns the rows."""
        deleted = self.store.delete_artifacts(experiment_id, prefix, model_id=model_id)
        for row in deleted:
            stored = ObjectStoragePath(row["storage_uri"])
            try:
                stored.unlink(missing_ok=True)
            except OSError:  # pragma: no cover - the row is gone; a stray object is harmless
                pass
        return deleted
