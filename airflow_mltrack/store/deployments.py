"""Deployment endpoints and the endpoint-to-model traffic split (seed 000's associative entity).

A deployment call puts a model on an endpoint at ``traffic_percentage``; the other active models keep at
most ``100 - traffic_percentage`` between them (scaled down proportionally) and are retired when they
reach 0. Every change retires the old row and inserts a new one, so the rows are the rollout history.
The endpoint row is locked first (``UPDATE``), so concurrent deployments to one endpoint serialize.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import rows, utcnow
from airflow_mltrack.store.catalog import ProjectRef, models
from airflow_mltrack.store.models import (
    AIRFLOW_ID_LEN,
    ENDPOINT_STATUSES,
    NAME_LEN,
    DeploymentEndpoint,
    EndpointModel,
)
from airflow_mltrack.store.preprocessing import PreprocessingStore

endpoints = DeploymentEndpoint.__table__
endpoint_models = EndpointModel.__table__
_EPSILON = 1e-9


class DeploymentStore(PreprocessingStore):
    """Endpoints, deployments (canary, promotion, retirement) and their history."""

    def ensure_endpoint(
        self,
        project: ProjectRef,
        name: str,
        url: str | None = None,
        description: str | None = None,
        status: str | None = None,
    ) -> int:
        """The id of endpoint ``name`` of ``project``, created if missing; given fields update it."""
        fields = {
            "url": v.optional_text("url", url, 512),
            "description": v.optional_text("description", description),
            "status": None if status is None else v.choice("status", status, ENDPOINT_STATUSES),
        }
        name_ = v.name("endpoint", name, NAME_LEN)
        fields = {k: value for k, value in fields.items() if value is not None}  # NULL status: the default
        with self._write() as conn:
            return self._endpoint_id(conn, self._project_id(conn, project), name_, fields)

    def _endpoint_id(self, conn: Connection, project_id: int, name: str, fields: dict[str, Any]) -> int:
        return self._get_or_create(
            conn,
            endpoints,
            {"project_id": project_id, "name": name},
            fields,
            "endpoint_id",
            index_elements=["project_id", "name"],
        )

    def deploy_model(
        self,
        project: ProjectRef,
        endpoint: str,
        model_id: int,
        traffic_percentage: float = 100,
        url: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
    ) -> int:
        """Serve ``model_id`` on ``endpoint`` at ``traffic_percentage`` (0 retires it); returns the
        endpoint_models id of the model's active row (or of the retired row when traffic is 0).

        Idempotent: the same call again changes nothing.
        """
        name_ = v.name("endpoint", endpoint, NAME_LEN)
        model_id = v.entity_id("model_id", model_id)
        traffic = v.number("traffic_percentage", traffic_percentage, finite=True)
        if not 0 <= traffic <= 100:
            raise MLTrackError("traffic_percentage", traffic_percentage, "must be between 0 and 100")
        link = {
            "dag_id": v.name("dag_id", dag_id, AIRFLOW_ID_LEN, required=False),
            "run_id": v.name("run_id", run_id, AIRFLOW_ID_LEN, required=False),
        }
        url = v.optional_text("url", url, 512)
        with self._write() as conn:
            project_id = self._project_id(conn, project)
            owner = conn.execute(
                select(models.c.project_id).where(models.c.model_id == model_id)
            ).scalar_one_or_none()
            if owner is None:
                raise NotFoundError("model_id", model_id, "no model with this id")
            if owner != project_id:
                raise MLTrackError("model_id", model_id, "belongs to another project")
            endpoint_id = self._endpoint_id(conn, project_id, name_, {"url": url})
            # Lock the endpoint: deployments to one endpoint run one at a time.
            conn.execute(
                update(endpoints).where(endpoints.c.endpoint_id == endpoint_id).values(updated_at=utcnow())
            )
            active = rows(
                conn.execute(
                    select(endpoint_models)
                    .where(
                        endpoint_models.c.endpoint_id == endpoint_id, endpoint_models.c.retired_at.is_(None)
                    )
                    .order_by(endpoint_models.c.model_id)
                )
            )
            return self._apply_split(conn, endpoint_id, model_id, traffic, active, link)

    def _apply_split(
        self,
        conn: Connection,
        endpoint_id: int,
        model_id: int,
        traffic: float,
        active: list[dict[str, Any]],
        link: dict[str, Any],
    ) -> int:
        now = utcnow()
        mine = next((r for r in active if r["model_id"] == model_id), None)
        others = [r for r in active if r["model_id"] != model_id]
        budget = 100.0 - traffic
        total = sum(r["traffic_percentage"] for r in others)
        if total > budget + _EPSILON:
            scale = budget / total if total else 0.0
            for row in others:
                self._set_traffic(conn, row, round(row["traffic_percentage"] * scale, 6), now, link)
        if mine is not None and abs(mine["traffic_percentage"] - traffic) <= _EPSILON:
            return int(mine["endpoint_model_id"])
        if mine is not None:
            new_id = self._set_traffic(conn, mine, traffic, now, link)
            return int(new_id if new_id is not None else mine["endpoint_model_id"])
        if traffic <= _EPSILON:
            raise MLTrackError("model_id", model_id, "is not active on this endpoint; nothing to retire")
        return self._insert_assignment(conn, endpoint_id, model_id, traffic, now, link)

    def _set_traffic(
        self, conn: Connection, row: dict[str, Any], traffic: float, now: Any, link: dict[str, Any]
    ) -> int | None:
        conn.execute(
            update(endpoint_models)
            .where(endpoint_models.c.endpoint_model_id == row["endpoint_model_id"])
            .values(retired_at=now)
        )
        if traffic <= _EPSILON:
            return None
        return self._insert_assignment(conn, row["endpoint_id"], row["model_id"], traffic, now, link)

    @staticmethod
    def _insert_assignment(
        conn: Connection, endpoint_id: int, model_id: int, traffic: float, now: Any, link: dict[str, Any]
    ) -> int:
        return int(
            conn.execute(
                endpoint_models.insert()
                .values(
                    endpoint_id=endpoint_id,
                    model_id=model_id,
                    traffic_percentage=traffic,
                    promoted_at=now,
                    **link,
                )
                .returning(endpoint_models.c.endpoint_model_id)
            ).scalar_one()
        )

    # -- reads --------------------------------------------------------------------------------------
    def _assignment_query(self) -> Any:
        return (
            select(
                endpoint_models,
                endpoints.c.name.label("endpoint"),
                models.c.name.label("model_name"),
                models.c.version.label("model_version"),
            )
            .join(endpoints, endpoints.c.endpoint_id == endpoint_models.c.endpoint_id)
            .join(models, models.c.model_id == endpoint_models.c.model_id)
        )

    def endpoint_state(self, project: ProjectRef, endpoint: str) -> list[dict[str, Any]]:
        """The active models of an endpoint with their traffic, highest share first."""
        with self._read() as conn:
            endpoint_id = self._lookup_endpoint(conn, project, endpoint)
            query = self._assignment_query().where(
                endpoint_models.c.endpoint_id == endpoint_id, endpoint_models.c.retired_at.is_(None)
            )
            return rows(conn.execute(query.order_by(endpoint_models.c.traffic_percentage.desc())))

    def endpoint_history(self, project: ProjectRef, endpoint: str) -> list[dict[str, Any]]:
        """Every traffic assignment of an endpoint, oldest first."""
        with self._read() as conn:
            endpoint_id = self._lookup_endpoint(conn, project, endpoint)
            query = self._assignment_query().where(endpoint_models.c.endpoint_id == endpoint_id)
            return rows(conn.execute(query.order_by(endpoint_models.c.endpoint_model_id)))

    def list_endpoints(self, project: ProjectRef | None = None) -> list[dict[str, Any]]:
        query = select(endpoints).order_by(endpoints.c.name)
        with self._read() as conn:
            if project is not None:
                query = query.where(endpoints.c.project_id == self._lookup_project_id(conn, project))
            return rows(conn.execute(query))

    def _lookup_endpoint(self, conn: Connection, project: ProjectRef, endpoint: str) -> int:
        project_id = self._lookup_project_id(conn, project)
        endpoint_id = conn.execute(
            select(endpoints.c.endpoint_id).where(
                endpoints.c.project_id == project_id, endpoints.c.name == endpoint
            )
        ).scalar_one_or_none()
        if endpoint_id is None:
            raise NotFoundError("endpoint", endpoint, "no such endpoint in this project")
        return int(endpoint_id)
