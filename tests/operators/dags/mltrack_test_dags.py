"""Small DAGs for tests/operators: every payload shape, bad inputs, retries. Not examples.

Retried tasks fail on their first try only, remembered by a marker file under $AIRFLOW_HOME (one per
DAG run and task), so each run of the DAG sees the same story.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

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

PROJECT = "op-tests"
NO_RETRY = {"retries": 0}
ONE_RETRY = {"retries": 1, "retry_delay": timedelta(seconds=0)}


def first_try(context_or_ti, task_id: str) -> bool:
    """True the first time this task runs in this DAG run (a marker file remembers it)."""
    ti = (
        context_or_ti["ti"]
        if isinstance(context_or_ti, dict) or hasattr(context_or_ti, "keys")
        else context_or_ti
    )
    name = re.sub(r"[^\w.-]+", "_", f"{ti.dag_id}-{ti.run_id}-{task_id}")
    marker = Path(os.environ["AIRFLOW_HOME"]) / "markers" / name
    if marker.exists():
        return False
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return True


def catalog(prefix: str):
    dataset = RegisterDatasetOperator(
        task_id=f"{prefix}dataset", project=PROJECT, name="events", data_type="Tabular"
    )
    model = RegisterModelOperator(task_id=f"{prefix}model", project=PROJECT, name="clf", framework="sklearn")
    return dataset, model


# ---------------------------------------------------------------------------------- every payload shape
with DAG("mltrack_test_payloads", schedule=None, default_args=NO_RETRY, tags=["mltrack-test"]):
    dataset, model = catalog("")
    experiment = CreateExperimentOperator(
        task_id="create_experiment",
        project=PROJECT,
        name="payloads",
        model_id="{{ ti.xcom_pull(task_ids='model') }}",
        dataset_id=dataset.output,
        hyperparameters='{"lr": 0.1, "layers": [64, 32]}',
        code_version="abc123",
        tags=["shapes"],
    )
    [dataset, model] >> experiment

    @task
    def flat() -> dict:
        return {"accuracy": 0.9}

    @task
    def curve() -> dict:
        return {"loss": [0.9, 0.5, 0.3]}

    @task
    def split_first() -> dict:
        return {"train": {"accuracy": 0.99}, "validation": {"accuracy": 0.95}}

    @task
    def rows() -> list:
        return [
            {"name": "f1", "value": 0.8, "step": 1, "evaluation_set": "validation"},
            {"name": "f1", "value": 0.85, "step": 2},
        ]

    @task
    def fold(i: int) -> list:
        return [{"name": "fold_accuracy", "value": [0.5, 0.25, 0.125][i], "step": i}]

    sources = [flat(), curve(), split_first(), rows(), fold.expand(i=[0, 1, 2])]
    from_xcom = LogMetricsOperator(
        task_id="log_from_xcom",
        experiment_id=experiment.output,
        source_task_ids=["flat", "curve", "split_first", "rows", "fold"],
    )
    literal = LogMetricsOperator(
        task_id="log_literal",
        experiment_id=experiment.output,
        metrics={"auc": 0.7},
        evaluation_set="inference",
    )
    json_text = LogMetricsOperator(
        task_id="log_json_text",
        experiment_id="{{ ti.xcom_pull(task_ids='create_experiment') }}",
        metrics='{"precision": 0.6}',
        evaluation_set="validation",
    )
    rendered = LogMetricsOperator(
        task_id="log_rendered_xcom",
        experiment_id=experiment.output,
        metrics="{{ ti.xcom_pull(task_ids='flat') }}",  # renders the dict's Python repr
        evaluation_set="inference",
    )
    stepped = LogMetricsOperator(
        task_id="log_stepped", experiment_id=experiment.output, metrics={"lr": 0.01}, step="{{ 2 + 3 }}"
    )
    done = SetExperimentStatusOperator(
        task_id="complete", experiment_id=experiment.output, status="Completed"
    )
    sources >> from_xcom
    [from_xcom, literal, json_text, rendered, stepped] >> done
    sources[0] >> rendered
    experiment >> json_text

# ---------------------------------------------------------------------------------- bad payloads
with DAG("mltrack_test_bad_payloads", schedule=None, default_args=NO_RETRY, tags=["mltrack-test"]):
    dataset, model = catalog("")
    experiment = CreateExperimentOperator(
        task_id="create_experiment",
        project=PROJECT,
        name="bad-payloads",
        model_id=model.output,
        dataset_id=dataset.output,
    )

    @task
    def string_value() -> dict:
        return {"accuracy": "high"}

    @task
    def nested_list() -> dict:
        return {"loss": [[0.1, 0.2], [0.3]]}

    @task
    def no_xcom() -> None:
        return None

    bad = [
        LogMetricsOperator(
            task_id="bad_string", experiment_id=experiment.output, source_task_ids="string_value"
        ),
        LogMetricsOperator(
            task_id="bad_nested", experiment_id=experiment.output, source_task_ids="nested_list"
        ),
        LogMetricsOperator(task_id="bad_empty", experiment_id=experiment.output, metrics="{{ {} }}"),
        LogMetricsOperator(task_id="bad_missing", experiment_id=experiment.output, source_task_ids="no_xcom"),
        LogMetricsOperator(
            task_id="bad_long_name",
            experiment_id=experiment.output,
            metrics="{{ {'%s': 1.0} }}" % ("m" * 300),
        ),
    ]
    string_value() >> bad[0]
    nested_list() >> bad[1]
    no_xcom() >> bad[3]
    experiment >> bad

# ---------------------------------------------------------------------------------- bad operator inputs
# Templates, so the checks at run time are the ones under test (literals are refused when the DAG is parsed).
with DAG("mltrack_test_bad_inputs", schedule=None, default_args=NO_RETRY, tags=["mltrack-test"]):
    RegisterDatasetOperator(
        task_id="bad_data_type", project=PROJECT, name="x", data_type="{{ 'Spreadsheet' }}"
    )
    RegisterModelOperator(
        task_id="bad_schema", project=PROJECT, name="m", framework="f", input_schema="{{ [1, 2] }}"
    )
    CreateExperimentOperator(
        task_id="bad_model_id",
        project=PROJECT,
        name="e",
        model_id="{{ ti.xcom_pull(task_ids='nothing_here') }}",
        dataset_id=1,
    )
    DeployModelOperator(
        task_id="bad_traffic", project=PROJECT, endpoint="ep", model_id=1, traffic_percentage="{{ 150 }}"
    )
    PreprocessingJobOperator(
        task_id="bad_output_dataset",
        project=PROJECT,
        name="job",
        input_dataset_id=1,
        output_dataset="{{ {'name': 'derived', 'kind': 'Tabular'} | tojson }}",
    )
    SetExperimentStatusOperator(task_id="bad_status", experiment_id=12345, status="{{ 'Done' }}")

# ---------------------------------------------------------------------------------- catalog, lineage, deploys
with DAG("mltrack_test_catalog", schedule=None, default_args=NO_RETRY, tags=["mltrack-test"]):
    raw = RegisterDatasetOperator(
        task_id="register_raw",
        project="catalog-tests",
        name="raw events",
        data_type="tabular",
        version="{{ 1 + 1 }}",
        num_records="{{ 10 * 10 }}",
        size_bytes=2048,
        source_url="s3://bucket/raw",
        tags=["raw", "events"],
    )
    prep = PreprocessingJobOperator(
        task_id="clean",
        project="catalog-tests",
        name="dropna",
        input_dataset_id=raw.output,
        output_dataset={"name": "clean events", "data_type": "Tabular", "version": "2", "num_records": 90},
        parameters="{{ {'dropna': True, 'min_rows': 10} | tojson }}",
    )
    model_a = RegisterModelOperator(
        task_id="model_a",
        project="catalog-tests",
        name="ranker",
        framework="xgboost",
        version="1",
        input_schema='{"features": 12}',
        output_schema={"score": "float"},
        model_path="/models/ranker-1.json",
    )
    model_b = RegisterModelOperator(
        task_id="model_b", project="catalog-tests", name="ranker", framework="xgboost", version="2"
    )
    deploy_a = DeployModelOperator(
        task_id="deploy_a",
        project="catalog-tests",
        endpoint="rank",
        model_id=model_a.output,
        url="http://rank",
    )
    canary_b = DeployModelOperator(
        task_id="canary_b",
        project="catalog-tests",
        endpoint="rank",
        model_id=model_b.output,
        traffic_percentage="10",
    )
    promote_b = DeployModelOperator(
        task_id="promote_b", project="catalog-tests", endpoint="rank", model_id=model_b.output
    )
    [model_a, model_b] >> deploy_a >> canary_b >> promote_b


# ---------------------------------------------------------------------------------- retries
class FlakyCreateExperiment(CreateExperimentOperator):
    """Creates the experiment, then fails on the first try."""

    def execute(self, context):
        experiment_id = super().execute(context)
        if first_try(context, self.task_id):
            raise RuntimeError("transient failure after the write (try 1)")
        return experiment_id


class FlakyLogMetrics(LogMetricsOperator):
    """Writes the metrics, then fails on the first try."""

    def execute(self, context):
        written = super().execute(context)
        if first_try(context, self.task_id):
            raise RuntimeError("transient failure after the write (try 1)")
        return written


with DAG("mltrack_test_retry", schedule=None, default_args=ONE_RETRY, tags=["mltrack-test"]):
    dataset, model = catalog("")
    experiment = FlakyCreateExperiment(
        task_id="create_experiment",
        project=PROJECT,
        name="retried",
        model_id=model.output,
        dataset_id=dataset.output,
        hyperparameters={"lr": 0.5},
    )
    log = FlakyLogMetrics(
        task_id="log_metrics",
        experiment_id=experiment.output,
        metrics={"loss": [0.5, 0.25, 0.125], "accuracy": 0.75},
    )
    done = SetExperimentStatusOperator(
        task_id="complete", experiment_id=experiment.output, status="Completed"
    )
    log >> done


with DAG("mltrack_test_retry_decorator", schedule=None, default_args=ONE_RETRY, tags=["mltrack-test"]):
    dataset, model = catalog("")

    @task.mltrack(
        project=PROJECT, experiment="flaky-training", model_id=model.output, dataset_id=dataset.output
    )
    def flaky_train(lr: float = 0.1, tracker=None, ti=None) -> dict:
        for epoch in range(3):
            tracker.log_metric("loss", 1.0 / (epoch + 1), step=epoch, evaluation_set="train")
        if first_try(ti, "flaky_train"):
            raise RuntimeError("transient failure in training (try 1)")
        return {"accuracy": 0.9}

    flaky_train()
