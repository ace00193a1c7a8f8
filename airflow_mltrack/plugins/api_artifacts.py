"""Artifacts over HTTP: MLflow's artifact proxy (``mlflow-artifacts``) and the experiment page's downloads.

``router``: ``/mlflow/api/2.0/mlflow-artifacts/artifacts/<project_id>/<experiment_id>/artifacts/<path>``
(and ``/mlflow/ajax-api/...``), what MLflow's ``MlflowArtifactsRepository`` calls for a run whose
``artifact_uri`` is ``mlflow-artifacts:/<project_id>/<experiment_id>/artifacts``: PUT uploads (streamed to
storage, never read whole), GET downloads (streamed), GET ``?path=`` lists, DELETE deletes. Reads need the
experiment's DAG readable (else 404, as if it did not exist); writes an ``Authorization: Bearer`` token and
the DAG's edit permission (else 403). Errors are MLflow-shaped.

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


async def _open(store: TrackingStore, experiment_id: int, path: str) -> StreamingResponse:
    row, chunks = await run_in_threadpool(_storage(store).iter_bytes, experiment_id, path)
    return artifact_response(row, chunks)


# -- MLflow's artifact proxy -----------------------------------------------------------------------------
def _target(store: TrackingStore, access: DagAccess, path: str) -> tuple[dict[str, Any], str]:
    """``<project_id>/<experiment_id>/artifacts[/<rest>]`` -> (our readable experiment, ``rest``)."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or not parts[0].isdigit() or not parts[1].isdigit() or parts[2] != "artifacts":
        raise MLTrackError(
            "path",
            path,
            "must be <experiment id>/<run id>/artifacts[/<path>] (an artifact_uri of this server)",
        )
    experiment_id = int(parts[1])
    experiment = loaders.load_experiment(store, access, experiment_id)
    if experiment["project_id"] != int(parts[0]):
        raise NotFoundError("path", path, f"run {experiment_id} is not in experiment {parts[0]}")
    rest = artifact_path("path", parts[3] if len(parts) > 3 else "", required=False) or ""
    return experiment, rest


def _has_bearer(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def _writable(request: Request, access: DagAccess, experiment: dict[str, Any]) -> Response | None:
    """An MLflow PERMISSION_DENIED answer when this request may not write, else None."""
    if not _has_bearer(request):
        return mlflow_error(
            "PERMISSION_DENIED",
            f"{request.method} needs the Airflow API token in an 'Authorization: Bearer' header "
            "(MLFLOW_TRACKING_TOKEN); the UI's session cookie may only read",
        )
    if not access.can_edit(experiment.get("dag_id")):
        dag = f"DAG {experiment['dag_id']!r}" if experiment.get("dag_id") else "DAGs"
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
    experiment, rest = await run_in_threadpool(_target, store, access, path)
    found = await run_in_threadpool(store.list_artifacts, experiment["experiment_id"], rest or None)
    files = []
    for child in artifact_children(found, rest):
        entry: dict[str, Any] = {"path": posixpath.basename(child["path"]), "is_dir": child["is_dir"]}
        if not child["is_dir"]:
            entry["file_size"] = child["size_bytes"]
        files.append(entry)
    return Response(json.dumps({"files": files}), media_type="application/json")


@_routes("GET", "/{path:path}")
async def download_mlflow_artifact(path: str, store: StoreDep, access: AccessDep) -> Response:
    """MLflow's DownloadArtifact: the file's bytes, streamed."""
    experiment, rest = await run_in_threadpool(_target, store, access, path)
    if not rest:
        raise MLTrackError("path", path, "names a directory, not a file")
    return await _open(store, experiment["experiment_id"], rest)


@_routes("PUT", "/{path:path}")
async def upload_mlflow_artifact(request: Request, path: str, store: StoreDep, access: AccessDep) -> Response:
    """MLflow's UploadArtifact: the body streamed into storage (sha256 and size on the way), then recorded."""
    experiment, rest = await run_in_threadpool(_target, store, access, path)
    if (refused := _writable(request, access, experiment)) is not None:
        return refused
    if not rest:
        raise MLTrackError("path", path, "must name a file under artifacts/")
    content_type = request.headers.get("content-type") or None
    writer = await run_in_threadpool(_storage(store).writer, experiment["experiment_id"], rest, content_type)
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
    experiment, rest = await run_in_threadpool(_target, store, access, path)
    if (refused := _writable(request, access, experiment)) is not None:
        return refused
    await run_in_threadpool(_storage(store).delete, experiment["experiment_id"], rest or None)
    return Response("{}", media_type="application/json")


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
