"""MLflow's request validation and search keys over the REST protocol, as MLflow's own server answers them
(the ``*_validation`` tests of MLflow's tests/tracking/test_rest_tracking.py): a value of the wrong JSON type
is "Invalid value 31 for parameter 'run_id' supplied", a missing one "Missing value for required parameter
'key'", both 400 INVALID_PARAMETER_VALUE with nothing written; bare attribute names in search_runs."""

from __future__ import annotations

import time

import httpx
import mlflow
import pytest
from mlflow import MlflowClient

API = "/mltrack/mlflow/api/2.0/mlflow"


@pytest.fixture
def http(rest):
    with httpx.Client(base_url=rest.base, headers={"Authorization": f"Bearer {rest.token()}"}) as client:
        yield client


def _bad(http: httpx.Client, endpoint: str, payload: dict, expected: str) -> None:
    """400 INVALID_PARAMETER_VALUE whose message contains ``expected`` (as MLflow's tests read the text)."""
    response = http.post(f"{API}/{endpoint}", json=payload)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert expected in response.text, response.text


def test_create_experiment_validation(rest, http):
    _bad(http, "experiments/create", {"name": 123}, "Invalid value 123 for parameter 'name' supplied")
    _bad(http, "experiments/create", {}, "Missing value for required parameter 'name'.")
    _bad(
        http,
        "experiments/create",
        {"name": "x", "artifact_location": 9.0, "tags": [{"key": "k", "value": "v"}]},
        "Invalid value 9.0 for parameter 'artifact_location'",
    )
    _bad(
        http, "experiments/create", {"name": "x", "tags": "5"}, "Invalid value \\\"5\\\" for parameter 'tags'"
    )
    assert MlflowClient().get_experiment_by_name("x") is None  # nothing partly written


def test_run_logging_validation(rest, http):
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("validation")).info.run_id
    metric = {"run_id": run_id, "key": "m", "value": 41, "timestamp": 59, "step": 26}
    _bad(
        http, "runs/log-metric", {**metric, "run_id": 31}, "Invalid value 31 for parameter 'run_id' supplied"
    )
    _bad(http, "runs/log-metric", {**metric, "key": 31}, "Invalid value 31 for parameter 'key' supplied")
    _bad(http, "runs/log-metric", {**metric, "step": "foo"}, "Invalid value \\\"foo\\\" for parameter 'step'")
    _bad(http, "runs/log-metric", {**metric, "timestamp": "foo"}, "for parameter 'timestamp' supplied")
    _bad(http, "runs/log-metric", {**metric, "run_id": None}, "Missing value for required parameter 'run_id'")
    _bad(http, "runs/log-metric", {**metric, "key": None}, "Missing value for required parameter 'key'")
    no_key = {k: v for k, v in metric.items() if k != "key"}
    _bad(http, "runs/log-metric", no_key, "Missing value for required parameter 'key'")
    param = {"run_id": run_id, "key": "p", "value": "1"}
    _bad(
        http,
        "runs/log-parameter",
        {**param, "run_id": 31},
        "Invalid value 31 for parameter 'run_id' supplied",
    )
    _bad(http, "runs/log-parameter", {**param, "key": 31}, "Invalid value 31 for parameter 'key' supplied")
    _bad(http, "runs/set-tag", {**param, "value": 41}, "Invalid value 41 for parameter 'value' supplied")
    _bad(http, "runs/set-tag", {"run_id": run_id, "value": "v"}, "Missing value for required parameter 'key'")
    for name in ("metrics", "params", "tags"):
        _bad(
            http,
            "runs/log-batch",
            {"run_id": run_id, name: "foo"},
            f"Invalid value \\\"foo\\\" for parameter '{name}'",
        )
    _bad(
        http,
        "runs/log-batch",
        {"run_id": run_id, "metrics": [{"key": "mae", "value": 2.5}]},
        "Missing value for required parameter 'metrics[0].timestamp'",
    )
    got = client.get_run(run_id).data
    assert (got.metrics, got.params, got.tags.get("p")) == ({}, {}, None)  # nothing partly written
    # what MLflow accepts: the legacy run_uuid, a batch metric without a step
    assert (
        http.post(f"{API}/runs/set-tag", json={"run_uuid": run_id, "key": "k", "value": "v"}).status_code
        == 200
    )
    ok = {"run_id": run_id, "metrics": [{"key": "mae", "value": 2.5, "timestamp": 123456789}]}
    assert http.post(f"{API}/runs/log-batch", json=ok).status_code == 200
    got = client.get_run(run_id).data
    assert got.tags["k"] == "v" and got.metrics == {"mae": 2.5}


def test_query_and_range_checks(rest, http):
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("ranges")).info.run_id
    too_many = http.post(f"{API}/runs/search", json={"experiment_ids": ["1"], "max_results": 50001})
    assert too_many.status_code == 400 and "Invalid value 50001 for parameter 'max_results'" in too_many.text
    bulk = http.get(
        "/mltrack/mlflow/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
        params={"run_ids": [run_id], "metric_key": "m", "max_results": "0"},
    )
    assert bulk.status_code == 400 and "max_results must be between 1 and 2500" in bulk.text
    many = http.get(
        "/mltrack/mlflow/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
        params={"run_ids": [str(i) for i in range(101)], "metric_key": "m"},
    )
    assert many.status_code == 400 and "Received 101 run_ids" in many.text
    no_key = http.get(f"{API}/metrics/get-history", params={"run_id": run_id})
    assert no_key.status_code == 400 and "Missing value for required parameter 'metric_key'" in no_key.text


