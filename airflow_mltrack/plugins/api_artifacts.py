"""Artifacts over HTTP: MLflow's artifact proxy (``mlflow-artifacts``) and the experiment page's downloads.

``router``: ``/mlflow/api/2.0/mlflow-artifacts/artifacts/<project_id>/<experiment_id>/artifacts/<path>``
(and ``/mlflow/ajax-api/...``), what MLflow's ``MlflowArtifactsRepository`` calls for a run whose
``artifact_uri`` is ``mlflow-artifacts:/<project_id>/<experiment_id>/artifacts`` - or for a logged model no
run logged, ``artifact_location`` ``mlflow-artifacts:/<project_id>/models/m-<model_id>/artifacts`` (files of
the model itself): PUT uploads (streamed to storage, never read whole), GET downloads (streamed), GET
``?path=`` lists, DELETE deletes. Also MLflow's ``GET .../logged-models/<model_id>/artifacts/files
?artifact_file_path=`` (a logged model's file, wherever it is stored) and ``GET /mlflow/get-artifact?run_id=
&path=`` (a run's file: the web UI's download), ``POST .../ajax-api/2.0/mlflow/upload-artifact?run_uuid=&path=``
(the web UI's upload, at most 10 MB). Reads need the DAG of the experiment
(of the run that logged the model) readable (else 404, as if it did not exist); writes an ``Authorization:
Bearer`` token and the DAG's edit permission (else 403; a model without a run: the edit permission of DAGs
in general). Errors are MLflow-shaped.

``api_router`` (under ``/api``): ``/experiments/{id}/artifacts`` lists, ``/experiments/{id}/artifacts/<path>``
downloads (the UI's cookie is enough: reads only).

Every artifact answer carries ``Content-Security-Policy: sandbox`` and ``nosniff``. Only raster images (PNG,
JPEG, GIF, WebP) are served inline, with their type; everything else - HTML and SVG included - is an
``attachment`` of type ``application/octet-stream``: a logged file never runs as a page of our origin.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.hooks.artifacts import ArtifactStorage
from airflow_mltrack.plugins import loaders
from airflow_mltrack.plugins.api_errors import JsonErrorRoute
from airflow_mltrack.plugins.api_mlflow import MlflowErrorRoute, mlflow_error
from airflow_mltrack.plugins.auth import AccessDep, DagAccess, StoreDep
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.artifacts import artifact_children, artifact_path

#: Types served inline (``<img>`` on the experiment page); never SVG, which can carry script.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
ARTIFACT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
#: Upload bytes gathered before one write to storage (a thread hop per write).
WRITE_BUFFER = 1024 * 1024
#: Most files one experiment listing returns (the page shows the first ones).
MAX_LISTED = 1000

router = APIRouter(include_in_schema=False, route_class=MlflowErrorRoute)
api_router = APIRouter(tags=["ML Tracking"], route_class=JsonErrorRoute)


def _storage(store: TrackingStore) -> ArtifactStorage:
    return ArtifactStorage(store)


def _disposition(kind: str, path: str) -> str:
    name = posixpath.basename(path) or "artifact"
    ascii_name = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in name)
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def artifact_response(row: dict[str, Any], chunks: Iterable[bytes]) -> StreamingResponse:
    """A stored file, streamed: inline only for raster images, else an octet-stream attachment."""
    media = (row.get("content_type") or "").split(";", 1)[0].strip().lower()
    inline = media in INLINE_TYPES
    headers = dict(ARTIFACT_HEADERS)
    headers["Content-Disposition"] = _disposition("inline" if inline else "attachment", row["path"])
    headers["ETag"] = f'"{row["checksum"]}"'
    return StreamingResponse(
        iter(chunks), media_type=media if inline else "application/octet-stream", headers=headers
    )


async def _open(
    store: TrackingStore, experiment_id: int | None, path: str, model_id: int | None = None
) -> StreamingResponse:
    storage = _storage(store)
    row, chunks = await run_in_threadpool(lambda: storage.iter_bytes(experiment_id, path, model_id=model_id))
    return artifact_response(row, chunks)


# -- MLflow's artifact proxy -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Whose files a request names: ``owner`` (the keywords of ``ArtifactStorage``'s methods: an
    experiment, or a logged model without a run), the DAG that guards them, the path under the owner."""

    owner: dict[str, Any]
    dag_id: str | None
    rest: str

    def under(self, path: str | None) -> str | None:
        """``path`` (relative to the target) relative to the owner; None for the owner's root."""
        joined = posixpath.join(self.rest, path) if self.rest and path else self.rest or path
        return artifact_path("path", joined, required=False)


