"""The API's one write: ``PATCH /mltrack/api/experiments/{id}`` edits an experiment's tags and notes.

Who may: a user allowed to edit the experiment's DAG (:meth:`~.auth.DagAccess.can_edit`); a user who may not
even read it gets the same 404 as for an unknown id, a reader who may not edit a 403. The UI authenticates
with the ``_token`` cookie, which a browser sends along with requests other sites make, so an edit must be
JSON (415 otherwise: an HTML form cannot send it) and its ``Origin``, when given, this server's (403).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from airflow_mltrack.plugins import loaders
from airflow_mltrack.plugins.api_errors import JsonErrorRoute, mltrack_error
from airflow_mltrack.plugins.auth import AccessDep, StoreDep
from airflow_mltrack.plugins.schemas import ExperimentOut
from airflow_mltrack.store.tags import KEEP, MAX_TAGS_PER_EDIT, EditConflictError

router = APIRouter(tags=["ML Tracking"], route_class=JsonErrorRoute)

_DEFAULT_PORTS = {"http": 80, "https": 443}


class ExperimentEditIn(BaseModel):
    """An edit: any of the fields (unknown ones are refused). ``notes`` replaces the notes (null clears them;
    absent keeps them)."""

    model_config = ConfigDict(extra="forbid")

    notes: str | None = Field(default=None, description="the new notes (null clears them; absent: kept)")
    add_tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS_PER_EDIT)
    remove_tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS_PER_EDIT)
    expected_updated_at: dt.datetime | None = Field(
        default=None, description="the updated_at the edit is based on: 409 if the experiment has another"
    )


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL, lower case, without the scheme's default port (as browsers
    send ``Origin``); None for anything else (``null``, a bare word)."""
    try:
        parts = urlsplit(url.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + ("" if port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{port}")


def own_origins(request: Request) -> set[str]:
    """This server's origins: the one the request was sent to, and Airflow's ``[api] base_url``."""
    from airflow.configuration import conf

    found = {origin_of(str(request.url)), origin_of(conf.get("api", "base_url", fallback="") or "")}
    return {origin for origin in found if origin}


def same_origin_json(request: Request) -> None:
    """Refuse an edit another site could make with the user's cookie: a foreign ``Origin`` (403), a body
    that is not JSON (415)."""
    origin = request.headers.get("origin")
    if origin is not None and origin_of(origin) not in own_origins(request):
        raise HTTPException(403, detail=f"edit refused: Origin {origin[:200]!r} is not this server's origin")
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise HTTPException(
            415, detail=f"send the edit as application/json, not {content_type[:100] or 'no content type'!r}"
        )


@router.patch(
    "/experiments/{experiment_id}",
    response_model=ExperimentOut,
    summary="Edit an experiment's tags and notes (needs the DAG's edit permission)",
    dependencies=[Depends(same_origin_json)],
    responses={403: {}, 404: {}, 409: {}, 415: {}, 422: {}},
)
def edit_experiment(experiment_id: int, edit: ExperimentEditIn, store: StoreDep, access: AccessDep) -> Any:
    found = loaders.load_experiment(store, access, experiment_id)  # 404 when the DAG is not readable
    if not access.can_edit(found.get("dag_id")):
        dag = f"DAG {found['dag_id']!r}" if found.get("dag_id") else "DAGs"
        raise HTTPException(
            403,
            detail=f"your Airflow user may read this experiment but not edit it (no edit permission on {dag})",
        )
    try:
        updated = store.edit_experiment(
            experiment_id,
            notes=edit.notes if "notes" in edit.model_fields_set else KEEP,
            add_tags=edit.add_tags,
            remove_tags=edit.remove_tags,
            expected_updated_at=edit.expected_updated_at,
        )
    except EditConflictError as exc:
        response = mltrack_error(exc)
        response.status_code = 409
        return response
    return loaders.hide_secrets(store, [dict(updated)])[0]
