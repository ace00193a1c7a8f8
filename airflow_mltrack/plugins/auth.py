"""Who may see what: Airflow's auth manager decides, per request.

Airflow does not authenticate plugin FastAPI apps, so the app carries :data:`REQUIRE_PLUGIN_ACCESS` itself
(a signed-in user - JWT in the ``Authorization: Bearer`` header or the UI's ``_token`` cookie - allowed to
view plugins; else 401/403). Then :class:`DagAccess` filters experiments per DAG: an experiment, job or
deployment written by a DAG the user may not read is neither listed nor shown (it answers 404, as if it
did not exist). Rows written outside Airflow (no ``dag_id``) are visible to every signed-in user.
Editing an experiment's tags and notes needs the DAG's edit permission (:meth:`DagAccess.can_edit`).
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagDetails
from airflow.api_fastapi.core_api.security import get_user, requires_access_view
from fastapi import Depends, Request

from airflow_mltrack.errors import NotFoundError
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.visibility import dag_ids
from airflow_mltrack.vocabulary import DEFAULT_CONN_ID

#: The app-wide dependency: a signed-in Airflow user allowed to view plugins.
REQUIRE_PLUGIN_ACCESS = Depends(requires_access_view(AccessView.PLUGINS))

_STORE_TTL_SECONDS = 30.0
_store_cache: dict[str, tuple[float, TrackingStore]] = {}
_store_lock = threading.Lock()


def conn_id_for(request: Request) -> str:
    return getattr(request.app.state, "mltrack_conn_id", None) or DEFAULT_CONN_ID


def get_store(request: Request) -> TrackingStore:
    """The tracking store of the app's connection (resolved again at most every 30 s, so an edited
    Airflow connection is picked up without restarting the API server)."""
    from airflow_mltrack.hooks import MLTrackHook

    conn_id = conn_id_for(request)
    now = time.monotonic()
    with _store_lock:
        cached = _store_cache.get(conn_id)
        if cached is not None and now - cached[0] < _STORE_TTL_SECONDS:
            return cached[1]
    store = MLTrackHook(mltrack_conn_id=conn_id).get_store()
    with _store_lock:
        _store_cache[conn_id] = (now, store)
    return store


def clear_store_cache() -> None:
    with _store_lock:
        _store_cache.clear()


class DagAccess:
    """The DAGs the current user may read, asked of the auth manager once per request.

    Lists never filter rows in Python: ``visible_dag_ids`` goes into the SQL query (before any LIMIT);
    :meth:`check` is for one row fetched by id.
    """

    def __init__(self, user: BaseUser, store: TrackingStore) -> None:
        self.user = user
        self.store = store
        self._visible: set[str] | None = None
        self._checked: dict[str, bool] = {}
        self._editable: dict[str | None, bool] = {}

    @property
    def visible_dag_ids(self) -> set[str]:
        """Every DAG id in the tracking store that the user may read."""
        if self._visible is None:
            known = dag_ids(self.store)
            self._visible = (
                get_auth_manager().filter_authorized_dag_ids(dag_ids=known, user=self.user, method="GET")
                if known
                else set()
            )
        return self._visible

    def can_read(self, dag_id: str | None) -> bool:
        if dag_id is None:
            return True
        if self._visible is not None:
            return dag_id in self._visible
        if dag_id not in self._checked:
            self._checked[dag_id] = get_auth_manager().is_authorized_dag(
                method="GET", details=DagDetails(id=dag_id), user=self.user
            )
        return self._checked[dag_id]

    def can_edit(self, dag_id: str | None) -> bool:
        """Whether the user may edit rows of DAG ``dag_id`` (the DAG's edit permission: PUT); for a row
        written outside Airflow (no ``dag_id``), whether the user may edit DAGs in general."""
        if dag_id not in self._editable:
            details = None if dag_id is None else DagDetails(id=dag_id)
            self._editable[dag_id] = get_auth_manager().is_authorized_dag(
                method="PUT", details=details, user=self.user
            )
        return self._editable[dag_id]

    def check(self, row: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
        """``row`` if its DAG is readable, else the same 404 as an unknown id."""
        if not self.can_read(row.get("dag_id")):
            raise NotFoundError(field, value, "no experiment with this id")
        return row


def dag_access(
    user: Annotated[BaseUser, Depends(get_user)], store: Annotated[TrackingStore, Depends(get_store)]
) -> DagAccess:
    return DagAccess(user, store)


StoreDep = Annotated[TrackingStore, Depends(get_store)]
AccessDep = Annotated[DagAccess, Depends(dag_access)]
