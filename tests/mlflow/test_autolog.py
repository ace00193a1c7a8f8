"""``mlflow.sklearn.autolog()`` end to end inside Airflow tasks (``dag.test()``, PostgreSQL): params, training
metrics, the training dataset, the logged model and its files all land in our store, linked to the task
instance's experiment."""

from __future__ import annotations

import pytest

from airflow_mltrack.store import TrackingStore
from tests.mlflow.test_decorator import _xcom

pytestmark = pytest.mark.airflow


@pytest.fixture(autouse=True)
def _fresh_mlflow_state():
    """MLflow caches artifact repositories by run id ("1" in every fresh database): dropped around each test,
    so a run's files go to this test's store. The tasks' ``set_tracking_uri`` / ``set_experiment`` are
    process-wide: undone afterwards, so later tests in the process get their own URI."""
    import os

    import mlflow
    from mlflow.tracking._tracking_service import utils

    utils._artifact_repos_cache.clear()
    yield
    utils._artifact_repos_cache.clear()
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.tracking.fluent._active_experiment_id = None
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


TRAINING_METRICS = {
    "training_accuracy_score",
    "training_f1_score",
    "training_log_loss",
    "training_precision_score",
    "training_recall_score",
    "training_roc_auc",
    "training_score",
}


def _check_autologged(store: TrackingStore, experiment_id: int, project: str) -> None:
    row = store.get_experiment(experiment_id)
    assert store.get_project(row["project_id"])["name"] == project
    assert row["hyperparameters"]["C"] == 0.5 and row["hyperparameters"]["max_iter"] == 300
    assert row["hyperparameters"]["solver"] == "lbfgs"
    latest = {(x["name"], x["evaluation_set"]) for x in store.latest_metrics(experiment_id)}
    assert {(name, "train") for name in TRAINING_METRICS} <= latest
    # the dataset autolog logged (context "train") is the experiment's dataset now
    dataset = store.get_dataset(row["dataset_id"])
    assert (dataset["name"], dataset["num_records"]) == ("dataset", 150)
    assert store.tag_values("dataset", row["dataset_id"])["mlflow.source_type"] == "code"
    # the logged model is the experiment's model, ready, logged by this experiment
    model = store.get_model(row["model_id"])
    assert (model["name"], model["status"], model["framework"]) == ("model", "Ready", "sklearn")
    assert model["source_experiment_id"] == experiment_id and model["version"] == f"m-{model['model_id']}"
    assert model["params"]["C"] == "0.5"
    # its files, in our artifact storage under the experiment
    files = {a["path"] for a in store.list_artifacts(experiment_id, f"models/m-{model['model_id']}")}
    prefix = f"models/m-{model['model_id']}/"
    assert {prefix + "MLmodel", prefix + "model.pkl", prefix + "requirements.txt"} <= files


def test_autolog_in_a_plain_task(run_mlflow_dag, tracking_pg, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    dag_run = run_mlflow_dag("mlflow_autolog_plain")
    assert str(dag_run.state) == "success"
    store = TrackingStore.from_url(tracking_pg)
    (row,) = store.find_experiments(dag_id="mlflow_autolog_plain")
    assert (row["task_id"], row["run_id"], row["status"]) == ("train", dag_run.run_id, "Completed")
    assert str(_xcom(dag_run, "train")) == str(row["experiment_id"])  # the run autolog used
    _check_autologged(store, row["experiment_id"], "autolog_plain")


def test_autolog_in_a_decorated_task(run_mlflow_dag, tracking_pg, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    dag_run = run_mlflow_dag("mlflow_autolog_decorated")
    assert str(dag_run.state) == "success"
    store = TrackingStore.from_url(tracking_pg)
    (row,) = store.find_experiments(dag_id="mlflow_autolog_decorated")  # one experiment: the decorator's
    assert row["status"] == "Completed" and row["task_id"] == "train"
    assert str(_xcom(dag_run, "train")) == str(row["experiment_id"])  # the run autolog used
    _check_autologged(store, row["experiment_id"], "autolog_deco")
