"""The ML Tracking FastAPI app: JSON API under ``/api`` (:mod:`.api`), HTML pages (:mod:`.pages`), static
files, OpenAPI.

Airflow mounts it at ``/mltrack`` (see ``mltrack_plugin.py``). Use :data:`app` there: a lazy ASGI wrapper
that builds the real app on its first request, so importing the plugin stays cheap in processes that never
serve HTTP (scheduler, workers, CLI). :func:`create_app` builds one directly (tests).

Every route - pages, API, OpenAPI and static files - needs a signed-in Airflow user allowed to view
plugins (Airflow gives plugin apps no authentication of their own).
"""

# No ``from __future__ import annotations``: FastAPI must resolve the route functions' annotations, and
# their types are imported inside create_app (to keep importing this module cheap).
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

#: Headers of every response: no MIME sniffing, no framing outside the Airflow UI (same origin), no inline
#: scripts (the pages have none), and nothing cached that did not ask to be (the JSON API, errors).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
    ),
}


class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` and ``Cache-Control: no-store`` on every answer that does
    not set them itself. Plain ASGI (it edits the response's start message), not Starlette's
    ``BaseHTTPMiddleware``, which runs each request in a task of its own with a memory stream for the body:
    a tenth of the server's time on a small MLflow REST call."""

    def __init__(self, app: Any) -> None:
        from starlette.datastructures import MutableHeaders

        self.app = app
        self._headers = MutableHeaders

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = self._headers(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


STATIC_MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".txt": "text/plain", "": "text/plain"}


def create_app(conn_id: str | None = None) -> "FastAPI":
    """A new app reading the tracking store of Airflow connection ``conn_id``.

    Default: ``[mltrack] conn_id`` from the Airflow config (``AIRFLOW__MLTRACK__CONN_ID``), else
    ``mltrack_default``.
    """
    from pathlib import Path

    from airflow.configuration import conf
    from fastapi import APIRouter, Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from airflow_mltrack import __version__
    from airflow_mltrack.errors import MLTrackError, NotFoundError
    from airflow_mltrack.plugins import (
        api,
        api_artifacts,
        api_curves,
        api_edits,
        api_errors,
        api_mlflow,
        pages,
    )
    from airflow_mltrack.plugins.auth import DEFAULT_CONN_ID, REQUIRE_PLUGIN_ACCESS
    from airflow_mltrack.plugins.rendering import app_path, render_error

    def no_nul_characters(request: Request) -> None:
        """A NUL character in the path or a query parameter is a 422 naming it (PostgreSQL text cannot
        hold one, and no name or id has one); checked after authentication."""
        if "\x00" in request.scope.get("path", ""):
            raise MLTrackError("path", request.scope["path"], "must not contain NUL characters")
        for key, value in request.query_params.multi_items():
            if "\x00" in key or "\x00" in value:
                raise MLTrackError(key, value, "must not contain NUL characters")

    app = FastAPI(
        title="airflow-mltrack",
        version=__version__,
        description="Experiment tracking inside Apache Airflow: projects, datasets, models, experiments, "
        "metrics, lineage and deployments. Authenticate as for the Airflow API (Bearer JWT or the UI's "
        "`_token` cookie).",
        dependencies=[REQUIRE_PLUGIN_ACCESS, Depends(no_nul_characters)],
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.mltrack_conn_id = conn_id or conf.get("mltrack", "conn_id", fallback=None) or DEFAULT_CONN_ID

    app.add_middleware(SecurityHeaders)

    # The JSON API and the machine-read files answer their own errors as JSON (api_errors.JsonErrorRoute).
    app.include_router(api.router, prefix="/api")
    app.include_router(api_curves.router, prefix="/api")  # curves: downsampled, zoom, downloads
    app.include_router(api_edits.router, prefix="/api")  # PATCH /api/experiments/{id}: tags and notes
    app.include_router(api_artifacts.api_router, prefix="/api")  # an experiment's artifacts: list, download
    files = APIRouter(include_in_schema=False, route_class=api_errors.JsonErrorRoute)
    static_root = (Path(__file__).parent / "static").resolve()

    @files.get("/openapi.json")
    def openapi(request: Request) -> JSONResponse:
        schema = dict(app.openapi())
        root_path = request.scope.get("root_path", "")
        if root_path:
            schema["servers"] = [{"url": root_path}]
        return JSONResponse(schema)

    @files.get("/static/{path:path}")
    def static(path: str) -> Response:
        target = (static_root / path).resolve()
        if not target.is_relative_to(static_root) or not target.is_file():
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        media_type = STATIC_MEDIA_TYPES.get(target.suffix)
        # Vendored files have the version in their path; our own CSS/JS may change with a release.
        max_age = 86400 if "/vendor/" in f"/{path}" else 300
        return FileResponse(
            target, media_type=media_type, headers={"Cache-Control": f"private, max-age={max_age}"}
        )

    app.include_router(files)
    app.include_router(pages.router)
    # MLflow's REST protocol under /mlflow (a catch-all answering MLflow-shaped errors): include any more
    # specific /mlflow/... router (the artifact proxy) before it.
    app.include_router(api_artifacts.router)  # MLflow's artifact proxy (mlflow-artifacts)
    app.include_router(api_mlflow.router)

    # The handlers below answer the pages (HTML), and requests no route matched (404, 405): as JSON
    # under the API's and the files' paths.
    def machine_path(request: Request) -> bool:
        path = app_path(request)
        return path.startswith(("/api/", "/openapi.json", "/static/")) or path == "/api"

    @app.exception_handler(MLTrackError)
    def mltrack_error(request: Request, exc: MLTrackError) -> Response:
        status_code = 404 if isinstance(exc, NotFoundError) else 422
        title = "Not found" if status_code == 404 else "Invalid request"
        return render_error(request, status_code, title, str(exc), field=exc.field, reason=exc.reason)

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ())[1:]) or 'request'}: {err.get('msg')}"
            for err in exc.errors()
        )
        return render_error(request, 422, "Invalid request", problems, field=None, reason=None)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if machine_path(request):
            return api_errors.http_error(exc)
        if exc.status_code == 401:
            message = "You are not signed in to Airflow (or your session expired)."
            title = "Sign in required"
        elif exc.status_code == 403:
            message = f"Your Airflow user may not view plugin pages ({exc.detail})."
            title = "Forbidden"
        else:
            message, title = str(exc.detail), "Error"
        return render_error(
            request,
            exc.status_code,
            title,
            message,
            field=None,
            reason=None,
            login=exc.status_code in (401, 403),
        )

    return app


class LazyApp:
    """An ASGI app that builds :func:`create_app` on first use (thread-safe)."""

    def __init__(self, conn_id: str | None = None) -> None:
        self._conn_id = conn_id
        self._app: Any = None
        self._lock = threading.Lock()

    def get(self) -> "FastAPI":
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = create_app(self._conn_id)
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.get()(scope, receive, send)


#: What the Airflow plugin mounts at ``/mltrack``.
app = LazyApp()
