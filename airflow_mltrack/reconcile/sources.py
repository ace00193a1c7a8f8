"""Where the runs of a source DAG and their XComs come from (a :class:`RunSource`), chosen by where the
code runs:

- :class:`TaskSDKRunSource`: inside a task on a real worker (and under ``dag.test()``). Uses only the
  Task SDK's supervisor channel (the Execution API): ``GetPreviousDagRun`` walked backwards from the end
  of the range to list runs, ``XCom.get_one`` to read values. Needs no credentials and no metadata-DB
  access (which Airflow 3 workers do not have).
- :class:`RestApiRunSource`: the public REST API ``/api/v2`` through an Airflow HTTP connection (or a base
  URL and a token). Filters by logical date and also finds runs without a logical date by ``run_after``.
- :class:`MetadataDBRunSource`: the metadata-DB ORM, for the CLI outside any worker when the API server
  is not reachable. Never use it inside a task.

Airflow is imported inside the methods only: importing this module stays cheap.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.reconcile.spec import as_utc


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What a :class:`RunSource` returns for an XCom that does not exist."""


@dataclass(frozen=True)
class SourceRun:
    """One DAG run of a source DAG, as a :class:`RunSource` lists it."""

    dag_id: str
    run_id: str
    logical_date: dt.datetime | None
    run_after: dt.datetime | None
    state: str | None = None

    @property
    def when(self) -> dt.datetime | None:
        """The date the run is filed under: its logical date, else its run_after."""
        return self.logical_date or self.run_after


class RunSource(Protocol):
    """Where runs and XComs come from (Task SDK, REST API or metadata DB)."""

    name: str

    def list_runs(self, dag_id: str, start: dt.datetime, end: dt.datetime) -> list[SourceRun]:
        """Runs of ``dag_id`` whose logical date (or run_after, when it has none) is in [start, end)."""
        ...

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        """The XCom value, or :data:`MISSING`."""
        ...


# -- run sources ------------------------------------------------------------------------------------
class TaskSDKRunSource:
    """Runs and XComs through the Task SDK (the supervisor's Execution API channel): for tasks.

    Lists runs by walking ``GetPreviousDagRun`` backwards from ``end`` (one round trip per run in the
    range, plus one), so the cost follows the range, not the DAG's history. Runs without a logical date
    (manual runs triggered with ``logical_date=None``) are not reachable this way: use the REST API source
    for those.
    """

    name = "task-sdk"

    def list_runs(self, dag_id: str, start: dt.datetime, end: dt.datetime) -> list[SourceRun]:
        from airflow.sdk.execution_time.comms import GetPreviousDagRun, PreviousDagRunResult
        from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

        if SUPERVISOR_COMMS is None:
            raise MLTrackError(
                "run source", self.name, "no Task SDK supervisor: this only works inside a task"
            )
        start, end = as_utc(start), as_utc(end)
        found: list[SourceRun] = []
        cursor = end
        while True:
            response = SUPERVISOR_COMMS.send(GetPreviousDagRun(dag_id=dag_id, logical_date=cursor))
            if not isinstance(response, PreviousDagRunResult):
                raise MLTrackError(
                    "dag_id", dag_id, f"unexpected answer from the supervisor: {type(response).__name__}"
                )
            run = response.dag_run
            if run is None or run.logical_date is None or as_utc(run.logical_date) < start:
                break
            found.append(
                SourceRun(
                    dag_id, run.run_id, as_utc(run.logical_date), as_utc(run.run_after), str(run.state.value)
                )
            )
            cursor = run.logical_date
        found.reverse()
        return found

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        from airflow.sdk.execution_time.xcom import XCom  # the configured XCom backend

        value = XCom.get_one(key=key, dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index)
        return MISSING if value is None else value


