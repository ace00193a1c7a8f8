"""The "Experiment" extra link: a button on a task instance that opens its experiment in the ML Tracking UI.

Airflow 3 computes ``get_link`` in the worker at the end of the task (``task_runner.finalize``) and
stores the URL in XCom (key ``_link_ExperimentLink``); the UI only reads that XCom. So the link is built
from what the finished task knows: the operator object that ran, whose ``mltrack_experiment_id``
attribute the airflow-mltrack operators set in ``execute``, or else the XCom ``mltrack_experiment_id``
the task instance pushed (``@task.mltrack`` pushes it). Any operator can get the button with
``operator_extra_links = (ExperimentLink(),)`` and one of the two.

The URL opens the experiment inside the Airflow UI, in the task instance's "Experiment" tab (the plugin's
``task_instance`` external view, at ``<ui>/dags/<dag>/runs/<run>/tasks/<task>[/mapped/<i>]/plugin/mltrack-task``)
with ``?mltrack=experiments/<id>``: the tab's page (``static/mltrack.js``) opens that experiment, also when
this task only logged to an experiment another task created. Without a task instance it is the "ML
Tracking" page, ``<ui>/plugin/mltrack?mltrack=experiments/<id>``. ``[api] base_url`` falls back to
``http://localhost:8080`` as Airflow's own task runner does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

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
#: ``url_route`` of the plugin's external views (mltrack_plugin.py): the "ML Tracking" page and the tabs.
NAV_ROUTE = "mltrack"
RUN_TAB_ROUTE = "mltrack-run"
TASK_TAB_ROUTE = "mltrack-task"
#: Query parameter of an Airflow UI URL naming the plugin page (relative to the app) its frame opens.
DEEP_LINK_PARAM = "mltrack"


def base_url() -> str:
    """The API server's public base URL, without a trailing slash."""
    from airflow.sdk import conf

    return (conf.get("api", "base_url", fallback=None) or DEFAULT_BASE_URL).rstrip("/")


def experiment_url(experiment_id: int | str, ti_key: Any = None) -> str:
    """The experiment inside the Airflow UI: the Experiment tab of task instance ``ti_key`` (a
    ``TaskInstanceKey`` or a task instance), else the ML Tracking page; see the module docstring."""
    deep = f"?{DEEP_LINK_PARAM}=experiments/{experiment_id}"
    dag_id, run_id, task_id = (getattr(ti_key, name, None) for name in ("dag_id", "run_id", "task_id"))
    if not (dag_id and run_id and task_id):
        return f"{base_url()}/plugin/{NAV_ROUTE}{deep}"
    task = f"{base_url()}/dags/{_seg(dag_id)}/runs/{_seg(run_id)}/tasks/{_seg(task_id)}"
    map_index = getattr(ti_key, "map_index", -1)
    if isinstance(map_index, int) and map_index >= 0:
        task += f"/mapped/{map_index}"
    return f"{task}/plugin/{TASK_TAB_ROUTE}{deep}"


def _seg(value: Any) -> str:
    """One URL path segment."""
    return quote(str(value), safe="")


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
        return experiment_url(experiment_id, ti_key)
