"""A user DAG whose task logs artifacts with plain MLflow code (no airflow-mltrack import)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task


@dag(dag_id="mlflow_artifact_task", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False)
def mlflow_artifact_task():
    @task
    def train() -> str:
        import os
        import tempfile

        import mlflow

        mlflow.set_tracking_uri("mltrack://")
        mlflow.set_experiment("artifacts_from_airflow")
        with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
            report = os.path.join(tmp, "report.csv")
            with open(report, "w") as out:
                out.write("epoch,loss\n1,0.5\n")
            mlflow.log_artifact(report, "reports")
            mlflow.log_text("trained in a task", "notes.txt")
        return run.info.run_id

    train()


mlflow_artifact_task()
