"""User DAGs training a scikit-learn model with ``mlflow.sklearn.autolog()``: a plain ``@task`` pointing MLflow
at ``mltrack://`` itself, and a ``@task.mltrack`` task with no MLflow setup."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task

START = dt.datetime(2024, 1, 1)


def _fit() -> str:
    """Fit a small classifier under autolog; the MLflow run id it logged to."""
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow.sklearn.autolog()  # defaults: params, training metrics, the dataset and the model
    try:
        features, target = load_iris(return_X_y=True)
        LogisticRegression(max_iter=300, C=0.5).fit(features, target)
        return mlflow.last_active_run().info.run_id
    finally:
        mlflow.sklearn.autolog(disable=True)  # autolog patches sklearn process-wide


@dag(dag_id="mlflow_autolog_plain", schedule=None, start_date=START, catchup=False)
def mlflow_autolog_plain():
    @task
    def train() -> str:
        import mlflow

        mlflow.set_tracking_uri("mltrack://")
        mlflow.set_experiment("autolog_plain")
        return _fit()

    train()


@dag(dag_id="mlflow_autolog_decorated", schedule=None, start_date=START, catchup=False)
def mlflow_autolog_decorated():
    @task.mltrack(project="autolog_deco")
    def train() -> str:
        return _fit()

    train()


mlflow_autolog_plain()
mlflow_autolog_decorated()
