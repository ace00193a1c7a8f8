"""Two copies of one pipeline using every operator, ``@task.mltrack`` and the status listener.

``mltrack_retry_thrice``: every tracking task does its work and then fails on tries 1 and 2 (retries=2), so
each write runs three times for the same task instance. ``mltrack_retry_once``: the same tasks, run once.
The test compares what each left in its own project.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, task

from airflow_mltrack.operators import (
    CreateExperimentOperator,
    DeployModelOperator,
    LogMetricsOperator,
    PreprocessingJobOperator,
    RegisterDatasetOperator,
    RegisterModelOperator,
    SetExperimentStatusOperator,
)

TRIES = 3
OPERATORS = (
    RegisterDatasetOperator,
    RegisterModelOperator,
    PreprocessingJobOperator,
    CreateExperimentOperator,
    LogMetricsOperator,
    SetExperimentStatusOperator,
    DeployModelOperator,
)


def failing_before_last_try(cls: type) -> type:
    """``cls`` whose execute does all its work, then fails unless this is try ``TRIES``."""

    def execute(self: Any, context: Any) -> Any:
        result = cls.execute(self, context)
        if context["ti"].try_number < TRIES:
            raise RuntimeError(f"transient failure after the write (try {context['ti'].try_number})")
        return result

    return type(f"Flaky{cls.__name__}", (cls,), {"execute": execute})


def pipeline(dag_id: str, project: str, flaky: bool) -> DAG:
    ops = {cls.__name__: failing_before_last_try(cls) if flaky else cls for cls in OPERATORS}
    args = {"retries": TRIES - 1 if flaky else 0, "retry_delay": timedelta(seconds=0)}
    with DAG(dag_id, schedule=None, default_args=args, tags=["mltrack-test"]) as dag:
        raw = ops["RegisterDatasetOperator"](
            task_id="raw", project=project, name="raw", data_type="Tabular", version="1", tags=["raw"]
        )
        clean = ops["PreprocessingJobOperator"](
            task_id="clean",
            project=project,
            name="dropna",
            input_dataset_id=raw.output,
            output_dataset={"name": "clean", "data_type": "Tabular", "version": "1", "num_records": 9},
            parameters={"dropna": True},
        )
        model = ops["RegisterModelOperator"](
            task_id="model", project=project, name="clf", framework="sklearn", version="1"
        )
        experiment = ops["CreateExperimentOperator"](
            task_id="create_experiment",
            project=project,
            name="operators",
            model_id=model.output,
            dataset_id="{{ ti.xcom_pull(task_ids='clean', key='output_dataset_id') }}",
            hyperparameters={"lr": 0.5},
            tags=["retried"],
        )
        clean >> experiment
        log = ops["LogMetricsOperator"](
            task_id="log_metrics",
            experiment_id=experiment.output,
            metrics={"loss": [0.5, 0.25, 0.125], "accuracy": 0.75},
        )
        done = ops["SetExperimentStatusOperator"](
            task_id="complete", experiment_id=experiment.output, status="Completed"
        )
        deploy = ops["DeployModelOperator"](
            task_id="deploy", project=project, endpoint="serve", model_id=model.output, traffic_percentage=100
        )
        log >> done >> deploy

        @task.mltrack(project=project, experiment="decorated", model_id=model.output, dataset_id=raw.output)
        def train(lr: float = 0.1, tracker: Any = None, ti: Any = None) -> dict:
            for epoch in range(3):
                tracker.log_metric("loss", 1.0 / (epoch + 1), step=epoch, evaluation_set="train")
            tracker.log_params({"epochs": 3})
            if flaky and ti.try_number < TRIES:
                raise RuntimeError(f"transient failure in training (try {ti.try_number})")
            return {"accuracy": 0.9}

        train(lr=0.2)
    return dag


thrice = pipeline("mltrack_retry_thrice", "retry-thrice", flaky=True)
once = pipeline("mltrack_retry_once", "retry-once", flaky=False)
