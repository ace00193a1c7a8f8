"""DAGs as users write them (tests/operators/dags/user_style_dags.py), on both tracking backends.

Each test is one user-visible promise: a diverged run (NaN) is tracked and its XCom usable downstream, every
payload shape returned by ``@task.mltrack`` is logged by the one parser (or refused, naming the entry),
templated numbers are numbers, mapped experiments have distinct names, a derived dataset is an Asset event,
and bad literal arguments are refused when the DAG file is parsed.
"""

from __future__ import annotations

import json
import math
import textwrap
import time
from typing import Any

import pytest

from airflow_mltrack.vocabulary import XCOM_EXPERIMENT_ID
from tests.operators.conftest import DagResult, _register_bundles, load_dag
from tests.support.pgserver import free_port

pytestmark = pytest.mark.airflow


@pytest.fixture
def user_store(tracking_url, monkeypatch):
    """The tracking store (SQLite, then PostgreSQL) behind connection ``mltrack_default``."""
    from airflow_mltrack.store import TrackingStore

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLTRACK_DEFAULT", json.dumps({"conn_type": "mltrack", "extra": {"url": tracking_url}})
    )
    return TrackingStore.from_url(tracking_url)


@pytest.fixture
def run(airflow_db, user_store):
    def run_dag(dag_id: str, **kwargs: Any) -> DagResult:
        _register_bundles()
        dag = load_dag(dag_id)
        started = time.perf_counter()
        return DagResult(dag.test(**kwargs), time.perf_counter() - started)

    return run_dag


def by_name(store, name: str) -> dict:
    [experiment] = [e for e in store.list_experiments("users") if e["name"] == name]
    return experiment


def history(store, experiment_id: int, name: str, split: str) -> list[tuple]:
    return [(r["step"], r["value"]) for r in store.metric_history(experiment_id, name, split)]


def test_diverged_run_succeeds_and_nan_reaches_downstream_tasks(run, user_store):
    result = run("user_diverged")
    assert result.state == "success", result.tis
    diverged = by_name(user_store, "diverged")
    assert diverged["status"] == "Completed"
    assert result.xcom("train") == {"loss": "NaN", "accuracy": 0.1}  # strict JSON spelling of NaN
    assert result.xcom("report") == "diverged"
    eid = diverged["experiment_id"]
    assert result.xcom("train", XCOM_EXPERIMENT_ID) == eid
    [(step, loss)] = history(user_store, eid, "loss", "validation")
    assert step is None and math.isnan(loss)
    [(_, logged_again)] = history(user_store, eid, "loss", "test")  # LogMetricsOperator fed by the XCom
    assert math.isnan(logged_again)
    assert history(user_store, eid, "train_loss", "train") == [
        (0, 1.0),
        (1, 0.5),
        (2, 1.0 / 3),
    ]  # numpy steps
    # the rows shape returned by @task.mltrack is logged like any other shape
    rows = by_name(user_store, "rows")
    assert history(user_store, rows["experiment_id"], "f1", "validation") == [(1, 0.8)]
    assert history(user_store, rows["experiment_id"], "f1", "test") == [(2, 0.85)]


def test_returned_values_go_through_the_one_parser(run, user_store, capfd):
    result = run("user_returns")
    output = capfd.readouterr().out
    assert result.state_of("typo") == "failed"
    assert result.state_of("words") == "failed"
    assert result.state_of("bad_call") == "failed"
    assert result.state_of("with_path") == "success" and result.state_of("path_only") == "success"
    for message in (
        "return_value.val='val': a nested dict must be keyed by an evaluation set",
        "return_value.test.accuracy='high': must be a number, not str",
        "or set log_return=False",
        "log_metric('acc') value='high': must be a number, not str",
    ):
        assert message in output, message
    assert by_name(user_store, "typo")["status"] == "Failed"
    with_path = by_name(user_store, "with-path")
    assert result.xcom("with_path") == {"accuracy": 0.9, "model_path": "/models/m.pkl"}
    assert [
        (m["name"], m["evaluation_set"]) for m in user_store.latest_metrics(with_path["experiment_id"])
    ] == [("accuracy", "validation")]
    assert user_store.latest_metrics(by_name(user_store, "path-only")["experiment_id"]) == []
    # metrics beside data: the metrics are logged, the data stays in XCom
    assert result.state_of("metrics_and_path") == "success"
    mixed = by_name(user_store, "metrics-and-path")
    assert mixed["status"] == "Completed"
    assert [(m["name"], m["value"]) for m in user_store.latest_metrics(mixed["experiment_id"])] == [
        ("accuracy", 0.8)
    ]
    assert result.xcom("metrics_and_path")["model_path"] == "/models/m.pkl"


@pytest.mark.parametrize("dag_id", ["user_templated_numbers", "user_templated_native"])
def test_templated_numbers_are_numbers(run, user_store, dag_id):
    result = run(dag_id)
    assert result.state == "success", result.tis
    experiment = by_name(user_store, dag_id)
    assert experiment["hyperparameters"] == {"C": 0.5, "penalty": "l2"}
    assert isinstance(experiment["hyperparameters"]["C"], float)
    assert history(user_store, experiment["experiment_id"], "accuracy", "test") == [(5, 0.5)]
    decorated = by_name(user_store, f"{dag_id}-decorated")
    assert decorated["hyperparameters"] == {"C": 0.5}


