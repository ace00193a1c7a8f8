"""A plain MLflow training script, as a user has it: nothing in it knows about Airflow or airflow-mltrack.

Run as an Airflow task (``MLFLOW_TRACKING_URI=mltrack://`` on the worker) and from outside Airflow
(``MLFLOW_TRACKING_URI=http://<airflow>/mltrack/mlflow`` + ``MLFLOW_TRACKING_TOKEN``) by
tests/mlflow/test_end_to_end.py and the README. ``IRIS_EXPERIMENT`` names the MLflow experiment (default ``iris``).
"""

import os

import mlflow
import mlflow.sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def main() -> str:
    mlflow.set_experiment(os.environ.get("IRIS_EXPERIMENT", "iris"))
    mlflow.sklearn.autolog()
    x, y = load_iris(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0)
    with mlflow.start_run() as run:
        mlflow.set_tag("team", "growth")
        model = LogisticRegression(max_iter=300, C=0.5).fit(x_train, y_train)
        mlflow.log_metric("val_accuracy", model.score(x_val, y_val))
        mlflow.log_text("trained on iris, 30% held out", "notes/summary.txt")
        return run.info.run_id


if __name__ == "__main__":
    print(main())