def test_search_runs_with_bare_attribute_names(rest):
    """As in MLflow, a name without a prefix is an attribute: start_time, status, run_name."""
    client = MlflowClient()
    exp_id = client.create_experiment("bare")
    ids = {}
    for name in ("a", "b", "c"):
        ids[name] = client.create_run(exp_id, run_name=name).info.run_id
        time.sleep(0.01)  # distinct start times
    client.set_terminated(ids["b"], "FINISHED")
    client.set_terminated(ids["c"], "KILLED")
    names = lambda runs: [r.info.run_name for r in runs]  # noqa: E731
    assert names(client.search_runs([exp_id], "status = 'FINISHED'")) == ["b"]
    assert names(client.search_runs([exp_id], "run_name = 'c'")) == ["c"]
    assert names(client.search_runs([exp_id], "status != 'RUNNING'", order_by=["run_name DESC"])) == [
        "c",
        "b",
    ]
    newest_first = names(client.search_runs([exp_id], order_by=["start_time DESC"]))
    oldest_first = names(client.search_runs([exp_id], order_by=["start_time ASC"]))
    assert sorted(newest_first) == ["a", "b", "c"] and newest_first == oldest_first[::-1]
    with pytest.raises(mlflow.exceptions.MlflowException) as exc:
        client.search_runs([exp_id], "nope = 'x'")
    assert (
        exc.value.error_code == "INVALID_PARAMETER_VALUE" and "unknown attribute 'nope'" in exc.value.message
    )


def test_ui_metric_history_bulk(rest, http):
    """MLflow's web-UI endpoint outside the protos: every point of one metric of several runs, run ids in text
    order, each run's points in time order, at most max_results in all; MLflow's refusals."""
    client = MlflowClient()
    exp_id = client.create_experiment("bulk")
    first, second = (client.create_run(exp_id).info.run_id for _ in range(2))
    for step in range(3):
        client.log_metric(first, "loss", 1.0 + step, step=step)
        client.log_metric(second, "loss", 10.0 + step, step=step)
    url = "/mltrack/mlflow/ajax-api/2.0/mlflow/metrics/get-history-bulk"
    both = http.get(url, params={"run_id": [second, first], "metric_key": "loss"})
    assert both.status_code == 200, both.text
    got = [(m["run_id"], m["step"], m["value"], m["key"]) for m in both.json()["metrics"]]
    runs = sorted([first, second])
    values = {first: 1.0, second: 10.0}
    assert got == [(r, s, values[r] + s, "loss") for r in runs for s in range(3)]
    limited = http.get(url, params={"run_id": [first], "metric_key": "loss", "max_results": "2"})
    assert [m["step"] for m in limited.json()["metrics"]] == [0, 1]
    for params, message in (
        ({"metric_key": "loss"}, "must specify at least one run_id"),
        ({"run_id": [f"id_{i}" for i in range(101)], "metric_key": "loss"}, "cannot specify more than 100"),
        ({"run_id": [first]}, "must specify a metric_key"),
    ):
        refused = http.get(url, params=params)
        assert refused.status_code == 400 and message in refused.json()["message"], refused.text
    unknown = http.get(url, params={"run_id": ["987654"], "metric_key": "loss"})  # as MLflow: no points
    assert unknown.status_code == 200 and unknown.json() == {"metrics": []}
    datasets = "/mltrack/mlflow/ajax-api/2.0/mlflow/experiments/search-datasets"
    empty = http.post(datasets, json={"experiment_ids": []})
    assert empty.status_code == 400 and "at least one experiment_id" in empty.json()["message"]
    many = http.post(datasets, json={"experiment_ids": [str(i) for i in range(21)]})
    assert many.status_code == 400 and "cannot specify more than 20" in many.json()["message"]
    wrong_type = http.post(datasets, json={"experiment_ids": "1"})
    assert wrong_type.status_code == 400 and "experiment_ids" in wrong_type.json()["message"]
    from mlflow.entities import Dataset, DatasetInput, InputTag

    tag = InputTag(key="mlflow.data.context", value="training")
    client.log_inputs(first, [DatasetInput(Dataset("ds", "dg", "local", "src"), [tag])])
    summaries = http.post(datasets, json={"experiment_ids": [exp_id]})
    assert summaries.status_code == 200, summaries.text
    assert summaries.json()["dataset_summaries"] == [
        {"experiment_id": exp_id, "name": "ds", "digest": "dg", "context": "training"}
    ]


def test_list_artifacts_endpoint(rest, http):
    """``GET /api/2.0/mlflow/artifacts/list`` (MLflow's ListArtifacts, beside the artifact proxy): the entries
    under ``path`` with paths from the run's root; a path leaving the root is MLflow's "Invalid path"."""
    mlflow.set_experiment("listing")
    with mlflow.start_run() as run:
        mlflow.log_text("hello", "notes/readme.txt")
        mlflow.log_text("{}", "config.json")
    run_id = run.info.run_id
    top = http.get(f"{API}/artifacts/list", params={"run_id": run_id})
    assert top.status_code == 200, top.text
    assert top.json()["root_uri"] == run.info.artifact_uri
    assert top.json()["files"] == [
        {"path": "config.json", "is_dir": False, "file_size": 2},
        {"path": "notes", "is_dir": True},
    ]
    notes = http.get(f"{API}/artifacts/list", params={"run_id": run_id, "path": "notes"}).json()["files"]
    assert notes == [{"path": "notes/readme.txt", "is_dir": False, "file_size": 5}]
    for bad in ("../path", "/etc", "a/../../b"):
        refused = http.get(f"{API}/artifacts/list", params={"run_id": run_id, "path": bad})
        assert refused.status_code == 400 and refused.json()["message"] == "Invalid path", refused.text
