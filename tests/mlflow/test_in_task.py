"""Plain MLflow code inside an Airflow task (``dag.test()``): its run is that task instance's experiment."""

from __future__ import annotations

import pytest

from airflow_mltrack.store import TrackingStore

pytestmark = pytest.mark.airflow


def test_plain_mlflow_task_is_linked_to_its_task_instance(run_mlflow_dag, tracking_pg):
    dag_run = run_mlflow_dag("mlflow_plain_task")
    assert str(dag_run.state) == "success"
    store = TrackingStore.from_url(tracking_pg)
    (row,) = store.find_experiments(dag_id="mlflow_plain_task")
    assert (row["run_id"], row["task_id"], row["map_index"]) == (dag_run.run_id, "train", -1)
    assert row["name"] == "train" and row["status"] == "Completed"
    assert row["hyperparameters"] == {"lr": 0.1}
    assert [(x["name"], x["evaluation_set"]) for x in store.latest_metrics(row["experiment_id"])] == [
        ("val_accuracy", "validation")
    ]

    import mlflow

    mlflow.set_tracking_uri("mltrack://")
    tags = mlflow.get_run(str(row["experiment_id"])).data.tags
    assert tags["airflow.dag_id"] == "mlflow_plain_task" and tags["airflow.task_id"] == "train"
    assert tags["airflow.run_id"] == dag_run.run_id
    mlflow.set_tracking_uri(None)
