"""The unmodified MLflow client (fluent API and ``MlflowClient``) against the ML Tracking app's MLflow REST
protocol (``/mltrack/mlflow``), served by a real uvicorn server, on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from airflow_mltrack.store import TrackingStore


def _code(exc: pytest.ExceptionInfo[MlflowException]) -> str:
    return exc.value.error_code


def test_fluent_run_lands_in_our_schema(rest):
    mlflow.set_experiment("churn")  # get-by-name answers RESOURCE_DOES_NOT_EXIST, then create
    with mlflow.start_run(run_name="baseline") as run:
        mlflow.log_param("lr", "0.01")
        mlflow.log_params({"layers": "3", "note": "1e-3"})
        mlflow.log_metric("val_loss", 0.5, step=1)
        mlflow.log_metric("val_loss", 0.4, step=2)
        mlflow.log_metrics({"accuracy": 0.9, "train_loss": 0.2})
        mlflow.set_tag("team", "fraud")
    store = TrackingStore.from_url(rest.tracking_url)
    row = store.get_experiment(int(run.info.run_id))
    assert (row["name"], row["project"], row["status"]) == ("baseline", "churn", "Completed")
    assert row["hyperparameters"] == {"lr": 0.01, "layers": 3, "note": "1e-3"}
    splits = {
        (x["name"], x["evaluation_set"]): x["value"] for x in store.latest_metrics(row["experiment_id"])
    }
    assert splits == {
        ("val_loss", "validation"): 0.4,
        ("accuracy", "test"): 0.9,
        ("train_loss", "train"): 0.2,
    }
    assert store.tag_values("experiment", row["experiment_id"])["team"] == "fraud"

    got = mlflow.get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "baseline"
    assert got.info.experiment_id == str(row["project_id"])
    assert got.info.artifact_uri == f"mlflow-artifacts:/{row['project_id']}/{run.info.run_id}/artifacts"
    assert got.data.params == {"lr": "0.01", "layers": "3", "note": "1e-3"}
    assert got.data.metrics == {"val_loss": 0.4, "accuracy": 0.9, "train_loss": 0.2}
    assert got.data.tags["team"] == "fraud"
    history = MlflowClient().get_metric_history(run.info.run_id, "val_loss")
    assert [(h.step, h.value) for h in history] == [(1, 0.5), (2, 0.4)]


def test_client_experiments(rest):
    client = MlflowClient()
    exp_id = client.create_experiment("vision", tags={"owner": "ana"})
    assert client.get_experiment_by_name("vision").experiment_id == exp_id
    got = client.get_experiment(exp_id)
    assert (got.name, got.tags) == ("vision", {"owner": "ana"})
    assert got.artifact_location == f"mlflow-artifacts:/{exp_id}"
    assert client.get_experiment_by_name("nope") is None
    client.create_experiment("audio")
    assert {"vision", "audio"} <= {e.name for e in client.search_experiments()}
    page = client.search_experiments(max_results=1)
    assert len(page) == 1 and page.token
    rest_of_them = client.search_experiments(max_results=10, page_token=page.token)
    assert {e.name for e in page} | {e.name for e in rest_of_them} == {"vision", "audio", "Default"}
    with pytest.raises(MlflowException) as exc:
        client.create_experiment("vision")
    assert _code(exc) == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException) as exc:
        client.get_experiment("987654")
    assert _code(exc) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as exc:
        client.rename_experiment(exp_id, "audio")  # project names are unique
    assert _code(exc) == "RESOURCE_ALREADY_EXISTS"


def test_client_runs_log_and_read(rest):
    client = MlflowClient()
    exp_id = client.create_experiment("runs")
    run = client.create_run(exp_id, run_name="r", tags={"stage": "dev"})
    run_id = run.info.run_id
    assert run.info.status == "RUNNING" and run.info.run_name == "r"
    client.log_batch(
        run_id,
        metrics=[Metric("loss", 1.0, 0, 0), Metric("loss", 0.5, 0, 1)],
        params=[Param("seed", "7")],
        tags=[RunTag("owner", "ana")],
    )
    client.log_param(run_id, "seed", "7")  # the same value again is fine
    with pytest.raises(MlflowException) as exc:
        client.log_param(run_id, "seed", "8")
    assert (
        _code(exc) == "INVALID_PARAMETER_VALUE"
        and "Changing param values is not allowed" in exc.value.message
    )
    client.log_metric(run_id, "f1", 0.75, step=3)
    client.log_metric(run_id, "diverged", float("nan"))
    client.set_tag(run_id, "note", "hello")
    client.delete_tag(run_id, "stage")
    with pytest.raises(MlflowException) as exc:
        client.delete_tag(run_id, "stage")
    assert _code(exc) == "RESOURCE_DOES_NOT_EXIST"
    client.update_run(run_id, name="renamed")
    client.set_terminated(run_id, "KILLED")
    got = client.get_run(run_id)
    assert got.info.status == "KILLED" and got.info.run_name == "renamed"
    assert got.data.params == {"seed": "7"}
    assert math.isnan(got.data.metrics.pop("diverged"))
    assert got.data.metrics == {"loss": 0.5, "f1": 0.75}
    assert {"owner": "ana", "note": "hello"}.items() <= got.data.tags.items() and "stage" not in got.data.tags
    history = client.get_metric_history(run_id, "loss")
    assert [(h.step, h.value) for h in history] == [(0, 1.0), (1, 0.5)]
    with pytest.raises(MlflowException) as exc:
        client.get_run("999999")
    assert _code(exc) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as exc:
        client.log_metric(run_id, "late", 1.0)  # a KILLED run is not active
    assert _code(exc) == "INVALID_PARAMETER_VALUE"


def test_log_batch_limits_write_nothing(rest):
    """``MlflowClient.log_batch`` splits big batches itself; its ``RestStore`` sends one request."""
    from mlflow.tracking._tracking_service.utils import _get_store

    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("limits")).info.run_id
    store = _get_store()
    with pytest.raises(MlflowException) as exc:
        store.log_batch(run_id, metrics=[Metric(f"m{i}", 1.0, 0, 0) for i in range(1001)], params=[], tags=[])
    assert _code(exc) == "INVALID_PARAMETER_VALUE" and "1000" in exc.value.message
    with pytest.raises(MlflowException) as exc:
        store.log_batch(run_id, metrics=[], params=[Param(f"p{i}", "1") for i in range(101)], tags=[])
    assert _code(exc) == "INVALID_PARAMETER_VALUE" and "100" in exc.value.message
    with pytest.raises(MlflowException) as exc:
        store.log_batch(
            run_id,
            metrics=[Metric("ok", 1.0, 0, 0)],
            params=[Param(f"p{i}", "1") for i in range(60)],
            tags=[RunTag(f"t{i}", "1") for i in range(41)],
        )
    assert _code(exc) == "INVALID_PARAMETER_VALUE"
    got = client.get_run(run_id)
    assert got.data.metrics == {} and got.data.params == {}


def test_search_runs_filter_order_and_pages(rest):
    mlflow.set_experiment("search")
    ids = {}
    for name, acc, lr in (("a", 0.7, "0.1"), ("b", 0.9, "0.01"), ("c", 0.8, "0.01")):
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_metric("accuracy", acc)
            mlflow.log_param("lr", lr)
        ids[name] = run.info.run_id
    exp_id = mlflow.get_experiment_by_name("search").experiment_id
    client = MlflowClient()
    found = client.search_runs([exp_id], "params.lr = '0.01'", order_by=["metrics.accuracy DESC"])
    assert [r.info.run_name for r in found] == ["b", "c"]
    found = client.search_runs([exp_id], "metrics.accuracy > 0.75", order_by=["metrics.accuracy ASC"])
    assert [r.info.run_name for r in found] == ["c", "b"]
    first = client.search_runs([exp_id], order_by=["metrics.accuracy DESC"], max_results=2)
    assert [r.info.run_name for r in first] == ["b", "c"] and first.token
    second = client.search_runs(
        [exp_id], order_by=["metrics.accuracy DESC"], max_results=2, page_token=first.token
    )
    assert [r.info.run_name for r in second] == ["a"] and not second.token
    frame = mlflow.search_runs(experiment_names=["search"], order_by=["metrics.accuracy DESC"])
    assert list(frame["tags.mlflow.runName"]) == ["b", "c", "a"]
    with pytest.raises(MlflowException) as exc:
        client.search_runs([exp_id], "metrics.accuracy >>> 1")
    assert _code(exc) == "INVALID_PARAMETER_VALUE"
    assert client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY) == []


def test_get_metric_history_paged_and_bulk_interval(rest):
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("history")).info.run_id
    client.log_batch(run_id, metrics=[Metric("val_loss", 1.0 / (s + 1), 0, s) for s in range(10)])
    history = client.get_metric_history(run_id, "val_loss")
    assert [h.step for h in history] == list(range(10))
    assert math.isclose(history[-1].value, 0.1)
    from mlflow.tracking._tracking_service.utils import _get_store

    store = _get_store()
    page = store.get_metric_history(run_id, "val_loss", max_results=4)
    assert [h.step for h in page] == [0, 1, 2, 3] and page.token
    bulk = store.get_metric_history_bulk_interval(
        [run_id], "val_loss", max_results=5, start_step=2, end_step=8
    )
    steps = [x.step for x in bulk]
    assert steps[0] == 2 and steps[-1] == 8 and len(steps) <= 7
    assert {x.run_id for x in bulk} == {run_id}