class RestApiRunSource:
    """Runs and XComs through Airflow's public REST API (``/api/v2``), e.g. from the CLI or a task.

    ``base_url`` is the API server's root (``http://airflow:8080``); authentication is a bearer token, given
    directly or obtained from ``/auth/token`` with a username and password (the simple and FAB auth
    managers answer there). ``client``: an ``httpx.Client`` to use instead (tests pass one on the app).
    """

    name = "rest-api"
    page_size = 100

    def __init__(
        self,
        base_url: str = "",
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        client: Any = None,
        timeout: float = 30.0,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self.client = client if client is not None else httpx.Client(base_url=self.base_url, timeout=timeout)
        if token is None and username:
            token = self._fetch_token(username, password or "")
        if token:
            self.client.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_connection(cls, conn_id: str, **kwargs: Any) -> RestApiRunSource:
        """From an Airflow connection (type ``http``): Host (with scheme), Port and Schema build the base URL;
        Password alone is a token; Login + Password are exchanged for one; extra ``{"token": ...}`` also works.
        """
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        extra = conn.extra_dejson or {}
        host = (conn.host or "").rstrip("/")
        if not host:
            raise MLTrackError(
                "host", conn.host, f"connection {conn_id!r}: the Airflow API base URL is required"
            )
        if "://" not in host:
            scheme = conn.conn_type if conn.conn_type in ("http", "https") else "http"
            host = f"{scheme}://{host}"
        if conn.port:
            host = f"{host}:{conn.port}"
        if conn.schema:
            host = f"{host}/{conn.schema.strip('/')}"
        token = extra.get("token")
        if token is None and conn.password and not conn.login:
            token = conn.password
        return cls(host, token=token, username=conn.login or None, password=conn.password, **kwargs)

    def _fetch_token(self, username: str, password: str) -> str:
        response = self.client.post("/auth/token", json={"username": username, "password": password})
        if response.status_code >= 400:
            raise MLTrackError(
                "login", username, f"the API server refused the credentials ({response.status_code})"
            )
        return str(response.json()["access_token"])

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self.client.get(path, params=params)
        if response.status_code == 404:
            return MISSING
        if response.status_code >= 400:
            raise MLTrackError("api", path, f"HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    def _pages(self, dag_id: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        from urllib.parse import quote

        offset = 0
        while True:
            page = self._get(
                f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns",
                {**params, "limit": self.page_size, "offset": offset, "order_by": "id"},
            )
            if page is MISSING:
                raise MLTrackError("dag_id", dag_id, "no such DAG on the API server")
            runs = page.get("dag_runs", [])
            yield from runs
            offset += len(runs)
            if not runs or offset >= int(page.get("total_entries", 0)):
                return

    def list_runs(self, dag_id: str, start: dt.datetime, end: dt.datetime) -> list[SourceRun]:
        start, end = as_utc(start), as_utc(end)
        found: dict[str, SourceRun] = {}
        window = {"logical_date_gte": start.isoformat(), "logical_date_lt": end.isoformat()}
        by_run_after = {"run_after_gte": start.isoformat(), "run_after_lt": end.isoformat()}
        for params in (window, by_run_after):
            for raw in self._pages(dag_id, params):
                run = SourceRun(
                    dag_id,
                    raw["dag_run_id"],
                    _parse_dt(raw.get("logical_date")),
                    _parse_dt(raw.get("run_after")),
                    raw.get("state"),
                )
                if params is by_run_after and run.logical_date is not None:
                    continue  # filed under its logical date (first query)
                found.setdefault(run.run_id, run)
        return _sorted_runs(found.values())

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        from urllib.parse import quote

        path = (
            f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
            f"/taskInstances/{quote(task_id, safe='')}/xcomEntries/{quote(key, safe='')}"
        )
        body = self._get(path, {"map_index": map_index})
        if body is MISSING:
            return MISSING
        return decode_stored_xcom(body.get("value"))


class MetadataDBRunSource:
    """Runs and XComs read with the metadata-DB ORM: for the CLI outside any task only.

    Airflow 3 workers have no metadata-DB access; a task must use :class:`TaskSDKRunSource` or
    :class:`RestApiRunSource`.
    """

    name = "metadata-db"

    def list_runs(self, dag_id: str, start: dt.datetime, end: dt.datetime) -> list[SourceRun]:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import and_, or_, select

        start, end = as_utc(start), as_utc(end)
        query = select(DagRun.run_id, DagRun.logical_date, DagRun.run_after, DagRun.state).where(
            DagRun.dag_id == dag_id,
            or_(
                and_(DagRun.logical_date >= start, DagRun.logical_date < end),
                and_(DagRun.logical_date.is_(None), DagRun.run_after >= start, DagRun.run_after < end),
            ),
        )
        with create_session() as session:
            rows = session.execute(query).all()
        return _sorted_runs(
            SourceRun(
                dag_id,
                r.run_id,
                _aware(r.logical_date),
                _aware(r.run_after),
                str(r.state) if r.state else None,
            )
            for r in rows
        )

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.scalars(
                XComModel.get_many(
                    run_id=run_id, key=key, task_ids=task_id, dag_ids=dag_id, map_indexes=map_index, limit=1
                )
            ).first()
            if row is None:
                return MISSING
            row = row[0] if isinstance(row, tuple) else row
            return XComModel.deserialize_value(row)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else as_utc(value)


def _parse_dt(value: str | None) -> dt.datetime | None:
    return None if not value else as_utc(value)


def _sorted_runs(runs: Iterable[SourceRun]) -> list[SourceRun]:
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(runs, key=lambda r: (r.when or far, r.run_id))


def decode_stored_xcom(value: Any) -> Any:
    """An XCom value as the REST API returns it (the stored, serialized form) turned back into Python."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict) and "__classname__" in value:
        from airflow.sdk.serde import deserialize

        return deserialize(value)
    return value


def source_from_env(api_conn_id: str | None = None) -> RunSource:
    """The right source where the code runs: the REST API when a connection is named, else the Task SDK."""
    if api_conn_id:
        return RestApiRunSource.from_connection(api_conn_id)
    return TaskSDKRunSource()
