"""Test DAGs for the @task.mltrack decorator and the status listener (tests/listeners)."""

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
        return {"accuracy": 0.9, "f1": 0.8}

    @task
    def report(metrics: dict, ti=None):
        """Downstream of train but not one of its experiment's tasks (it only reads): Completed already."""
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
        return {"accuracy": 0.66}

    train()


curves()
mapped()
retry()
fail()
cancel()
offline()


# Callbacks instead of the plugin's listener (tests/listeners/test_status_listener.py disables the listener).
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


# ------------------------------------------- issue 11: status from the experiment's own tasks only
from airflow.sdk import TaskGroup  # noqa: E402
from airflow.sdk.exceptions import AirflowSkipException  # noqa: E402

from airflow_mltrack.operators import (  # noqa: E402
    CreateExperimentOperator,
    LogMetricsOperator,
    RegisterDatasetOperator,
    RegisterModelOperator,
)


@dag(
    dag_id="mltrack_status_timeout",
    schedule=None,
    start_date=START,
    catchup=False,
    dagrun_timeout=timedelta(seconds=20),
)
def timeout():
    """A quick baseline, then a separate long training that is still running when the run times out."""

    @task.mltrack(project=PROJECT)
    def train_baseline():
        return {"accuracy": 0.7}

    @task.mltrack(project=PROJECT)
    def train_large(tracker=None):
        import time

        tracker.log_metric("loss", 1.0, step=0)
        tracker.flush()
        time.sleep(60)  # well past the timeout, then frees its worker slot

    train_baseline() >> train_large()


@dag(dag_id="mltrack_status_groups", schedule="@daily", start_date=START, catchup=False)
def groups():
    """An operator-created experiment in one task group; another group's task (downstream of it) fails."""
    with TaskGroup("training"):
        dataset = RegisterDatasetOperator(
            task_id="dataset", project=PROJECT, name="events", data_type="Tabular"
        )
        model = RegisterModelOperator(task_id="model", project=PROJECT, name="clf", framework="sklearn")
        experiment = CreateExperimentOperator(
            task_id="create_experiment",
            project=PROJECT,
            name="grouped",
            model_id=model.output,
            dataset_id=dataset.output,
        )
        fit = LogMetricsOperator(
            task_id="log_metrics", experiment_id=experiment.output, metrics={"accuracy": 0.9}
        )

    with TaskGroup("reporting"):

        @task(retries=0)
        def publish_report():
            raise RuntimeError("report service down")

        report = publish_report()

    fit >> report


@dag(dag_id="mltrack_status_xcom_fed", schedule="@daily", start_date=START, catchup=False)
def xcom_fed():
    """A plain @task writes into the experiment whose id it gets from XCom; an unrelated branch fails."""
    dataset = RegisterDatasetOperator(task_id="dataset", project=PROJECT, name="events", data_type="Tabular")
    model = RegisterModelOperator(task_id="model", project=PROJECT, name="clf", framework="sklearn")
    experiment = CreateExperimentOperator(
        task_id="create_experiment",
        project=PROJECT,
        name="xcom_fed",
        model_id=model.output,
        dataset_id=dataset.output,
    )

    @task
    def train(experiment_id: int) -> dict:
        from airflow_mltrack.hooks.mltrack import MLTrackHook

        MLTrackHook().get_store().log_metrics(experiment_id, {"accuracy": 0.88}, evaluation_set="validation")
        return {"accuracy": 0.88}

    @task(retries=0)
    def fetch_holdout():
        raise RuntimeError("holdout bucket unavailable")

    @task
    def compare(holdout, metrics: dict):
        return metrics

    @task(trigger_rule="all_done")
    def cleanup():
        return "cleaned"

    holdout = fetch_holdout()
    compare(holdout, train(experiment.output))
    holdout >> cleanup()


@dag(dag_id="mltrack_status_skip", schedule="@daily", start_date=START, catchup=False)
def skip():
    @task.mltrack(project=PROJECT)
    def train(tracker=None):
        tracker.log_metric("loss", 0.5, step=0)
        raise AirflowSkipException("no new labelled data since the last run")

    train()


timeout()
groups()
xcom_fed()
skip()
