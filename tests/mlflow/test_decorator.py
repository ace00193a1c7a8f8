"""MLflow inside ``@task.mltrack`` with no configuration: fluent MLflow calls and the tracker land in the
decorator's experiment, whose status MLflow does not change; nothing leaks past the task."""

from __future__ import annotations

import os
from typing import Any

import pytest

from airflow_mltrack.mlflow.mapping import TASK_RUN_ENV
from airflow_mltrack.store import TrackingStore

pytestmark = pytest.mark.airflow

OUTER_URI = "file:///nonexistent/outer-mlruns"  # a worker-wide setting the decorator overrides, then restores


def _xcom(dag_run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def _metrics(store: TrackingStore, experiment_id: int) -> list[tuple[str, str, float]]:
    rows = store.latest_metrics(experiment_id)
    return sorted((x["name"], x["evaluation_set"], x["value"]) for x in rows)


def test_mlflow_and_tracker_share_the_decorators_experiment(run_mlflow_dag, tracking_pg, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", OUTER_URI)
    monkeypatch.setenv("MLTRACK_TEST_OUTER_URI", OUTER_URI)  # what the downstream task must see
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    dag_run = run_mlflow_dag("mlflow_in_decorator")
    assert str(dag_run.state) == "success"  # includes `after`: no MLflow variable leaked to it

    store = TrackingStore.from_url(tracking_pg)
    (row,) = store.find_experiments(dag_id="mlflow_in_decorator")
    eid = row["experiment_id"]
    assert row["task_id"] == "train" and store.get_project(row["project_id"])["name"] == "mlflow_deco"
    assert row["status"] == "Completed"
    assert row["hyperparameters"] == {"epochs": 2, "lr": 0.1}
    assert _metrics(store, eid) == [("accuracy", "test", 0.9), ("val_loss", "validation", 0.5)]
    # the user's mlflow.end_run() inside the task left the experiment Running (the decorator's status)
    assert _xcom(dag_run, "train") == f"{eid}:RUNNING"
    assert os.environ["MLFLOW_TRACKING_URI"] == OUTER_URI
    assert "MLFLOW_RUN_ID" not in os.environ and TASK_RUN_ENV not in os.environ


def test_a_failing_task_stays_failed_whatever_mlflow_does(run_mlflow_dag, tracking_pg, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    dag_run = run_mlflow_dag("mlflow_in_decorator_fails")
    assert str(dag_run.state) == "failed"
    store = TrackingStore.from_url(tracking_pg)
    (row,) = store.find_experiments(dag_id="mlflow_in_decorator_fails")
    assert row["status"] == "Failed"  # MLflow's end_run (FINISHED) after the task did not complete it
    assert _metrics(store, row["experiment_id"]) == [("train_loss", "train", 1.5)]
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_RUN_ID" not in os.environ


def test_a_tracking_uri_set_in_the_task_body_is_respected(run_mlflow_dag, tracking_pg, tmp_path, monkeypatch):
    own = tmp_path / "mlruns"
    monkeypatch.setenv("MLTRACK_TEST_OWN_URI", own.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the user's own store: MLflow's file store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    dag_run = run_mlflow_dag("mlflow_in_decorator_own_uri")
    assert str(dag_run.state) == "success"
    store = TrackingStore.from_url(tracking_pg)
    (row,) = store.find_experiments(dag_id="mlflow_in_decorator_own_uri")
    assert row["status"] == "Completed"
    assert _metrics(store, row["experiment_id"]) == [("accuracy", "validation", 0.8)]  # the tracker only

    import mlflow

    mlflow.set_tracking_uri(own.as_uri())
    try:
        run = mlflow.get_run(_xcom(dag_run, "train"))
        assert run.data.metrics == {"val_loss": 0.25}  # MLflow wrote to the user's own store
    finally:
        mlflow.set_tracking_uri(None)
    assert "MLFLOW_TRACKING_URI" not in os.environ  # restored (the body's value did not outlive the task)


def test_without_an_experiment_mlflow_is_left_alone(monkeypatch):
    """An unreachable store gives no experiment: MLflow's environment is not touched."""
    from airflow_mltrack.mlflow.in_task import mlflow_in_task

    monkeypatch.setenv("MLFLOW_TRACKING_URI", OUTER_URI)
    with mlflow_in_task("mltrack_default", None):
        assert os.environ["MLFLOW_TRACKING_URI"] == OUTER_URI and "MLFLOW_RUN_ID" not in os.environ
    with mlflow_in_task("my_conn", 7):
        assert os.environ["MLFLOW_TRACKING_URI"] == "mltrack://my_conn"
        assert os.environ["MLFLOW_RUN_ID"] == os.environ[TASK_RUN_ENV] == "7"
    assert os.environ["MLFLOW_TRACKING_URI"] == OUTER_URI and TASK_RUN_ENV not in os.environ


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "KILLED"])
def test_mlflow_cannot_end_the_decorators_run(mlflow_uri, tracking_url, monkeypatch, status):
    """The store leaves the status of the run named by MLTRACK_TASK_RUN_ID alone (both backends); another
    run ends as MLflow says."""
    import mlflow

    mlflow.set_experiment("owned")
    with mlflow.start_run() as owned:
        monkeypatch.setenv(TASK_RUN_ENV, owned.info.run_id)
        mlflow.end_run(status)
    with mlflow.start_run() as other:
        mlflow.end_run(status)
    store = TrackingStore.from_url(tracking_url)
    assert store.get_experiment(int(owned.info.run_id))["status"] == "Running"
    assert mlflow.get_run(other.info.run_id).info.status == status
