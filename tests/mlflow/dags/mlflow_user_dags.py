"""A user DAG whose task runs plain MLflow code (no airflow-mltrack import)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task


@dag(dag_id="mlflow_plain_task", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False)
def mlflow_plain_task():
    @task
    def train() -> str:
        import mlflow

        mlflow.set_tracking_uri("mltrack://")
        mlflow.set_experiment("from_airflow")
        with mlflow.start_run() as run:
            mlflow.log_param("lr", "0.1")
            mlflow.log_metric("val_accuracy", 0.8)
        return run.info.run_id

    train()


mlflow_plain_task()
