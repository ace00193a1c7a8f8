"""User DAGs mixing plain MLflow calls and the tracker inside ``@task.mltrack`` (no MLflow setup)."""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import dag, task

START = dt.datetime(2024, 1, 1)


@dag(dag_id="mlflow_in_decorator", schedule=None, start_date=START, catchup=False)
def mlflow_in_decorator():
    @task.mltrack(project="mlflow_deco", hyperparameters={"epochs": 2})
    def train(tracker=None) -> str:
        import mlflow

        mlflow.log_param("lr", "0.1")
        mlflow.log_metric("val_loss", 0.5, step=1)
        tracker.log_metric("accuracy", 0.9, step=1, evaluation_set="test")
        run_id = mlflow.active_run().info.run_id
        mlflow.end_run()  # the user's own end_run: the status stays with the decorator
        return f"{run_id}:{mlflow.get_run(run_id).info.status}"

    @task
    def after() -> None:
        """Runs in the same process under dag.test(): nothing of the decorator's MLflow setup leaks."""
        leaked = {k: os.environ.get(k) for k in ("MLFLOW_RUN_ID", "MLTRACK_TASK_RUN_ID") if k in os.environ}
        assert not leaked, leaked
        assert os.environ.get("MLFLOW_TRACKING_URI") == os.environ.get("MLTRACK_TEST_OUTER_URI")

    train() >> after()


@dag(dag_id="mlflow_in_decorator_fails", schedule=None, start_date=START, catchup=False)
def mlflow_in_decorator_fails():
    @task.mltrack(project="mlflow_deco", retries=0)
    def train() -> None:
        import mlflow

        mlflow.log_metric("train_loss", 1.5)
        raise ValueError("diverged")

    train()


@dag(dag_id="mlflow_in_decorator_own_uri", schedule=None, start_date=START, catchup=False)
def mlflow_in_decorator_own_uri():
    @task.mltrack(project="mlflow_deco")
    def train(tracker=None) -> str:
        import mlflow

        os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLTRACK_TEST_OWN_URI"]  # the user's own server
        os.environ.pop("MLFLOW_RUN_ID", None)  # the decorator's run id is not a run of that server
        with mlflow.start_run() as run:
            mlflow.log_metric("val_loss", 0.25)
        tracker.log_metric("accuracy", 0.8)
        return run.info.run_id

    train()


mlflow_in_decorator()
mlflow_in_decorator_fails()
mlflow_in_decorator_own_uri()
