"""Deployment endpoints and the endpoint-to-model traffic split (seed 000's associative entity).

A deployment call puts a model on an endpoint at ``traffic_percentage``; the other active models keep at
most ``100 - traffic_percentage`` between them (scaled down proportionally) and are retired when they
reach 0. Every change retires the old row and inserts a new one, so the rows are the rollout history; each
new row records its ``kind`` (deploy, canary, promote, rollback, adjust).
The endpoint row is locked first (``UPDATE``), so concurrent deployments to one endpoint serialize.

Shares are allocated exactly on a fixed scale of ``TRAFFIC_DECIMALS`` decimals (whole micro-percents):
a share is rounded to that scale on the way in, the scaled-down shares of the other models sum to exactly
the budget left (the rounding remainder goes to the largest of them), so the active shares of an endpoint
never sum past 100. ``TRAFFIC_TOLERANCE`` (half a unit of that scale) is the one tolerance with which
both the store and ``mltrack integrity`` compare sums of shares stored as doubles.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from sqlalchemy import Connection, exists, select, update

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import ProjectRef, StoreBase, rows, utcnow
from airflow_mltrack.store.models import AIRFLOW_ID_LEN, ENDPOINT_STATUSES, NAME_LEN
from airflow_mltrack.store.tables import deployment_endpoints as endpoints
from airflow_mltrack.store.tables import endpoint_models, models

log = logging.getLogger(__name__)

#: Decimals of a stored traffic share: shares are whole multiples of 10**-TRAFFIC_DECIMALS percent.
TRAFFIC_DECIMALS = 6
_UNITS = 10**TRAFFIC_DECIMALS  # units per percent
_FULL = 100 * _UNITS
#: Tolerance for a sum of stored shares (doubles) against 100: half a unit of the fixed scale.
TRAFFIC_TOLERANCE = 0.5 / _UNITS


def traffic_units(percentage: float) -> int:
    """``percentage`` on the fixed scale: a whole number of units (10**-TRAFFIC_DECIMALS percent)."""
    return round(percentage * _UNITS)


def _percent(units: int) -> float:
    return units / _UNITS


def _scale_down(shares: list[int], budget: int) -> list[int]:
    """``shares`` scaled down proportionally to sum to exactly ``budget`` (< their sum): each is floored,
    and the remainder (fewer units than there are shares) goes to the largest share."""
    total = sum(shares)
    scaled = [share * budget // total for share in shares]
    remainder = budget - sum(scaled)
    if remainder:
        largest = max(range(len(shares)), key=lambda i: (shares[i], -i))
        scaled[largest] += remainder
    return scaled


class Deployment(NamedTuple):
    """What one deployment call did.

    ``endpoint_model_id``: the model's active row (its retired row when traffic is 0); ``kind``: the rollout
    kind of that row (None for a retirement, and for rows written before kinds were recorded);
    ``active_traffic``: the endpoint's active traffic afterwards, in percent; ``warning``: set (and logged)
    when that is below 100.
    """

    endpoint_model_id: int
    kind: str | None
    active_traffic: float
    warning: str | None


class DeploymentStore(StoreBase):
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
        with self.write() as conn:
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

    def deploy_model(self, *args: Any, **kwargs: Any) -> int:
        """:meth:`deploy` (the same arguments), returning only the endpoint_models id of the model's active
        row (or of the retired row when traffic is 0).

        Idempotent: the same call again changes nothing. :meth:`deploy` also tells the rollout kind and
        warns when the endpoint's active traffic ends below 100 %.
        """
        return self.deploy(*args, **kwargs).endpoint_model_id

    def deploy(
        self,
        project: ProjectRef,
        endpoint: str,
        model_id: int,
        traffic_percentage: float = 100,
        url: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
    ) -> Deployment:
        """Serve ``model_id`` on ``endpoint`` at ``traffic_percentage`` (0 retires it); returns a
        :class:`Deployment`: the row id, its rollout kind, the endpoint's active traffic afterwards, and a
        warning (also logged) when that is below 100 %."""
        name_ = v.name("endpoint", endpoint, NAME_LEN)
        model_id = v.entity_id("model_id", model_id)
        traffic = v.number("traffic_percentage", traffic_percentage, finite=True)
        if not 0 <= traffic <= 100:
            raise MLTrackError("traffic_percentage", traffic_percentage, "must be between 0 and 100")
        if traffic and not traffic_units(traffic):
            raise MLTrackError(
                "traffic_percentage",
                traffic_percentage,
                f"must be 0 or at least {_percent(1):g} (the finest share)",
            )
        link = {
            "dag_id": v.airflow_id("dag_id", dag_id, AIRFLOW_ID_LEN),
            "run_id": v.airflow_id("run_id", run_id, AIRFLOW_ID_LEN),
        }
        url = v.optional_text("url", url, 512)
        with self.write() as conn:
            project_id = self._project_id(conn, project)
            owner = conn.execute(
                select(models.c.project_id).where(models.c.model_id == model_id)
            ).scalar_one_or_none()
            if owner is None:
                raise NotFoundError("model_id", model_id, "no model with this id")
            if owner != project_id:
                raise self._foreign(conn, "model_id", model_id, owner, project_id)
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
            row_id, kind, total = self._apply_split(
                conn, endpoint_id, model_id, traffic_units(traffic), active, link
            )
        warning = None
        if total < _FULL:
            served = f"{_percent(total):g} %" if total else "no traffic"
            warning = (
                f"endpoint {name_!r} of project {project!r} now serves {served}: its active models' traffic "
                "sums below 100 %"
            )
            log.warning("%s", warning)
        return Deployment(row_id, kind, _percent(total), warning)

    def _apply_split(
        self,
        conn: Connection,
        endpoint_id: int,
        model_id: int,
        traffic: int,
        active: list[dict[str, Any]],
        link: dict[str, Any],
    ) -> tuple[int, str | None, int]:
        """Put ``model_id`` at ``traffic`` units; returns (its row id, the row's kind, active units after)."""
        now = utcnow()
        mine = next((r for r in active if r["model_id"] == model_id), None)
        others = [r for r in active if r["model_id"] != model_id]
        shares = [traffic_units(r["traffic_percentage"]) for r in others]
        budget = _FULL - traffic
        if sum(shares) > budget:
            shares = _scale_down(shares, budget)
            for row, share in zip(others, shares, strict=True):
                if share != traffic_units(row["traffic_percentage"]):
                    self._set_traffic(conn, row, share, now, link, "adjust")
        total = sum(shares) + traffic
        if mine is not None and traffic_units(mine["traffic_percentage"]) == traffic:
            return int(mine["endpoint_model_id"]), mine.get("kind"), total
        if mine is not None:
            kind = "promote" if traffic == _FULL else "adjust"
            new_id = self._set_traffic(conn, mine, traffic, now, link, kind)
            if new_id is None:
                return int(mine["endpoint_model_id"]), None, total
            return new_id, kind, total
        if traffic == 0:
            raise MLTrackError("model_id", model_id, "is not active on this endpoint; nothing to retire")
        kind = self._new_model_kind(conn, endpoint_id, model_id, traffic, others)
        return self._insert_assignment(conn, endpoint_id, model_id, traffic, now, link, kind), kind, total

    @staticmethod
    def _new_model_kind(
        conn: Connection, endpoint_id: int, model_id: int, traffic: int, others: list[dict[str, Any]]
    ) -> str:
        """The kind of a model's first active row in a while: ``rollback`` if it served this endpoint
        before, ``deploy`` on an endpoint serving nothing, ``promote`` at 100 %, else ``canary``."""
        served_before = conn.execute(
            select(
                exists().where(
                    endpoint_models.c.endpoint_id == endpoint_id, endpoint_models.c.model_id == model_id
                )
            )
        ).scalar()
        if served_before:
            return "rollback"
        if not others:
            return "deploy"
        return "promote" if traffic == _FULL else "canary"

    def _set_traffic(
        self, conn: Connection, row: dict[str, Any], traffic: int, now: Any, link: dict[str, Any], kind: str
    ) -> int | None:
        conn.execute(
            update(endpoint_models)
            .where(endpoint_models.c.endpoint_model_id == row["endpoint_model_id"])
            .values(retired_at=now)
        )
        if traffic == 0:
            return None
        return self._insert_assignment(conn, row["endpoint_id"], row["model_id"], traffic, now, link, kind)

    @staticmethod
    def _insert_assignment(
        conn: Connection,
        endpoint_id: int,
        model_id: int,
        traffic: int,
        now: Any,
        link: dict[str, Any],
        kind: str,
    ) -> int:
        return int(
            conn.execute(
                endpoint_models.insert()
                .values(
                    endpoint_id=endpoint_id,
                    model_id=model_id,
                    traffic_percentage=_percent(traffic),
                    promoted_at=now,
                    kind=kind,
                    **link,
                )
                .returning(endpoint_models.c.endpoint_model_id)
            ).scalar_one()
        )

    # -- reads --------------------------------------------------------------------------------------
    def assignment_query(self) -> Any:
        """SELECT of endpoint_models rows with the endpoint and model names (add WHERE / ORDER BY)."""
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
        with self.read() as conn:
            endpoint_id = self._lookup_endpoint(conn, project, endpoint)
            query = self.assignment_query().where(
                endpoint_models.c.endpoint_id == endpoint_id, endpoint_models.c.retired_at.is_(None)
            )
            return rows(conn.execute(query.order_by(endpoint_models.c.traffic_percentage.desc())))

    def endpoint_history(self, project: ProjectRef, endpoint: str) -> list[dict[str, Any]]:
        """Every traffic assignment of an endpoint, oldest first."""
        with self.read() as conn:
            endpoint_id = self._lookup_endpoint(conn, project, endpoint)
            query = self.assignment_query().where(endpoint_models.c.endpoint_id == endpoint_id)
            return rows(conn.execute(query.order_by(endpoint_models.c.endpoint_model_id)))

    def list_endpoints(self, project: ProjectRef | None = None) -> list[dict[str, Any]]:
        query = select(endpoints).order_by(endpoints.c.name)
        with self.read() as conn:
            if project is not None:
                query = query.where(endpoints.c.project_id == self._lookup_project_id(conn, project))
            return rows(conn.execute(query))

    def _lookup_endpoint(self, conn: Connection, project: ProjectRef, endpoint: str) -> int:
        project_id = self._lookup_project_id(conn, project)
        endpoint_id = conn.execute(
            select(endpoints.c.endpoint_id).where(
                endpoints.c.project_id == project_id, endpoints.c.name == v.lookup_name("endpoint", endpoint)
            )
        ).scalar_one_or_none()
        if endpoint_id is None:
            raise NotFoundError("endpoint", endpoint, "no such endpoint in this project")
        return int(endpoint_id)
