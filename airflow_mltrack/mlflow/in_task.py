"""MLflow inside ``@task.mltrack`` with no configuration (docs/mlflow.md, "Inside @task.mltrack").

While the decorated function runs, ``MLFLOW_TRACKING_URI`` is ``mltrack://<conn_id>`` and ``MLFLOW_RUN_ID``
the decorator's experiment, so fluent MLflow calls (``mlflow.log_metric`` with no active run,
``mlflow.start_run()``) resume that experiment. :data:`~airflow_mltrack.mlflow.mapping.TASK_RUN_ENV` names it
too: MLflow ending it (``end_run``) does not change its status, which the decorator and the listener own.
Afterwards the run is ended (status kept) and the three variables get their previous values back.

Importing this module does not import ``mlflow``; without the package nothing changes.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from airflow_mltrack.mlflow import SCHEME
from airflow_mltrack.mlflow.mapping import TASK_RUN_ENV

log = logging.getLogger(__name__)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
RUN_ID_ENV = "MLFLOW_RUN_ID"


@contextmanager
def mlflow_in_task(conn_id: str, experiment_id: int | None) -> Iterator[None]:
    """Point MLflow at ``mltrack://<conn_id>`` and at run ``experiment_id`` for the ``with`` block (a no-op
    without an experiment, e.g. an unreachable store, or without the ``mlflow`` package)."""
    if experiment_id is None or importlib.util.find_spec("mlflow") is None:
        yield
        return
    run_id = str(experiment_id)
    names = (TRACKING_URI_ENV, RUN_ID_ENV, TASK_RUN_ENV)
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({TRACKING_URI_ENV: f"{SCHEME}://{conn_id}", RUN_ID_ENV: run_id, TASK_RUN_ENV: run_id})
    try:
        yield
    finally:
        try:
            _end_run(run_id)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _end_run(run_id: str) -> None:
    """End MLflow's active run if it is ours (its status stays: see the module docstring). Never raises."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:  # the function never used MLflow
        return
    try:
        while (run := mlflow.active_run()) is not None and run.info.run_id == run_id:
            mlflow.end_run()
    except Exception as exc:
        log.warning("mltrack: could not end MLflow run %s (%s: %s)", run_id, type(exc).__name__, exc)
