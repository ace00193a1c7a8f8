"""MLTrackPlugin: what airflow-mltrack adds to Airflow's processes.

Loaded in every Airflow process (scheduler, API server, DAG processor, each task's worker process), so this
module and everything it imports at module level must stay cheap: the status listener imports the store
and the hook only when a hook fires.

Registered through the ``airflow.plugins`` entry point (pyproject) only; not listed in provider info.
"""

from __future__ import annotations

from airflow.sdk.plugins_manager import AirflowPlugin

from airflow_mltrack.listeners import status as status_listener
from airflow_mltrack.plugins.app import app as mltrack_app  # a lazy ASGI app: builds FastAPI on first request
from airflow_mltrack.sdk.links import NAV_ROUTE, RUN_TAB_ROUTE, TASK_TAB_ROUTE


class MLTrackPlugin(AirflowPlugin):
    name = "mltrack"
    # Experiment status follows task / DAG-run state (airflow_mltrack.listeners.status).
    listeners = [status_listener]
    # The ML Tracking pages and JSON API (airflow_mltrack.plugins.app), mounted at /mltrack.
    fastapi_apps = [{"app": mltrack_app, "url_prefix": "/mltrack", "name": "ML Tracking"}]
    # hrefs are relative to the Airflow UI root; url_route shows them in an iframe at /plugin/<url_route>.
    # Inside that frame static/mltrack.js opens Airflow links in the Airflow window and keeps the frame's
    # page in the address bar (deep links; docs/ui.md); the extra link (sdk/links.py) opens the task tab.
    external_views = [
        {
            "name": "ML Tracking",
            "href": "mltrack/experiments",
            "destination": "nav",
            "url_route": NAV_ROUTE,
            "nav_top_level": True,
        },
        {
            "name": "Experiments",
            "href": "mltrack/run?dag_id={DAG_ID}&run_id={RUN_ID}",
            "destination": "dag_run",
            "url_route": RUN_TAB_ROUTE,
        },
        {
            "name": "Experiment",
            "href": "mltrack/task-instance?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}"
            "&map_index={MAP_INDEX}",
            "destination": "task_instance",
            "url_route": TASK_TAB_ROUTE,
        },
    ]