def _digits(text: str) -> bool:
    return text.isdigit() and int(text) >= 1


def _model_target(store: TrackingStore, access: DagAccess, model_id: int, project_id: int | None) -> Target:
    """The files of logged model ``model_id`` (404 when it is deleted, its run's DAG is hidden or, with
    ``project_id``, it is in another experiment)."""
    row, owner, base = _storage(store).model_files(model_id)
    if row.get("deleted_at") is not None:
        raise NotFoundError("model_id", model_id, f"logged model m-{model_id} is deleted")
    if project_id is not None and row["project_id"] != project_id:
        raise NotFoundError("model_id", model_id, f"no logged model m-{model_id} in experiment {project_id}")
    dag_id = None
    if row.get("source_experiment_id") is not None:
        dag_id = loaders.load_experiment(store, access, row["source_experiment_id"]).get("dag_id")
    return Target(owner, dag_id, base)


def _target(store: TrackingStore, access: DagAccess, path: str) -> Target:
    """``<project_id>/<experiment_id>/artifacts[/<rest>]`` (a run's files) or
    ``<project_id>/models/m-<model_id>/artifacts[/<rest>]`` (a logged model's) -> a readable :class:`Target`."""
    parts = path.strip("/").split("/", 4)
    if len(parts) >= 3 and _digits(parts[0]) and _digits(parts[1]) and parts[2] == "artifacts":
        experiment_id = int(parts[1])
        experiment = loaders.load_experiment(store, access, experiment_id)
        if experiment["project_id"] != int(parts[0]):
            raise NotFoundError("path", path, f"run {experiment_id} is not in experiment {parts[0]}")
        target = Target({"experiment_id": experiment_id}, experiment.get("dag_id"), "")
        rest = "/".join(parts[3:])
    elif (
        len(parts) >= 4
        and _digits(parts[0])
        and parts[1] == "models"
        and parts[2].startswith("m-")
        and _digits(parts[2][2:])
        and parts[3] == "artifacts"
    ):
        target = _model_target(store, access, int(parts[2][2:]), int(parts[0]))
        rest = "/".join(parts[4:])
    else:
        raise MLTrackError(
            "path",
            path,
            "must be <experiment id>/<run id>/artifacts[/<path>] or <experiment id>/models/m-<model id>/"
            "artifacts[/<path>] (an artifact_uri of this server)",
        )
    rest = artifact_path("path", rest, required=False) or ""
    return Target(target.owner, target.dag_id, target.under(rest) or "")


