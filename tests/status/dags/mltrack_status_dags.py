"""Test DAGs for the @task.mltrack decorator and the status listener (tests/status)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag, task

PROJECT = "status_tests"
START = datetime(2025, 1, 1)


@dag(dag_id="mltrack_status_curves", schedule=None, start_date=START, catchup=False)
def curves():
    @task.mltrack(project=PROJECT, experiment="curves", hyperparameters={"optimizer": "sgd"}, flush_every=3)
    def train(lr: float = 0.1, epochs: int = 5, tracker=None):
        for epoch in range(epochs):
            tracker.log_metric("loss", 1.0 / (epoch + 1), step=epoch, evaluation_set="train")
            tracker.log_metrics({"val_loss": 2.0 / (epoch + 1)}, step=epoch)
        tracker.log_params({"batch_size": 32})
        return {"accuracy": 0.9, "f1": 0.8, "model_path": "/tmp/model.pkl"}

    @task
    def report(metrics: dict, ti=None):
        """Tracked (downstream of train): the experiment must still be Running while this runs."""
        from airflow_mltrack.hooks.mltrack import MLTrackHook

        experiment_id = ti.xcom_pull(task_ids="train", key="mltrack_experiment_id")
        store = MLTrackHook().get_store()
        return {"status_during_report": store.get_experiment(experiment_id)["status"], **metrics}

    report(train(lr=0.05))


@dag(dag_id="mltrack_status_mapped", schedule=None, start_date=START, catchup=False)
def mapped():
    @task.mltrack(project=PROJECT)
    def train(lr: float, tracker=None):
        tracker.log_metric("loss", lr * 10, step=0)
        return {"accuracy": 1.0 - lr}

    train.expand(lr=[0.1, 0.01, 0.001])


@dag(dag_id="mltrack_status_retry", schedule=None, start_date=START, catchup=False)
def retry():
    @task.mltrack(project=PROJECT, retries=1, retry_delay=timedelta(seconds=0))
    def train(tracker=None):
        for epoch in range(3):
            tracker.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
        marker = os.environ["MLTRACK_STATUS_MARKER"]
        if not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write("try 1 failed")
            raise RuntimeError("first try fails on purpose")
        return {"accuracy": 0.75}

    train()


@dag(dag_id="mltrack_status_fail", schedule=None, start_date=START, catchup=False)
def fail():
    @task.mltrack(project=PROJECT, retries=0)
    def train(tracker=None):
        tracker.log_metric("loss", 9.9, step=0)
        raise ValueError("diverged: loss is nan")

    train()


@dag(dag_id="mltrack_status_cancel", schedule=None, start_date=START, catchup=False)
def cancel():
    @task.mltrack(project=PROJECT)
    def train():
        return {"accuracy": 0.5}

    @task(retries=0)
    def fetch_labels():
        raise RuntimeError("label service down")

    @task
    def evaluate(metrics: dict, labels):
        return metrics

    evaluate(train(), fetch_labels())


@dag(dag_id="mltrack_status_offline", schedule=None, start_date=START, catchup=False)
def offline():
    @task.mltrack(project=PROJECT, retries=0)
    def train(tracker=None):
        for epoch in range(4):
            tracker.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
        return {"accuracy": 0.66, "model_path": "/tmp/m.pkl"}

    train()


curves()
mapped()
retry()
fail()
cancel()
offline()


# Callbacks instead of the plugin's listener (tests/status/test_status_listener.py disables the listener).
from airflow_mltrack import callbacks as mltrack_callbacks  # noqa: E402


@dag(
    dag_id="mltrack_status_callbacks",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args={**mltrack_callbacks.task_callbacks(), "retries": 0},
    on_success_callback=mltrack_callbacks.dag_succeeded,
    on_failure_callback=mltrack_callbacks.dag_failed,
)
def with_callbacks():
    @task.mltrack(project=PROJECT)
    def train_ok():
        return {"accuracy": 0.8}

    @task
    def evaluate(metrics: dict):
        return metrics

    @task.mltrack(project=PROJECT)
    def train_bad():
        raise ValueError("bad batch")

    evaluate(train_ok())
    train_bad()


with_callbacks()
