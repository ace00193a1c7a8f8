"""The MLflow run-context provider for Airflow tasks: a run started inside a task carries the
``airflow.*`` link tags, which :class:`~airflow_mltrack.mlflow.store.MLTrackMlflowStore` turns into the
experiment's Airflow link (so a retry resumes the same run). Entry point ``mlflow.run_context_provider``."""

from __future__ import annotations

from mlflow.tracking.context.abstract_context import RunContextProvider

from airflow_mltrack.mlflow.mapping import LINK_TAGS


class AirflowRunContext(RunContextProvider):
    """Tags ``airflow.dag_id``, ``airflow.run_id``, ``airflow.task_id``, ``airflow.map_index``,
    ``airflow.try_number`` of the task instance running in this process."""

    def in_context(self) -> bool:
        return _link() is not None

    def tags(self) -> dict[str, str]:
        link = _link()
        if link is None:
            return {}
        values = {
            "dag_id": link.dag_id,
            "run_id": link.run_id,
            "task_id": link.task_id,
            "map_index": link.map_index,
            "try_number": link.try_number,
        }
        return {tag: str(values[col]) for tag, col in LINK_TAGS.items() if values[col] is not None}


def _link():  # noqa: ANN202 - a TaskLink or None
    try:
        from airflow_mltrack.hooks.mltrack import current_task_link
    except ImportError:  # mlflow used where Airflow is not installed
        return None
    return current_task_link()
