"""MLflow's artifact repository for ``mltrack://`` artifact URIs: MLflow code in a task stores its files in our
artifact storage (``hooks/artifacts.py``), recorded in the ``artifacts`` table.

URI: ``mltrack://<conn_id>/<experiment_id>/artifacts[/<prefix>]``, the ``artifact_uri`` the ``mltrack://``
tracking store gives a run (experiment ``<experiment_id>`` = run id) and, with ``models/<model_id>`` as
prefix, the ``artifact_location`` of a logged model of that run; a logged model no run logged has
``mltrack://<conn_id>/<project_id>/models/m-<model_id>/artifacts[/<prefix>]``, files of the model itself
(``model_id=`` in ``store/artifacts.py``). Registered as entry point ``mlflow.artifact_repository``
``mltrack``.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from functools import cached_property
from typing import Any

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store.artifacts import artifact_children, artifact_path
from airflow_mltrack.vocabulary import DEFAULT_CONN_ID

SCHEME = "mltrack"


def artifact_uri(conn_id: str, experiment_id: int | str, sub_path: str = "") -> str:
    """``mltrack://<conn_id>/<experiment_id>/artifacts[/<sub_path>]``."""
    uri = f"{SCHEME}://{conn_id}/{int(experiment_id)}/artifacts"
    sub = artifact_path("sub_path", sub_path, required=False)
    return f"{uri}/{sub}" if sub else uri


def parse_artifact_location(uri: str) -> tuple[str, tuple[str, int], str]:
    """``(conn_id, owner, prefix)`` of an ``mltrack://`` artifact URI; ``owner`` is ``("experiment_id",
    <run id>)`` or, for ``<project_id>/models/m-<id>/artifacts``, ``("model_id", <id>)``. The path is taken
    literally: no query, fragment or percent-decoding."""
    shape = (
        f"artifact URI {uri!r}: must be {SCHEME}://<conn_id>/<experiment id>/artifacts[/<path>] or "
        f"{SCHEME}://<conn_id>/<project id>/models/m-<model id>/artifacts[/<path>]"
    )
    if not isinstance(uri, str) or not uri.startswith(f"{SCHEME}:/"):
        raise _invalid(shape)
    rest = uri[len(SCHEME) + 1 :]
    conn_id = ""
    if rest.startswith("//"):  # with a connection id; MLflow writes an empty one as mltrack:/<id>/...
        conn_id, _, rest = rest[2:].partition("/")
    parts = rest.lstrip("/").split("/", 4)
    owner: tuple[str, int] | None = None
    if len(parts) >= 2 and _positive(parts[0]) and parts[1] == "artifacts":
        owner, tail = ("experiment_id", int(parts[0])), "/".join(parts[2:])
    elif len(parts) >= 4 and _positive(parts[0]) and parts[1] == "models" and parts[3] == "artifacts":
        model = parts[2].removeprefix("m-")
        if parts[2].startswith("m-") and _positive(model):
            owner, tail = ("model_id", int(model)), "/".join(parts[4:])
    if owner is None:
        raise _invalid(shape)
    try:
        prefix = artifact_path("artifact_uri", tail, required=False) or ""
    except MLTrackError as exc:
        raise _invalid(str(exc)) from exc
    return conn_id or DEFAULT_CONN_ID, owner, prefix


def parse_artifact_uri(uri: str) -> tuple[str, int, str]:
    """``(conn_id, experiment_id, prefix)`` of a run's ``mltrack://`` artifact URI."""
    conn_id, (column, owner), prefix = parse_artifact_location(uri)
    if column != "experiment_id":
        raise _invalid(f"artifact URI {uri!r}: names a logged model's files, not a run's")
    return conn_id, owner, prefix


def _positive(text: str) -> bool:
    return text.isdigit() and int(text) >= 1


def _invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _mlflow_error(exc: MLTrackError) -> MlflowException:
    code = RESOURCE_DOES_NOT_EXIST if isinstance(exc, NotFoundError) else INVALID_PARAMETER_VALUE
    return MlflowException(str(exc), error_code=code)


class MLTrackArtifactRepository(ArtifactRepository):
    """Files of one of our experiments or logged models (optionally under a prefix), in our artifact
    storage."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None):
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        self.conn_id, (column, owner), self.prefix = parse_artifact_location(artifact_uri)
        self.experiment_id = owner if column == "experiment_id" else None
        self.model_id = owner if column == "model_id" else None

    @cached_property
    def storage(self) -> Any:
        """The :class:`~airflow_mltrack.hooks.artifacts.ArtifactStorage` of the connection's store."""
        from airflow_mltrack.hooks.artifacts import ArtifactStorage
        from airflow_mltrack.hooks.mltrack import MLTrackHook

        return ArtifactStorage(MLTrackHook(mltrack_conn_id=self.conn_id).get_store())

    def _storage(self) -> Any:
        """The storage, its store's task link set to the task running now (writes record it as a writer)."""
        from airflow_mltrack.hooks.mltrack import current_task_link

        storage = self.storage
        storage.store.task_link = current_task_link()
        return storage

    def _full(self, path: str | None) -> str:
        """``path`` (relative to this repository) relative to the experiment; "" for its root."""
        try:
            rel = artifact_path("artifact_path", path, required=False) or ""
        except MLTrackError as exc:
            raise _mlflow_error(exc) from exc
        return posixpath.join(self.prefix, rel) if self.prefix and rel else self.prefix or rel

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        target = posixpath.join(self._full(artifact_path), os.path.basename(local_file))
        try:
            self._storage().write_file(
                self.experiment_id, target.lstrip("/"), local_file, model_id=self.model_id
            )
        except MLTrackError as exc:
            raise _mlflow_error(exc) from exc

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        base = self._full(artifact_path)
        storage = self._storage()
        try:
            for root, _dirs, files in os.walk(local_dir):
                rel_dir = os.path.relpath(root, local_dir)
                for name in sorted(files):
                    rel = name if rel_dir == "." else posixpath.join(*rel_dir.split(os.sep), name)
                    target = posixpath.join(base, rel) if base else rel
                    local = os.path.join(root, name)
                    storage.write_file(self.experiment_id, target, local, model_id=self.model_id)
        except MLTrackError as exc:
            raise _mlflow_error(exc) from exc

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        full = self._full(path)
        try:
            found = self.storage.list(self.experiment_id, full or None, model_id=self.model_id)
        except MLTrackError as exc:
            raise _mlflow_error(exc) from exc
        return [
            FileInfo(self._relative(child["path"]), child["is_dir"], child["size_bytes"])
            for child in artifact_children(found, full)
        ]

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        try:
            full = self._full(remote_file_path)
            _row, stream = self.storage.open(self.experiment_id, full, model_id=self.model_id)
        except MLTrackError as exc:
            raise _mlflow_error(exc) from exc
        with stream, open(local_path, "wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        try:
            full = self._full(artifact_path) or None
            self._storage().delete(self.experiment_id, full, model_id=self.model_id)
        except MLTrackError as exc:
            raise _mlflow_error(exc) from exc


def _register() -> None:
    """Register the scheme (idempotent). The entry point does it when ``mlflow`` is imported first; when
    this module is imported first, mlflow's import tries the entry point while this module is half-loaded."""
    from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry

    _artifact_repository_registry.register(SCHEME, MLTrackArtifactRepository)


_register()
