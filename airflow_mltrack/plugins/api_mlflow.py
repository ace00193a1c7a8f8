"""MLflow's tracking REST protocol at ``/mlflow`` (``/mltrack/mlflow`` in Airflow): with
``MLFLOW_TRACKING_URI=http://<api-server>/mltrack/mlflow`` and ``MLFLOW_TRACKING_TOKEN=<Airflow API token>``
the unmodified MLflow client reads and writes the tracking store (docs/mlflow.md, "REST").

One catch-all route hands each request to :func:`airflow_mltrack.mlflow.rest.handle` in a worker thread
(the store is synchronous). Every answer, errors included, is MLflow-shaped: ``{"error_code", "message"}``
with the HTTP status MLflow gives that code - the app's 401/403 too. Auth: a signed-in Airflow user (the
app's :data:`~airflow_mltrack.plugins.auth.REQUIRE_PLUGIN_ACCESS`); writes also need the token in an
``Authorization: Bearer`` header (a request carrying only the UI cookie may not write: no cross-site
writes) and the DAG's edit permission (:class:`~airflow_mltrack.plugins.auth.DagAccess`). Without the
``mlflow`` package every route answers 501 naming the extra to install.

Include this router after any router with more specific ``/mlflow/...`` paths (the artifact proxy).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import get_user
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.plugins.auth import DagAccess, StoreDep

#: Largest request body read, in bytes (a log-batch body is at most 1 MB in MLflow).
MAX_BODY_BYTES = 16 * 1024 * 1024
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MISSING_EXTRA = (
    "The MLflow REST protocol needs the mlflow client package on the Airflow API server: "
    "pip install 'airflow-mltrack[mlflow]'"
)
#: The HTTP status of each error code answered here without mlflow (MlflowException.get_http_status_code).
_STATUS = {
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "ENDPOINT_NOT_FOUND": 404,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "INVALID_PARAMETER_VALUE": 400,
    "NOT_IMPLEMENTED": 501,
    "INTERNAL_ERROR": 500,
}


def mlflow_error(error_code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """An MLflow-shaped error answer."""
    body = json.dumps({"error_code": error_code, "message": message})
    return Response(body, status_code=_STATUS[error_code], media_type="application/json", headers=headers)


#: Airflow's 403 for a token it cannot read: a failed authentication for MLflow's client (401).
_INVALID_TOKEN = "Invalid JWT token"  # noqa: S105 - an error message, not a secret


def _http_error(exc: StarletteHTTPException) -> Response:
    code = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "ENDPOINT_NOT_FOUND"}.get(exc.status_code)
    if exc.status_code == 403 and exc.detail == _INVALID_TOKEN:
        code = "UNAUTHENTICATED"
    if code is None:
        code = "INVALID_PARAMETER_VALUE" if 400 <= exc.status_code < 500 else "INTERNAL_ERROR"
    if code == "UNAUTHENTICATED":
        message = f"Not authenticated ({exc.detail}): send an Airflow API token as MLFLOW_TRACKING_TOKEN"
    elif code == "PERMISSION_DENIED":
        message = f"Your Airflow user may not use the ML Tracking plugin ({exc.detail})"
    else:
        message = str(exc.detail)
    return mlflow_error(code, message, headers=getattr(exc, "headers", None))


class MlflowErrorRoute(APIRoute):
    """A route answering its errors - authentication (401/403), a NUL character, a bad parameter - as
    MLflow does, instead of the app's HTML or JSON error shapes."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except StarletteHTTPException as exc:
                return _http_error(exc)
            except NotFoundError as exc:
                return mlflow_error("RESOURCE_DOES_NOT_EXIST", str(exc))
            except MLTrackError as exc:
                return mlflow_error("INVALID_PARAMETER_VALUE", str(exc))
            except RequestValidationError as exc:
                return mlflow_error("INVALID_PARAMETER_VALUE", str(exc.errors())[:500])

        return answer


router = APIRouter(include_in_schema=False, route_class=MlflowErrorRoute)


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is longer than :data:`MAX_BODY_BYTES` (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(*args: Any) -> tuple[int, str | bytes]:
    """:func:`airflow_mltrack.mlflow.rest.handle` (run in a worker thread: the first import of mlflow and
    every store call block); 501 naming the extra when the mlflow package is missing."""
    try:
        from airflow_mltrack.mlflow import rest
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] != "mlflow":
            raise
        return 501, json.dumps({"error_code": "NOT_IMPLEMENTED", "message": MISSING_EXTRA})
    return rest.handle(*args)


def _has_bearer(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


@router.api_route("/mlflow/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def mlflow_rest(
    request: Request, path: str, user: Annotated[BaseUser, Depends(get_user)], store: StoreDep
) -> Response:
    """Any MLflow tracking endpoint (``/mlflow/api/2.0/mlflow/...``, ``/mlflow/ajax-api/2.0/...``,
    ``/mlflow/api/3.0/...``)."""
    if request.method in WRITE_METHODS and not _has_bearer(request):
        return mlflow_error(
            "PERMISSION_DENIED",
            f"{request.method} needs the Airflow API token in an 'Authorization: Bearer' header "
            "(MLFLOW_TRACKING_TOKEN); the UI's session cookie may only read",
        )
    body = await _read_body(request)
    if body is None:
        return mlflow_error("INVALID_PARAMETER_VALUE", f"The request body is over {MAX_BODY_BYTES} bytes")
    status, text = await run_in_threadpool(
        _answer,
        request.method,
        "/" + path,
        request.query_params.multi_items(),
        body,
        request.headers.get("content-type"),
        store,
        DagAccess(user, store),
    )
    return Response(text, status_code=status, media_type="application/json")


__all__ = ["MAX_BODY_BYTES", "MlflowErrorRoute", "mlflow_error", "router"]
