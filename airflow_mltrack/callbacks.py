"""Experiment status as task/DAG callbacks: the status listener's logic without the plugin.

The MLTrack plugin's listener already does this for every DAG; attach these only where plugins are not
loaded (or to be explicit). Using both is harmless: every status move is idempotent.

    from airflow_mltrack import callbacks as mltrack_callbacks

    with DAG(
        ...,
        default_args=mltrack_callbacks.task_callbacks(),
        on_success_callback=mltrack_callbacks.dag_succeeded,
        on_failure_callback=mltrack_callbacks.dag_failed,
    ):
        ...

Task callbacks run in the worker with the task context (``context["ti"]`` is the RuntimeTaskInstance,
``context["exception"]`` the error); DAG callbacks run in the DAG processor with ``dag`` and ``run_id``.
Callbacks never raise: an unreachable tracking store is a logged warning.
"""

from __future__ import annotations

from typing import Any

from airflow_mltrack.listeners import status as _status

__all__ = [
    "dag_failed",
    "dag_succeeded",
    "task_callbacks",
    "task_failed",
    "task_retried",
    "task_skipped",
    "task_started",
    "task_succeeded",
]


def task_started(context: Any) -> None:
    """``on_execute_callback``: the task's Pending experiments go Running."""
    _status.task_started(context["ti"])


def task_succeeded(context: Any) -> None:
    """``on_success_callback``: Completed once every tracked task of the experiment is done."""
    _status.task_succeeded(context["ti"])


def task_failed(context: Any) -> None:
    """``on_failure_callback`` (no tries left): the task's experiments go Failed with the error text."""
    _status.task_failed(context["ti"], context.get("exception"), final=True)


def task_retried(context: Any) -> None:
    """``on_retry_callback``: nothing to do, the experiment stays Running until the last try."""
    _status.task_failed(context["ti"], context.get("exception"), final=False)


def task_skipped(context: Any) -> None:
    """``on_skipped_callback`` (the task raised AirflowSkipException): its experiments go Cancelled."""
    _status.task_skipped(context["ti"])


def _run_id(context: Any) -> str | None:
    dag_run = context.get("dag_run")
    return context.get("run_id") or getattr(dag_run, "run_id", None)


def dag_succeeded(context: Any) -> None:
    """DAG ``on_success_callback``: experiments of the run still open are decided from their own tasks."""
    dag = context.get("dag")
    _status.dag_run_finished(dag.dag_id, _run_id(context), success=True, dag=dag, msg=context.get("reason"))


def dag_failed(context: Any) -> None:
    """DAG ``on_failure_callback``: experiments of the run still open are decided from their own tasks
    (Completed, Failed, or Cancelled naming the tasks that did not finish), never from the run's outcome."""
    dag = context.get("dag")
    _status.dag_run_finished(dag.dag_id, _run_id(context), success=False, dag=dag, msg=context.get("reason"))


def task_callbacks() -> dict[str, Any]:
    """The five task callbacks, ready for ``default_args`` (merge with your own if you have some)."""
    return {
        "on_execute_callback": task_started,
        "on_success_callback": task_succeeded,
        "on_failure_callback": task_failed,
        "on_retry_callback": task_retried,
        "on_skipped_callback": task_skipped,
    }
