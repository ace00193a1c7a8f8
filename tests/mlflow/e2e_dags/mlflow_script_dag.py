"""The unmodified MLflow script ``examples/train_iris.py`` as an Airflow task: the worker has
``MLFLOW_TRACKING_URI=mltrack://`` in its environment, nothing else (tests/mlflow/test_end_to_end.py)."""

import runpy
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

SCRIPT = Path(__file__).resolve().parents[3] / "examples" / "train_iris.py"


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["mlflow"])
def mlflow_script():
    @task
    def train() -> None:
        runpy.run_path(str(SCRIPT), run_name="__main__")

    train()


mlflow_script()
