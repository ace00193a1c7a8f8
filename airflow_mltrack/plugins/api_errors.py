"""The JSON API's own error answers: ``{"detail", "field", "value", "reason"}`` with 404 for an unknown
(or hidden) id and 422 for a bad input (plus ``token`` and ``position`` for a search expression that
cannot be read); pydantic's ``{"detail": [...]}`` for a malformed parameter; the
auth 401/403 as ``{"detail": ...}``. A refused value is echoed back at most ``MAX_ECHO`` characters long.

:class:`JsonErrorRoute` is the API router's route class: each API route answers its own errors here, so
the app's exception handlers only render the HTML error page (docs/architecture.md, "plugins").
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store.search import SearchError

MAX_ECHO = 200  # characters of a refused value echoed back in an error body


def _clip(value: Any) -> str:
    return repr(value)[: MAX_ECHO - 3] + "..."


def mltrack_error(exc: MLTrackError) -> JSONResponse:
    """404 for an unknown id, else 422, naming the field and (clipped) value; a search expression's error
    (:class:`~airflow_mltrack.store.search.SearchError`) adds the ``token`` and its 0-based ``position``."""
    status_code = 404 if isinstance(exc, NotFoundError) else 422
    try:
        body = jsonable_encoder(
            {"detail": str(exc), "field": exc.field, "value": exc.value, "reason": exc.reason},
            custom_encoder={float: lambda f: f if f == f and abs(f) != float("inf") else str(f)},
        )
        if len(repr(body["value"])) > MAX_ECHO:  # never echo a huge input back
            body["value"] = _clip(body["value"])
    except (TypeError, ValueError):
        body = {
            "detail": str(exc),
            "field": exc.field,
            "value": repr(exc.value)[:MAX_ECHO],
            "reason": exc.reason,
        }
    if isinstance(exc, SearchError):
        token = str(exc.token)
        body["token"] = token if len(token) <= MAX_ECHO else token[: MAX_ECHO - 3] + "..."
        body["position"] = exc.position
    return JSONResponse(body, status_code=status_code)


def validation_error(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 body, each refused input clipped."""
    errors = jsonable_encoder(exc.errors())
    for error in errors:  # never echo a huge input back
        if len(repr(error.get("input"))) > MAX_ECHO:
            error["input"] = _clip(error["input"])
    return JSONResponse({"detail": errors}, status_code=422)


def http_error(exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def json_error(exc: Exception) -> JSONResponse | None:
    """The JSON answer to ``exc``, or None for an exception that is not an error answer."""
    if isinstance(exc, MLTrackError):
        return mltrack_error(exc)
    if isinstance(exc, RequestValidationError):
        return validation_error(exc)
    if isinstance(exc, StarletteHTTPException):
        return http_error(exc)
    return None


class JsonErrorRoute(APIRoute):
    """An API route that answers its errors (authentication, validation, MLTrackError) as JSON itself."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except (MLTrackError, RequestValidationError, StarletteHTTPException) as exc:
                return json_error(exc)  # type: ignore[return-value]

        return answer


__all__ = ["MAX_ECHO", "JsonErrorRoute", "http_error", "json_error", "mltrack_error", "validation_error"]
