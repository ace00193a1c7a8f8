"""The "Experiment" extra link: a button on a task instance that opens its experiment in the ML Tracking UI.

Airflow 3 computes ``get_link`` in the worker at the end of the task (``task_runner.finalize``) and
stores the URL in XCom (key ``_link_ExperimentLink``); the UI only reads that XCom. So the link is built
from what the finished task knows: the operator object that ran, whose ``mltrack_experiment_id``
attribute the airflow-mltrack operators set in ``execute``, or else the XCom ``mltrack_experiment_id``
the task instance pushed (``@task.mltrack`` pushes it). Any operator can get the button with
``operator_extra_links = (ExperimentLink(),)`` and one of the two.

The URL is ``<[api] base_url>/mltrack/experiments/<id>`` (the UI app is mounted at ``/mltrack``);
``[api] base_url`` falls back to ``http://localhost:8080`` as Airflow's own task runner does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

from airflow_mltrack.vocabulary import XCOM_EXPERIMENT_ID, experiment_ref

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

EXPERIMENT_ID_ATTR = XCOM_EXPERIMENT_ID
#: Class attribute: False on operators that set ``mltrack_experiment_id`` themselves and push no such XCom
#: (the airflow-mltrack operators), so the link does not ask XCom for it.
LINK_FROM_XCOM_ATTR = "mltrack_link_from_xcom"
UI_MOUNT = "/mltrack"
DEFAULT_BASE_URL = "http://localhost:8080"


def base_url() -> str:
    """The API server's public base URL, without a trailing slash."""
    from airflow.sdk import conf

    return (conf.get("api", "base_url", fallback=None) or DEFAULT_BASE_URL).rstrip("/")


def experiment_url(experiment_id: int | str) -> str:
    """``<base_url>/mltrack/experiments/<experiment_id>``."""
    return f"{base_url()}{UI_MOUNT}/experiments/{experiment_id}"


def _as_id(value: Any) -> int | None:
    ref = experiment_ref(value)
    return ref if ref is not None and ref > 0 else None


def _pushed_id(ti: Any) -> int | None:
    """The XCom ``mltrack_experiment_id`` this task instance pushed (``@task.mltrack`` does), if any."""
    pull = getattr(ti, "xcom_pull", None)
    if pull is None:  # a bare TaskInstanceKey
        return None
    try:
        value = pull(task_ids=ti.task_id, key=XCOM_EXPERIMENT_ID, map_indexes=ti.map_index)
    except Exception:
        return None
    return _as_id(value)


class ExperimentLink(BaseOperatorLink):
    """Extra link "Experiment" to the experiment a task created, logged to or updated."""

    name = "Experiment"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        experiment_id = _as_id(getattr(operator, EXPERIMENT_ID_ATTR, None))
        if experiment_id is None and getattr(type(operator), LINK_FROM_XCOM_ATTR, True):
            experiment_id = _pushed_id(ti_key)  # e.g. @task.mltrack, which pushes it to XCom
        if experiment_id is None:
            return ""  # the task failed before it knew its experiment: no button target
        return experiment_url(experiment_id)
