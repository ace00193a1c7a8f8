"""DAGs for tests/reliability/test_bad_input.py and test_security.py. Not examples.

Bad input: one DAG per case (``mltrack_bad_<case>``), one task each, so every case is one ``dag.test()`` and
its row counts are compared before and after. Ids of rows the test created first come in through
``dag_run.conf`` (``{{ dag_run.conf['experiment_id'] }}``, ...).

Secrets: ``mltrack_secrets`` writes secret-looking hyperparameters through every path that stores them
(operator, ``@task.mltrack`` arguments, ``hyperparameters=``, ``tracker.log_params``, job parameters).
"""

from __future__ import annotations

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

PROJECT = "bad-input"
NO_RETRY = {"retries": 0}
MODEL = "{{ dag_run.conf['model_id'] }}"
DATASET = "{{ dag_run.conf['dataset_id'] }}"
EXPERIMENT = "{{ dag_run.conf['experiment_id'] }}"
COMPLETED = "{{ dag_run.conf['completed_id'] }}"
MISSING = 999_999
INJECTION = "'; DROP TABLE metrics; --"


def late(value: object) -> str:
    """A template rendering ``value``: the run-time check is the one under test (literal bad arguments
    are refused when the DAG file is parsed, tests/operators/test_user_dags.py)."""
    return f"{{{{ {value!r} }}}}"


# The secrets of mltrack_secrets (tests/reliability/test_security.py looks for each of them).
SECRETS = {
    "api_key": "sk-live-op-7f3a9c1e5b",
    "db_password": "pw-nested-4d2b8e6a1c",
    "hf_token": "hf-decorator-9a8b7c6d5e",
    "password": "pw-argument-1e2d3c4b5a",
    "client_secret": "cs-log-params-5f6e7d8c9b",
    "aws_secret_access_key": "aws-job-param-0a9b8c7d",
}

_OPERATOR_CASES = {
    "dataset_data_type": lambda: RegisterDatasetOperator(
        task_id="t", project=PROJECT, name="d", data_type=late("Spreadsheet")
    ),
    "dataset_size_nan": lambda: RegisterDatasetOperator(
        task_id="t", project=PROJECT, name="d", data_type="Tabular", size_bytes=late("NaN")
    ),
    "dataset_injected_type": lambda: RegisterDatasetOperator(
        task_id="t", project=PROJECT, name="d", data_type=late(INJECTION)
    ),
    "model_blank_name": lambda: RegisterModelOperator(
        task_id="t", project=PROJECT, name=late("   "), framework="f"
    ),
    "model_schema_json": lambda: RegisterModelOperator(
        task_id="t", project=PROJECT, name="m", framework="f", input_schema=late('{"features": 12,')
    ),
    "experiment_json": lambda: CreateExperimentOperator(
        task_id="t",
        project=PROJECT,
        name="e",
        model_id=MODEL,
        dataset_id=DATASET,
        hyperparameters=late('{"lr": 0.1,'),
    ),
    "experiment_missing_model": lambda: CreateExperimentOperator(
        task_id="t", project=PROJECT, name="e", model_id=MISSING, dataset_id=DATASET
    ),
    "experiment_status": lambda: CreateExperimentOperator(
        task_id="t", project=PROJECT, name="e", model_id=MODEL, dataset_id=DATASET, status=late("Exploded")
    ),
    "experiment_huge_params": lambda: CreateExperimentOperator(
        task_id="t",
        project=PROJECT,
        name="e",
        model_id=MODEL,
        dataset_id=DATASET,
        hyperparameters={"blob": "{{ 'x' * 100000 }}"},
    ),
    "log_split": lambda: LogMetricsOperator(
        task_id="t", experiment_id=EXPERIMENT, metrics={"accuracy": 0.9}, evaluation_set=late("holdout")
    ),
    "log_step": lambda: LogMetricsOperator(
        task_id="t", experiment_id=EXPERIMENT, metrics={"accuracy": 0.9}, step=late("-1")
    ),
    "log_missing_experiment": lambda: LogMetricsOperator(
        task_id="t", experiment_id=MISSING, metrics={"accuracy": 0.9}
    ),
    "status_illegal_move": lambda: SetExperimentStatusOperator(
        task_id="t", experiment_id=COMPLETED, status="Running"
    ),
    "deploy_over_100": lambda: DeployModelOperator(
        task_id="t", project=PROJECT, endpoint="prod", model_id=MODEL, traffic_percentage=late("150")
    ),
    "deploy_nan": lambda: DeployModelOperator(
        task_id="t", project=PROJECT, endpoint="prod", model_id=MODEL, traffic_percentage=late("nan")
    ),
    "job_missing_input": lambda: PreprocessingJobOperator(
        task_id="t",
        project=PROJECT,
        name="clean",
        input_dataset_id=MISSING,
        output_dataset={"name": "derived", "data_type": "Tabular"},
    ),
    "job_nan_parameter": lambda: PreprocessingJobOperator(
        task_id="t",
        project=PROJECT,
        name="clean",
        input_dataset_id=DATASET,
        output_dataset={"name": "derived", "data_type": "Tabular"},
        parameters=late('{"threshold": NaN}'),
    ),
}

