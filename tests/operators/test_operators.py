"""The operators on a real Airflow (dag.test on test DAG files) with a real PostgreSQL tracking store."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from airflow_mltrack import MLTrackError
from airflow_mltrack.operators import (
    CreateExperimentOperator,
    DeployModelOperator,
    ExperimentLink,
    LogMetricsOperator,
    PreprocessingJobOperator,
    RegisterDatasetOperator,
    RegisterModelOperator,
    SetExperimentStatusOperator,
    dataset_asset_uri,
)
from airflow_mltrack.operators.base import coerce_id, coerce_number, coerce_structure
from airflow_mltrack.store.tables import metrics as metrics_table

ARGS = {
    RegisterDatasetOperator: {"project": "p", "name": "n", "data_type": "Tabular"},
    RegisterModelOperator: {"project": "p", "name": "n", "framework": "f"},
    CreateExperimentOperator: {"project": "p", "name": "n", "model_id": 1, "dataset_id": 1},
    LogMetricsOperator: {"experiment_id": 1, "metrics": {"a": 1.0}},
    SetExperimentStatusOperator: {"experiment_id": 1, "status": "Completed"},
    DeployModelOperator: {"project": "p", "endpoint": "e", "model_id": 1},
    PreprocessingJobOperator: {"project": "p", "name": "n", "input_dataset_id": 1},
}


def metric_rows(store, experiment_id: int) -> list[tuple]:
    with store.engine.connect() as conn:
        found = conn.execute(
            select(
                metrics_table.c.name,
                metrics_table.c.evaluation_set,
                metrics_table.c.step,
                metrics_table.c.value,
            )
            .where(metrics_table.c.experiment_id == experiment_id)
            .order_by(metrics_table.c.name, metrics_table.c.evaluation_set, metrics_table.c.step)
        ).all()
    return [tuple(r) for r in found]


def count_metrics(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(metrics_table)).scalar_one()


# ------------------------------------------------------------------------------------------ construction
@pytest.mark.parametrize("cls", list(ARGS), ids=lambda c: c.__name__)
def test_every_user_argument_is_templated(cls):
    import inspect

    params = [
        p
        for p in inspect.signature(cls.__init__).parameters
        if p not in ("self", "kwargs", "mltrack_conn_id", "emit_asset_event")
    ]
    assert set(params) <= set(cls.template_fields), set(params) - set(cls.template_fields)
    op = cls(task_id="t", **ARGS[cls])
    assert op.mltrack_conn_id == "mltrack_default"


def test_register_dataset_declares_one_asset_per_dataset_name():
    op = RegisterDatasetOperator(
        task_id="t", project="my project", name="a/b", data_type="Tabular", version="3"
    )
    assert [a.uri for a in op.outlets] == ["x-mltrack://my%20project/a%2Fb"]
    assert dataset_asset_uri("my project", "a/b") == op.outlets[0].uri
    templated = RegisterDatasetOperator(task_id="t2", project="{{ params.p }}", name="n", data_type="Tabular")
    assert templated.outlets == [] and templated.asset is None
    assert (
        RegisterDatasetOperator(task_id="t3", emit_asset_event=False, **ARGS[RegisterDatasetOperator]).outlets
        == []
    )


def test_log_metrics_needs_a_payload_source():
    with pytest.raises(MLTrackError, match="metrics"):
        LogMetricsOperator(task_id="t", experiment_id=1)


def test_coercion_of_rendered_values():
    assert coerce_id("model_id", " 12 ") == 12
    assert coerce_id("model_id", 3.0) == 3
    with pytest.raises(MLTrackError, match=r"model_id='None': rendered empty"):
        coerce_id("model_id", "None")
    with pytest.raises(MLTrackError, match=r"dataset_id='abc'"):
        coerce_id("dataset_id", "abc")
    with pytest.raises(MLTrackError, match=r"dataset_id=0"):
        coerce_id("dataset_id", 0)
    assert coerce_number("traffic_percentage", "12.5") == 12.5
    assert coerce_structure("hyperparameters", '{"a": 1}') == {"a": 1}
    assert coerce_structure("hyperparameters", "{'a': True, 'b': None}") == {"a": True, "b": None}
    assert coerce_structure("metrics", "[{'name': 'a', 'value': 1}]", kinds=(dict, list)) == [
        {"name": "a", "value": 1}
    ]
    with pytest.raises(MLTrackError, match=r"hyperparameters=\[1\]: must be a dict"):
        coerce_structure("hyperparameters", "[1]")
    with pytest.raises(MLTrackError, match="neither JSON nor a Python literal"):
        coerce_structure("hyperparameters", "{oops")


def test_experiment_link_opens_the_experiment_inside_the_airflow_ui(monkeypatch):
    from airflow.models.taskinstancekey import TaskInstanceKey

    op = CreateExperimentOperator(task_id="t", **ARGS[CreateExperimentOperator])
    link = ExperimentLink()
    assert link.name == "Experiment"
    assert link.get_link(op, ti_key=None) == ""
    op.mltrack_experiment_id = 7
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/base/")
    # no task instance: the "ML Tracking" page, told which page to open
    assert (
        link.get_link(op, ti_key=None)
        == "https://airflow.example.com/base/plugin/mltrack?mltrack=experiments/7"
    )
    # the task instance's Experiment tab (the plugin's task_instance external view), ids as path segments
    key = TaskInstanceKey(
        dag_id="my dag", task_id="train", run_id="manual__2026-01-01T00:00:00+00:00", map_index=-1
    )
    assert link.get_link(op, ti_key=key) == (
        "https://airflow.example.com/base/dags/my%20dag/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00"
        "/tasks/train/plugin/mltrack-task?mltrack=experiments/7"
    )
    mapped = TaskInstanceKey(dag_id="d", task_id="train", run_id="r", map_index=3)
    assert link.get_link(op, ti_key=mapped).endswith(
        "/dags/d/runs/r/tasks/train/mapped/3/plugin/mltrack-task?mltrack=experiments/7"
    )


# ------------------------------------------------------------------------------------------ in DAG runs
def test_every_payload_shape_through_log_metrics(run_dag, store):
    result = run_dag("mltrack_test_payloads")
    assert result.state == "success", result.tis
    [experiment] = store.list_experiments("op-tests")
    eid = experiment["experiment_id"]
    assert result.xcom("create_experiment") == eid
    assert experiment["status"] == "Completed"
    assert experiment["hyperparameters"] == {"lr": 0.1, "layers": [64, 32]}
    assert experiment["code_version"] == "abc123"
    assert (experiment["dag_id"], experiment["task_id"], experiment["map_index"]) == (
        "mltrack_test_payloads",
        "create_experiment",
        -1,
    )
    assert store.get_experiment(eid)["tags"] == ["shapes"]
    assert result.xcom("log_from_xcom") == 11  # 1 + 3 + 2 + 2 + 3 (all three map indexes)
    assert metric_rows(store, eid) == [
        ("accuracy", "inference", None, 0.9),  # the rendered repr of an XCom dict
        ("accuracy", "test", None, 0.9),
        ("accuracy", "train", None, 0.99),
        ("accuracy", "validation", None, 0.95),
        ("auc", "inference", None, 0.7),
        ("f1", "test", 2, 0.85),
        ("f1", "validation", 1, 0.8),
        ("fold_accuracy", "test", 0, 0.5),
        ("fold_accuracy", "test", 1, 0.25),
        ("fold_accuracy", "test", 2, 0.125),
        ("loss", "test", 0, 0.9),
        ("loss", "test", 1, 0.5),
        ("loss", "test", 2, 0.3),
        ("lr", "test", 5, 0.01),
        ("precision", "validation", None, 0.6),
    ]
    assert result.xcom("create_experiment", key="_link_ExperimentLink").endswith(
        f"/dags/mltrack_test_payloads/runs/{quote(result.run_id, safe='')}/tasks/create_experiment/plugin/mltrack-task"
        f"?mltrack=experiments/{eid}"
    )
    # a task that logged to another task's experiment: its own tab, opened on that experiment
    assert result.xcom("log_literal", key="_link_ExperimentLink").endswith(
        f"/tasks/log_literal/plugin/mltrack-task?mltrack=experiments/{eid}"
    )


def test_bad_payloads_fail_the_task_naming_the_field_and_write_nothing(run_dag, store, capfd):
    result = run_dag("mltrack_test_bad_payloads")
    output = capfd.readouterr().out
    assert result.state == "failed"
    for task_id in ("bad_string", "bad_nested", "bad_empty", "bad_missing", "bad_long_name"):
        assert result.state_of(task_id) == "failed", (task_id, result.tis)
    assert result.state_of("create_experiment") == "success"
    assert count_metrics(store) == 0
    for message in (
        "xcom[string_value].accuracy='high': must be a number, not str",
        "xcom[nested_list].loss[0]=[0.1, 0.2]: must be a number, not a nested list or dict",
        "metrics={}: is empty: nothing to log",
        "xcom[no_xcom]=None: task 'no_xcom' has no XCom 'return_value' in this DAG run",
        "is 300 characters long; at most 100 allowed",
    ):
        assert message in output, message
    [experiment] = store.list_experiments("op-tests")
    assert experiment["status"] == "Failed"  # the status listener: a tracked task failed for good


def test_bad_operator_inputs_fail_with_field_and_value(run_dag, store, capfd):
    result = run_dag("mltrack_test_bad_inputs")
    output = capfd.readouterr().out
    assert result.state == "failed"
    assert {state for state, _ in result.tis.values()} == {"failed"}
    for message in (
        "data_type='Spreadsheet': must be one of Image, Text, Tabular, Audio, Video, Other",
        "input_schema=[1, 2]: must be a dict, not list",
        "model_id='None': rendered empty",
        "traffic_percentage=150",
        "output_dataset='kind': unknown key",
        "status='Done': must be one of",
    ):
        assert message in output, message
    assert store.list_datasets() == [] and store.list_models() == [] and store.list_experiments() == []


def test_catalog_lineage_deploys_and_asset_event(run_dag, store):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    result = run_dag("mltrack_test_catalog")
    assert result.state == "success", result.tis
    datasets = {d["name"]: d for d in store.list_datasets("catalog-tests")}
    raw, clean = datasets["raw events"], datasets["clean events"]
    assert (raw["version"], raw["data_type"], raw["num_records"], raw["size_bytes"]) == (
        "2",
        "Tabular",
        100,
        2048,
    )
    assert (clean["version"], clean["num_records"]) == ("2", 90)
    [job] = store.list_preprocessing_jobs("catalog-tests")
    assert result.xcom("clean") == job["job_id"]
    assert result.xcom("clean", key="output_dataset_id") == clean["dataset_id"]
    assert (job["input_dataset_id"], job["output_dataset_id"]) == (raw["dataset_id"], clean["dataset_id"])
    assert job["parameters"] == {"dropna": True, "min_rows": 10}
    assert (job["status"], job["task_id"]) == ("Completed", "clean")
    model_a = store.get_model(result.xcom("model_a"))
    assert model_a["input_schema"] == {"features": 12} and model_a["model_path"] == "/models/ranker-1.json"
    state = store.endpoint_state("catalog-tests", "rank")
    assert [(r["model_version"], r["traffic_percentage"]) for r in state] == [("2", 100.0)]
    history = store.endpoint_history("catalog-tests", "rank")
    assert [(r["model_version"], r["traffic_percentage"]) for r in history] == [
        ("1", 100.0),
        ("1", 90.0),
        ("2", 10.0),
        ("2", 100.0),
    ]
    assert {r["dag_id"] for r in history} == {"mltrack_test_catalog"}

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(
                AssetModel.uri == "x-mltrack://catalog-tests/raw%20events",
                AssetEvent.source_run_id == result.run_id,
            )
        ).all()
        extras = [e.extra for e in events]
    assert len(extras) == 1
    assert extras[0]["dataset_id"] == raw["dataset_id"]
    assert (extras[0]["version"], extras[0]["num_records"], extras[0]["new_version"]) == ("2", 100, True)

    again = run_dag("mltrack_test_catalog")  # a second run: same ids, nothing new
    assert again.state == "success"
    assert again.xcom("register_raw") == raw["dataset_id"] and again.xcom("model_b") == result.xcom("model_b")
    # a back to 100 (b retired), b canary (a 90, b 10), b promoted (a retired): 4 more rows of history
    assert len(store.endpoint_history("catalog-tests", "rank")) == 4 + 4
    assert [r["model_version"] for r in store.endpoint_state("catalog-tests", "rank")] == ["2"]
    assert len(store.list_preprocessing_jobs("catalog-tests")) == 2  # one job per DAG run


def test_retried_operators_write_one_experiment_and_no_duplicate_metrics(run_dag, store):
    result = run_dag("mltrack_test_retry")
    assert result.state == "success", result.tis
    assert result.tis[("create_experiment", -1)] == ("success", 2)
    assert result.tis[("log_metrics", -1)] == ("success", 2)
    [experiment] = store.list_experiments("op-tests")
    assert (experiment["status"], experiment["try_number"]) == ("Completed", 2)
    assert experiment["hyperparameters"] == {"lr": 0.5}
    assert metric_rows(store, experiment["experiment_id"]) == [
        ("accuracy", "test", None, 0.75),
        ("loss", "test", 0, 0.5),
        ("loss", "test", 1, 0.25),
        ("loss", "test", 2, 0.125),
    ]


def test_retried_tracked_task_is_one_completed_experiment(run_dag, store):
    result = run_dag("mltrack_test_retry_decorator")
    assert result.state == "success", result.tis
    assert result.tis[("flaky_train", -1)] == ("success", 2)
    [experiment] = store.list_experiments("op-tests")
    assert experiment["status"] == "Completed"
    assert experiment["error"] is None
    assert metric_rows(store, experiment["experiment_id"]) == [
        ("accuracy", "validation", None, 0.9),
        ("loss", "train", 0, 1.0),
        ("loss", "train", 1, 0.5),
        ("loss", "train", 2, 1.0 / 3),
    ]
