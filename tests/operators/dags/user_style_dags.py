"""DAGs written the way users write them (Airflow 3 defaults: ``@dag``, ``schedule="@daily"``, strict JSON
XCom, params, mapping), for tests/operators/test_user_dags.py. Not examples."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from airflow.sdk import dag, task

from airflow_mltrack.operators import (
    CreateExperimentOperator,
    LogMetricsOperator,
    PreprocessingJobOperator,
    RegisterDatasetOperator,
    RegisterModelOperator,
)

PROJECT = "users"
START = datetime(2026, 1, 1)
EXPERIMENT_OF_TRAIN = "{{ ti.xcom_pull(task_ids='train', key='mltrack_experiment_id') }}"


@dag(schedule="@daily", start_date=START, catchup=False, default_args={"retries": 0})
def user_diverged():
    @task.mltrack(project=PROJECT, experiment="diverged")
    def train(lr: float = 10.0, tracker=None) -> dict:
        for epoch in np.arange(3):  # numpy steps, as ML code has them
            tracker.log_metric("train_loss", 1.0 / (epoch + 1), step=epoch, evaluation_set="train")
        return {"loss": float("nan"), "accuracy": 0.1}

    @task.mltrack(project=PROJECT, experiment="rows")
    def evaluate() -> list:
        return [
            {"name": "f1", "value": 0.8, "step": 1},
            {"name": "f1", "value": 0.85, "step": 2, "evaluation_set": "test"},
        ]

    @task
    def report(metrics: dict) -> str:
        return "diverged" if metrics["loss"] == "NaN" else "ok"

    trained = train()
    report(trained)
    trained >> LogMetricsOperator(
        task_id="log_again", experiment_id=EXPERIMENT_OF_TRAIN, source_task_ids="train"
    )
    evaluate()


@dag(schedule="@daily", start_date=START, catchup=False, default_args={"retries": 0})
def user_returns():
    @task.mltrack(project=PROJECT, experiment="typo")
    def typo() -> dict:
        return {"val": {"accuracy": 0.9}}

    @task.mltrack(project=PROJECT, experiment="words")
    def words() -> dict:
        return {"test": {"accuracy": "high"}}

    @task.mltrack(project=PROJECT, experiment="with-path", log_return=False)
    def with_path(tracker=None) -> dict:
        tracker.log_metric("accuracy", 0.9)
        return {"accuracy": 0.9, "model_path": "/models/m.pkl"}

    @task.mltrack(project=PROJECT, experiment="metrics-and-path")
    def metrics_and_path() -> dict:  # the common return: metrics beside data
        return {"accuracy": 0.8, "model_path": "/models/m.pkl", "converged": True, "note": None}

    @task.mltrack(project=PROJECT, experiment="path-only")
    def path_only() -> str:
        return "/models/m.pkl"

    @task.mltrack(project=PROJECT, experiment="bad-call")
    def bad_call(tracker=None) -> None:
        tracker.log_metric("acc", "high")

    typo()
    words()
    with_path()
    metrics_and_path()
    path_only()
    bad_call()


def _templated_numbers(dag_id: str, native: bool):
    @dag(
        dag_id=dag_id,
        schedule="@daily",
        start_date=START,
        catchup=False,
        params={"C": 0.5, "penalty": "l2"},
        render_template_as_native_obj=native,
        default_args={"retries": 0},
    )
    def templated():
        dataset = RegisterDatasetOperator(task_id="dataset", project=PROJECT, name="d", data_type="Tabular")
        model = RegisterModelOperator(task_id="model", project=PROJECT, name="m", framework="sklearn")
        experiment = CreateExperimentOperator(
            task_id="experiment",
            project=PROJECT,
            name=dag_id,
            model_id=model.output,
            dataset_id=dataset.output,
            hyperparameters={"C": "{{ params.C }}", "penalty": "{{ params.penalty }}"},
        )
        experiment >> LogMetricsOperator(
            task_id="log",
            experiment_id="{{ ti.xcom_pull(task_ids='experiment') }}",
            metrics={"accuracy": "{{ params.C }}"},
            step="{{ 2 + 3 }}",
        )

        @task.mltrack(
            project=PROJECT, experiment=f"{dag_id}-decorated", hyperparameters={"C": "{{ params.C }}"}
        )
        def train() -> dict:
            return {"accuracy": 0.75}

        train()

    return templated()


_templated_numbers("user_templated_numbers", native=False)
_templated_numbers("user_templated_native", native=True)


@dag(schedule="@daily", start_date=START, catchup=False, default_args={"retries": 0})
def user_sweep():
    @task.mltrack(project=PROJECT, experiment="sweep-lr")
    def sweep(lr: float) -> dict:
        return {"accuracy": 1.0 - lr}

    @task.mltrack(project=PROJECT, experiment="grid-{lr}")
    def grid(lr: float) -> dict:
        return {"accuracy": 1.0 - lr}

    sweep.expand(lr=[0.1, 0.01, 0.001])
    grid.expand(lr=[0.1, 0.01])


@dag(schedule="@daily", start_date=START, catchup=False, default_args={"retries": 0})
def user_derived_dataset():
    raw = RegisterDatasetOperator(task_id="raw", project=PROJECT, name="raw", data_type="Tabular")
    PreprocessingJobOperator(
        task_id="scale",
        project=PROJECT,
        name="scale",
        input_dataset_id=raw.output,
        output_dataset={"name": "scaled", "data_type": "Tabular", "num_records": 90},
    )


@dag(schedule="@daily", start_date=START, catchup=False, default_args={"retries": 0})
def user_unknown_experiment():
    LogMetricsOperator(task_id="log", experiment_id=999_999, metrics={"accuracy": 0.9})


user_diverged()
user_returns()
user_sweep()
user_derived_dataset()
user_unknown_experiment()