_DECORATOR_CASES = {
    "decorator_json": {"hyperparameters": late('{"lr":')},
    "decorator_split": {"evaluation_set": late("holdout")},
    "decorator_missing_model": {"model_id": MISSING},
    "decorator_nan_param": {"hyperparameters": late('{"lr": NaN}')},
    "decorator_long_name": {"experiment": late("x" * 300)},
    "decorator_foreign_dataset": {"dataset_id": "{{ dag_run.conf['foreign_dataset_id'] }}"},
}

for _case, _make in _OPERATOR_CASES.items():
    with DAG(f"mltrack_bad_{_case}", schedule=None, default_args=NO_RETRY, tags=["mltrack-test"]):
        _make()

for _case, _kwargs in _DECORATOR_CASES.items():
    with DAG(f"mltrack_bad_{_case}", schedule=None, default_args=NO_RETRY, tags=["mltrack-test"]):

        @task.mltrack(task_id="t", project=PROJECT, **_kwargs)
        def train(lr: float = 0.1, tracker=None) -> dict:
            tracker.log_metric("loss", 0.5, step=0)
            return {"accuracy": 0.9}

        train()

# ---------------------------------------------------------------------------------- injection, stored as a name
with DAG("mltrack_injected_name", schedule=None, default_args=NO_RETRY, tags=["mltrack-test"]):
    RegisterDatasetOperator(task_id="t", project=INJECTION, name=INJECTION, data_type="Tabular")

# ---------------------------------------------------------------------------------- secrets
with DAG("mltrack_secrets", schedule=None, default_args=NO_RETRY, tags=["mltrack-test"]):
    dataset = RegisterDatasetOperator(task_id="dataset", project="secrets", name="d", data_type="Tabular")
    model = RegisterModelOperator(task_id="model", project="secrets", name="m", framework="sklearn")
    experiment = CreateExperimentOperator(
        task_id="experiment",
        project="secrets",
        name="operator",
        model_id=model.output,
        dataset_id=dataset.output,
        hyperparameters={
            "lr": 0.1,
            "api_key": SECRETS["api_key"],
            "connection": {"db_password": SECRETS["db_password"]},
        },
    )

    @task.mltrack(project="secrets", hyperparameters={"hf_token": SECRETS["hf_token"]})
    def train(lr: float = 0.05, password: str = SECRETS["password"], tracker=None) -> dict:
        tracker.log_params({"client_secret": SECRETS["client_secret"], "max_tokens": 512})
        tracker.log_metric("loss", 0.5, step=0)
        return {"accuracy": 0.9}

    job = PreprocessingJobOperator(
        task_id="job",
        project="secrets",
        name="scale",
        input_dataset_id=dataset.output,
        output_dataset={"name": "scaled", "data_type": "Tabular"},
        parameters={"aws_secret_access_key": SECRETS["aws_secret_access_key"], "scale": 2},
    )
    [dataset, model] >> experiment
    dataset >> job
    train()