def test_mapped_experiments_have_distinct_names(run, user_store):
    result = run("user_sweep")
    assert result.state == "success", result.tis
    names = {(e["task_id"], e["map_index"]): e["name"] for e in user_store.list_experiments("users")}
    assert names == {
        ("sweep", 0): "sweep-lr-0",
        ("sweep", 1): "sweep-lr-1",
        ("sweep", 2): "sweep-lr-2",
        ("grid", 0): "grid-0.1",
        ("grid", 1): "grid-0.01",
    }


def test_derived_dataset_is_an_asset_event(run, user_store):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_mltrack.operators import dataset_asset

    result = run("user_derived_dataset")
    assert result.state == "success", result.tis
    [scaled] = [d for d in user_store.list_datasets("users") if d["name"] == "scaled"]
    with create_session() as session:
        extras = session.scalars(
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(
                AssetModel.uri == dataset_asset("users", "scaled").uri,
                AssetEvent.source_run_id == result.run_id,
            )
        ).all()
    assert len(extras) == 1
    assert extras[0]["dataset_id"] == scaled["dataset_id"] and extras[0]["num_records"] == 90
    assert extras[0]["job_id"] == result.xcom("scale") and extras[0]["new_version"] is True


def test_unknown_experiment_is_one_clear_error(run, user_store, capfd):
    result = run("user_unknown_experiment")
    output = capfd.readouterr().out
    assert result.state_of("log") == "failed"
    assert "experiment_id=999999" in output
    assert "ForeignKeyViolation" not in output and "IntegrityError" not in output


PARSE_CASES = {
    "status": (
        'SetExperimentStatusOperator(task_id="t", experiment_id=1, status="Done")',
        "status='Done': must be one of Pending, Running, Completed, Failed, Cancelled",
    ),
    "data_type": (
        'RegisterDatasetOperator(task_id="t", project="p", name="d", data_type="csv")',
        "data_type='csv': must be one of Image, Text, Tabular",
    ),
    "evaluation_set": (
        'LogMetricsOperator(task_id="t", experiment_id=1, metrics={"a": 1.0}, evaluation_set="holdout")',
        "evaluation_set='holdout': must be one of train, validation, test, inference",
    ),
    "metrics": (
        'LogMetricsOperator(task_id="t", experiment_id=1, metrics={"test": {"acc": "high"}})',
        "metrics.test.acc='high': must be a number, not str",
    ),
    "traffic": (
        'DeployModelOperator(task_id="t", project="p", endpoint="e", model_id=1, traffic_percentage=150)',
        "traffic_percentage=150: must be between 0 and 100",
    ),
    "output_dataset": (
        'PreprocessingJobOperator(task_id="t", project="p", name="j", input_dataset_id=1,'
        ' output_dataset={"name": "x", "data_type": "csv"})',
        "output_dataset.data_type='csv': must be one of",
    ),
    "decorator_split": (
        '@task.mltrack(project="p", evaluation_set="holdout")\n    def train():\n        return None\n\n    train()',
        "evaluation_set='holdout': must be one of",
    ),
    "decorator_name": (
        '@task.mltrack(project="p", experiment="sweep-{alpha}")\n    def train(lr: float):\n        return None\n\n'
        "    train.expand(lr=[0.1])",
        "experiment='sweep-{alpha}': unknown placeholder {alpha}; use lr, map_index",
    ),
}


@pytest.mark.parametrize("case", list(PARSE_CASES))
def test_bad_literal_arguments_are_refused_when_the_dag_is_parsed(tmp_path, case):
    from airflow.dag_processing.dagbag import DagBag

    body, message = PARSE_CASES[case]
    (tmp_path / f"user_{case}.py").write_text(
        textwrap.dedent(
            """\
            from datetime import datetime

            from airflow.sdk import dag, task

            from airflow_mltrack.operators import *


            @dag(schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False)
            def user_dag():
                {body}


            user_dag()
            """
        ).replace("{body}", body)
    )
    bag = DagBag(dag_folder=str(tmp_path))
    errors = "\n".join(bag.import_errors.values())
    assert message in errors, errors
    assert not bag.dags


def test_good_templated_and_xcom_arguments_are_not_checked_at_parse_time():
    from airflow.sdk import DAG

    from airflow_mltrack.operators import (
        DeployModelOperator,
        RegisterDatasetOperator,
        SetExperimentStatusOperator,
    )

    with DAG("user_late_values", schedule=None):
        model = RegisterDatasetOperator(task_id="d", project="p", name="d", data_type="{{ params.kind }}")
        SetExperimentStatusOperator(task_id="s", experiment_id=model.output, status="{{ params.status }}")
        DeployModelOperator(
            task_id="m", project="p", endpoint="e", model_id=model.output, traffic_percentage="{{ 5 }}"
        )


def test_database_down_is_not_reported_as_an_old_schema():
    from airflow_mltrack.errors import SchemaOutOfDateError
    from airflow_mltrack.store import TrackingStore

    store = TrackingStore.from_url(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/mltrack")
    with pytest.raises(Exception) as info:
        store.ensure_project("p")
    assert not isinstance(info.value, SchemaOutOfDateError), info.value
    assert "db upgrade" not in str(info.value)