def _has_bearer(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def _writable(request: Request, access: DagAccess, target: Target) -> Response | None:
    """An MLflow PERMISSION_DENIED answer when this request may not write, else None."""
    if not _has_bearer(request):
        return mlflow_error(
            "PERMISSION_DENIED",
            f"{request.method} needs the Airflow API token in an 'Authorization: Bearer' header "
            "(MLFLOW_TRACKING_TOKEN); the UI's session cookie may only read",
        )
    if not access.can_edit(target.dag_id):
        dag = f"DAG {target.dag_id!r}" if target.dag_id else "DAGs"
        return mlflow_error("PERMISSION_DENIED", f"your Airflow user may not edit runs of {dag}")
    return None


_PREFIXES = ("/mlflow/api/2.0/mlflow-artifacts/artifacts", "/mlflow/ajax-api/2.0/mlflow-artifacts/artifacts")


def _routes(method: str, suffix: str) -> Any:
    def register(func: Any) -> Any:
        for prefix in _PREFIXES:
            router.add_api_route(prefix + suffix, func, methods=[method])
        return func

    return register


@_routes("GET", "")
async def list_mlflow_artifacts(request: Request, store: StoreDep, access: AccessDep) -> Response:
    """MLflow's ListArtifacts: the entries directly under ``?path=`` (names relative to it)."""
    path = request.query_params.get("path", "")
    target = await run_in_threadpool(_target, store, access, path)
    found = await run_in_threadpool(lambda: _storage(store).list(prefix=target.rest or None, **target.owner))
    files = []
    for child in artifact_children(found, target.rest):
        entry: dict[str, Any] = {"path": posixpath.basename(child["path"]), "is_dir": child["is_dir"]}
        if not child["is_dir"]:
            entry["file_size"] = child["size_bytes"]
        files.append(entry)
    return Response(json.dumps({"files": files}), media_type="application/json")


@_routes("GET", "/{path:path}")
async def download_mlflow_artifact(path: str, store: StoreDep, access: AccessDep) -> Response:
    """MLflow's DownloadArtifact: the file's bytes, streamed."""
    target = await run_in_threadpool(_target, store, access, path)
    if not target.rest:
        raise MLTrackError("path", path, "names a directory, not a file")
    return await _open(store, path=target.rest, **target.owner)


@_routes("PUT", "/{path:path}")
async def upload_mlflow_artifact(request: Request, path: str, store: StoreDep, access: AccessDep) -> Response:
    """MLflow's UploadArtifact: the body streamed into storage (sha256 and size on the way), then recorded."""
    target = await run_in_threadpool(_target, store, access, path)
    if (refused := _writable(request, access, target)) is not None:
        return refused
    if not target.rest:
        raise MLTrackError("path", path, "must name a file under artifacts/")
    content_type = request.headers.get("content-type") or None
    writer = await run_in_threadpool(
        lambda: _storage(store).writer(path=target.rest, content_type=content_type, **target.owner)
    )
    try:
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) >= WRITE_BUFFER:
                await run_in_threadpool(writer.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await run_in_threadpool(writer.write, bytes(buffer))
        await run_in_threadpool(writer.commit)
    except BaseException:
        await run_in_threadpool(writer.abort)
        raise
    return Response("{}", media_type="application/json")


@_routes("DELETE", "/{path:path}")
async def delete_mlflow_artifact(request: Request, path: str, store: StoreDep, access: AccessDep) -> Response:
    """MLflow's DeleteArtifact: a file or a directory (recursively)."""
    target = await run_in_threadpool(_target, store, access, path)
    if (refused := _writable(request, access, target)) is not None:
        return refused
    await run_in_threadpool(lambda: _storage(store).delete(prefix=target.rest or None, **target.owner))
    return Response("{}", media_type="application/json")


#: MLflow's web-UI route (``mlflow/server/__init__.py``), outside the service protos.
_MODEL_FILE_PATH = "/mlflow/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files"


async def download_logged_model_artifact(
    request: Request, model_id: str, store: StoreDep, access: AccessDep
) -> Response:
    """MLflow's GetLoggedModelArtifact: ``?artifact_file_path=`` of logged model ``m-<id>``, streamed."""
    file_path = request.query_params.get("artifact_file_path")
    if not file_path:
        raise MLTrackError(
            "artifact_file_path", file_path, 'Request must include the "artifact_file_path" query parameter.'
        )
    digits = model_id.removeprefix("m-")
    if not model_id.startswith("m-") or not _digits(digits):
        raise NotFoundError("model_id", model_id, "not a logged model of this store (ids are m-<digits>)")
    target = await run_in_threadpool(_model_target, store, access, int(digits), None)
    return await _open(
        store, path=target.under(artifact_path("artifact_file_path", file_path)) or "", **target.owner
    )


router.add_api_route(_MODEL_FILE_PATH, download_logged_model_artifact, methods=["GET"])


def _safe(path: str | None) -> str | None:
    """``path`` in canonical form, or None where MLflow's ``validate_path_is_safe`` says "Invalid path"."""
    try:
        return artifact_path("path", path or "")
    except MLTrackError:
        return None


@router.get("/mlflow/get-artifact")
async def get_run_artifact(request: Request, store: StoreDep, access: AccessDep) -> Response:
    """MLflow's web-UI download of a run's file: ``?run_id=<run id>&path=<path>``, streamed."""
    path = _safe(request.query_params.get("path"))
    if path is None:
        return mlflow_error("INVALID_PARAMETER_VALUE", "Invalid path")
    run_id = request.query_params.get("run_id") or request.query_params.get("run_uuid") or ""
    if not _digits(run_id):
        raise NotFoundError("run_id", run_id, "not a run of this store (run ids are experiment ids: digits)")
    await run_in_threadpool(loaders.load_experiment, store, access, int(run_id))
    return await _open(store, int(run_id), path)


#: MLflow's limit of one web-UI upload (``upload_artifact_handler``).
MAX_UI_UPLOAD = 10 * 1024 * 1024


@router.post("/mlflow/ajax-api/2.0/mlflow/upload-artifact")
async def upload_run_artifact(request: Request, store: StoreDep, access: AccessDep) -> Response:
    """MLflow's web-UI upload of one file into a run: ``?run_uuid=<run id>&path=<path>``, the bytes in the
    body (at most 10 MB), checked in MLflow's order and words."""
    run_id = request.query_params.get("run_uuid") or request.query_params.get("run_id")
    if not run_id:
        return mlflow_error("INVALID_PARAMETER_VALUE", "Request must specify run_uuid.")
    if not request.query_params.get("path"):
        return mlflow_error("INVALID_PARAMETER_VALUE", "Request must specify path.")
    path = _safe(request.query_params.get("path"))
    if path is None:
        return mlflow_error("INVALID_PARAMETER_VALUE", "Invalid path")
    if not _digits(run_id):
        raise NotFoundError("run_id", run_id, "not a run of this store (run ids are experiment ids: digits)")
    experiment = await run_in_threadpool(loaders.load_experiment, store, access, int(run_id))
    target = Target({"experiment_id": int(run_id)}, experiment.get("dag_id"), "")
    if (refused := _writable(request, access, target)) is not None:
        return refused
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_UI_UPLOAD:
            return mlflow_error("INVALID_PARAMETER_VALUE", "Artifact size is too large. Max size is 10MB.")
    if not data:
        return mlflow_error("INVALID_PARAMETER_VALUE", "Request must specify data.")
    await run_in_threadpool(_storage(store).write, int(run_id), path, bytes(data))
    return Response("{}", media_type="application/json")


@router.get("/mlflow/model-versions/get-artifact")
@router.get("/mlflow//model-versions/get-artifact")
async def get_model_version_artifact(request: Request) -> Response:
    """MLflow's model-registry download: its path checked as MLflow checks it first; no registry here."""
    if _safe(request.query_params.get("path")) is None:
        return mlflow_error("INVALID_PARAMETER_VALUE", "Invalid path")
    return mlflow_error("NOT_IMPLEMENTED", "airflow-mltrack serves no model registry (model versions)")


# -- the experiment page's list and downloads ------------------------------------------------------------
def _listing(store: TrackingStore, access: DagAccess, experiment_id: int) -> list[dict[str, Any]]:
    loaders.load_experiment(store, access, experiment_id)  # 404 when hidden
    return store.list_artifacts(experiment_id)[:MAX_LISTED]


@api_router.get(
    "/experiments/{experiment_id}/artifacts",
    summary="An experiment's artifact files (path, size, sha256, type, time)",
    responses={404: {}},
)
def list_experiment_artifacts(experiment_id: int, store: StoreDep, access: AccessDep) -> JSONResponse:
    rows = _listing(store, access, experiment_id)
    keys = ("path", "size_bytes", "checksum", "content_type", "created_at")
    items = [{k: row[k] for k in keys} for row in rows]
    for item in items:
        item["created_at"] = item["created_at"].isoformat() if item["created_at"] else None
    return JSONResponse({"experiment_id": experiment_id, "items": items})


@api_router.get(
    "/experiments/{experiment_id}/artifacts/{path:path}",
    summary="Download one artifact (raster images inline, everything else as an attachment)",
    responses={404: {}},
)
async def download_experiment_artifact(
    experiment_id: int, path: str, store: StoreDep, access: AccessDep
) -> Response:
    await run_in_threadpool(loaders.load_experiment, store, access, experiment_id)
    return await _open(store, experiment_id, path)


__all__ = ["ARTIFACT_HEADERS", "INLINE_TYPES", "api_router", "artifact_response", "router"]
