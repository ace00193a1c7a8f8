"""Deploy a model version on an endpoint: a canary share, a promotion, or a retirement (0%)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.operators.base import MLTrackBaseOperator, coerce_id, coerce_number
from airflow_mltrack.sdk.arguments import check_static
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.models import NAME_LEN

if TYPE_CHECKING:
    from airflow.sdk import Context


def _traffic(field: str, value: Any) -> float:
    traffic = v.number(field, coerce_number(field, value), finite=True)
    if not 0 <= traffic <= 100:
        raise MLTrackError(field, value, "must be between 0 and 100")
    return traffic


class DeployModelOperator(MLTrackBaseOperator):
    """Serve ``model_id`` on ``endpoint`` at ``traffic_percentage``; returns (XCom) the endpoint_models id.

    The endpoint is created on first use. The other active models of the endpoint keep at most
    ``100 - traffic_percentage`` between them (scaled down proportionally, retired at 0); every change
    is kept as rollout history with this DAG run's ``dag_id``/``run_id``. ``traffic_percentage=10`` is a
    canary, ``100`` a full promotion, ``0`` retires the model from the endpoint. The same call again
    changes nothing.

    :param project: project name; the model must belong to it.
    :param endpoint: endpoint name.
    :param model_id: the model (an id or a template rendering one).
    :param traffic_percentage: 0..100 (default 100).
    :param url: the endpoint's serving URL (stored on the endpoint).
    """

    template_fields: Sequence[str] = ("project", "endpoint", "model_id", "traffic_percentage", "url")

    def __init__(
        self,
        *,
        project: str,
        endpoint: str,
        model_id: int | str,
        traffic_percentage: float | str = 100,
        url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.endpoint = endpoint
        self.model_id = model_id
        self.traffic_percentage = traffic_percentage
        self.url = url
        for field in ("project", "endpoint"):
            check_static(field, getattr(self, field), lambda f, x: v.name(f, x, NAME_LEN))
        check_static("model_id", model_id, coerce_id)
        check_static("traffic_percentage", traffic_percentage, _traffic)
        check_static("url", url, lambda f, x: v.optional_text(f, x, 512))

    def execute(self, context: Context) -> int:
        model_id = coerce_id("model_id", self.model_id)
        link = self.airflow_link(context)
        done = self.store.deploy(
            self.project,
            self.endpoint,
            model_id,
            traffic_percentage=coerce_number("traffic_percentage", self.traffic_percentage),
            url=self.url or None,
            dag_id=link["dag_id"],
            run_id=link["run_id"],
        )
        state = self.store.endpoint_state(self.project, self.endpoint)
        split = (
            ", ".join(f"model {r['model_id']}: {r['traffic_percentage']:g}%" for r in state) or "no traffic"
        )
        self.log.info(
            "endpoint %s/%s: %s of model %s; now serves %s",
            self.project,
            self.endpoint,
            done.kind or "retirement",
            model_id,
            split,
        )
        if done.warning:  # e.g. two DAGs deploying one model at 70 then 30 leave it serving 30 %
            self.log.warning("endpoint %s/%s: %s", self.project, self.endpoint, done.warning)
        return done.endpoint_model_id

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (optional extra): the model -> the endpoint (see ``lineage.py``)."""
        from airflow_mltrack.operators import lineage

        model_id = coerce_id("model_id", self.model_id)
        return lineage.deployment(self.store, self.project, self.endpoint, model_id)
