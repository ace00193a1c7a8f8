"""Unmodified MLflow code (fluent API and MlflowClient) writes into our store through ``mltrack://``,
on SQLite and PostgreSQL (docs/mlflow.md)."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from airflow_mltrack.mlflow import mapping as m
from airflow_mltrack.store import TrackingStore


def test_fluent_run_lands_in_our_schema(mlflow_uri, tracking_url):
    mlflow.set_experiment("churn")
    with mlflow.start_run(run_name="baseline") as run:
        mlflow.log_param("lr", "0.01")
        mlflow.log_param("layers", "3")
        mlflow.log_param("note", "1e-3")
        mlflow.log_metric("val_loss", 0.5, step=1)
        mlflow.log_metric("val_loss", 0.4, step=2)
        mlflow.log_metrics({"accuracy": 0.9, "train_loss": 0.2})
        mlflow.set_tag("team", "fraud")
    store = TrackingStore.from_url(tracking_url)
    row = store.get_experiment(int(run.info.run_id))
    assert (row["name"], row["project"], row["status"]) == ("baseline", "churn", "Completed")
    # typed where the text round-trips, the text itself otherwise
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
    assert got.data.params == {"lr": "0.01", "layers": "3", "note": "1e-3"}
    assert got.data.metrics == {"val_loss": 0.4, "accuracy": 0.9, "train_loss": 0.2}
    history = MlflowClient().get_metric_history(run.info.run_id, "val_loss")
    assert [(h.step, h.value) for h in history] == [(1, 0.5), (2, 0.4)]


def test_client_experiments_and_runs(mlflow_uri):
    client = MlflowClient()
    exp_id = client.create_experiment("vision", tags={"owner": "ana"})
    assert client.get_experiment_by_name("vision").experiment_id == exp_id
    assert client.get_experiment(exp_id).tags == {"owner": "ana"}
    assert client.get_experiment_by_name("nope") is None
    assert "vision" in [e.name for e in client.search_experiments()]
    with pytest.raises(MlflowException) as exc:
        client.create_experiment("vision")
    assert exc.value.error_code == "RESOURCE_ALREADY_EXISTS"

    run = client.create_run(exp_id, run_name="r")
    client.log_batch(
        run.info.run_id,
        metrics=[Metric("loss", 1.0, 0, 0), Metric("loss", 0.5, 0, 1)],
        params=[Param("seed", "7")],
        tags=[RunTag("stage", "dev")],
    )
    client.log_param(run.info.run_id, "seed", "7")  # the same value again is fine
    client.delete_tag(run.info.run_id, "stage")
    client.set_terminated(run.info.run_id, "KILLED")
    got = client.get_run(run.info.run_id)
    assert got.info.status == "KILLED" and got.data.params == {"seed": "7"}
    assert "stage" not in got.data.tags and got.data.metrics == {"loss": 0.5}


def test_search_runs_filter_and_order(mlflow_uri):
    mlflow.set_experiment("search")
    for name, acc, lr in (("a", 0.7, "0.1"), ("b", 0.9, "0.01"), ("c", 0.8, "0.01")):
        with mlflow.start_run(run_name=name):
            mlflow.log_metric("accuracy", acc)
            mlflow.log_param("lr", lr)
    found = mlflow.search_runs(
        filter_string="params.lr = '0.01' and metrics.accuracy > 0.75",
        order_by=["metrics.accuracy ASC"],
        output_format="list",
    )
    assert [r.info.run_name for r in found] == ["c", "b"]
    client = MlflowClient()
    exp = client.get_experiment_by_name("search").experiment_id
    first = client.search_runs([exp], order_by=["attributes.run_name DESC"], max_results=2)
    second = client.search_runs(
        [exp], order_by=["attributes.run_name DESC"], max_results=2, page_token=first.token
    )
    assert [r.info.run_name for r in first] + [r.info.run_name for r in second] == ["c", "b", "a"]
    assert second.token is None
    assert client.search_runs([exp], filter_string="attributes.status = 'FINISHED'", max_results=5).to_list()


@pytest.mark.parametrize(
    "call, code",
    [
        (lambda c, r: c.get_run("999999"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c, r: c.get_run("not-a-run"), "RESOURCE_DOES_NOT_EXIST"),  # as MLflow: "Run '..' not found"
        (lambda c, r: c.get_experiment("424242"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c, r: c.log_param(r, "lr", "0.2"), "INVALID_PARAMETER_VALUE"),  # params are write-once
        (lambda c, r: c.search_runs(["1"], filter_string="metrics.acc >>> 1"), "INVALID_PARAMETER_VALUE"),
        (lambda c, r: c.delete_tag(r, "missing"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c, r: c.delete_run("999999"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c, r: c.set_tag(r, "k" * 251, "v"), "INVALID_PARAMETER_VALUE"),  # MLflow's key limit
        (  # MLflow's limits (the client splits big batches: the store is called as a REST server would)
            lambda c, r: c._tracking_client.store.log_batch(
                r, [Metric(f"m{i}", 1.0, 0, 0) for i in range(1001)], [], []
            ),
            "INVALID_PARAMETER_VALUE",
        ),
        (
            lambda c, r: c._tracking_client.store.log_batch(
                r, [], [Param(f"p{i}", "1") for i in range(101)], []
            ),
            "INVALID_PARAMETER_VALUE",
        ),
    ],
)
def test_bad_input_is_an_mlflow_error(mlflow_uri, call, code):
    client = MlflowClient()
    run = client.create_run(client.create_experiment("errors"), run_name="r")
    client.log_param(run.info.run_id, "lr", "0.1")
    with pytest.raises(MlflowException) as exc:
        call(client, run.info.run_id)
    assert exc.value.error_code == code


def test_search_error_names_the_position_in_the_users_filter(mlflow_uri):
    client = MlflowClient()
    exp = client.create_experiment("positions")
    with pytest.raises(MlflowException) as exc:
        client.search_runs([exp], filter_string="metrics.acc >>> 1")
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE" and "position 13" in exc.value.message


def test_default_experiment_and_split_tag(mlflow_uri, tracking_url):
    with mlflow.start_run() as run:  # MLflow's experiment "0": our project "Default"
        mlflow.set_tag(m.DEFAULT_SPLIT_TAG, "train")
        mlflow.log_metric("loss", 0.3)
    store = TrackingStore.from_url(tracking_url)
    row = store.get_experiment(int(run.info.run_id))
    assert row["project"] == "Default" and row["name"] == run.info.run_name
    assert [x["evaluation_set"] for x in store.latest_metrics(row["experiment_id"])] == ["train"]


@pytest.mark.parametrize(
    "name, split",
    [
        ("val_loss", "validation"),
        ("valid/acc", "validation"),
        ("validation_f1", "validation"),
        ("eval-loss", "validation"),
        ("TEST_acc", "test"),
        ("train_loss", "train"),
        ("training.loss", "train"),
        ("inference_latency", "inference"),
        ("loss", "test"),
        ("trainer_loss", "test"),  # not a known word before the separator
    ],
)
def test_split_rule(name, split):
    assert m.split_of(name) == split


@pytest.mark.parametrize("text", ["0.01", "10", "1e-3", "010", "true", "True", "nan", "adam", "1.0", ""])
def test_params_round_trip_exactly(text):
    assert m.param_text(m.param_value(text)) == text


def test_uri_names_the_connection():
    assert m.conn_id_of("mltrack://") == "mltrack_default"
    assert m.conn_id_of("mltrack://my_conn") == "my_conn"
    with pytest.raises(ValueError):
        m.conn_id_of("http://x")


def test_importing_the_package_does_not_import_mlflow():
    import subprocess
    import sys

    code = "import sys, airflow_mltrack, airflow_mltrack.mlflow, airflow_mltrack.mlflow.mapping; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_context_provider_is_registered_and_idle_outside_a_task():
    from mlflow.tracking.context.registry import _run_context_provider_registry

    from airflow_mltrack.mlflow.context import AirflowRunContext

    providers = [p for p in _run_context_provider_registry if isinstance(p, AirflowRunContext)]
    assert len(providers) == 1
    assert providers[0].in_context() is False and providers[0].tags() == {}


def test_delete_and_restore_run(mlflow_uri, tracking_url):
    """delete_run marks the experiment deleted (the row stays); search_runs and our list honour it."""
    from mlflow.entities import ViewType

    from airflow_mltrack.store.reads.experiment_list import ExperimentFilter, experiment_page

    client = MlflowClient()
    exp = client.create_experiment("lifecycle")
    kept, gone = (client.create_run(exp, run_name=n).info.run_id for n in ("kept", "gone"))
    client.delete_run(gone)
    client.delete_run(gone)  # again: no change, no error
    assert client.get_run(gone).info.lifecycle_stage == "deleted"
    assert client.get_run(kept).info.lifecycle_stage == "active"

    def names(view: int) -> list[str]:
        return sorted(r.info.run_name for r in client.search_runs([exp], run_view_type=view))

    assert names(ViewType.ACTIVE_ONLY) == ["kept"]
    assert names(ViewType.DELETED_ONLY) == ["gone"]
    assert names(ViewType.ALL) == ["gone", "kept"]
    store = TrackingStore.from_url(tracking_url)
    assert store.get_experiment(int(gone))["deleted_at"] is not None
    listed = experiment_page(store, ExperimentFilter(project="lifecycle"))
    assert [i["name"] for i in listed["items"]] == ["kept"]
    everything = experiment_page(store, ExperimentFilter(project="lifecycle", lifecycle="all"))
    assert listed["total"] == 1 and everything["total"] == 2
    with pytest.raises(MlflowException) as exc:  # nothing is logged to a deleted run
        client.log_metric(gone, "loss", 1.0)
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE" and "deleted" in exc.value.message
    assert store.latest_metrics(int(gone)) == []

    client.restore_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "active"
    assert names(ViewType.ACTIVE_ONLY) == ["gone", "kept"]
    client.log_metric(gone, "loss", 1.0)
    assert store.get_experiment(int(gone))["deleted_at"] is None


def test_tag_keys_up_to_mlflows_limit(mlflow_uri, tracking_url):
    key = "k" * 250  # MLflow's MAX_TAG_KEY_LENGTH
    with mlflow.start_run() as run:
        mlflow.set_tag(key, "v")
    assert mlflow.get_run(run.info.run_id).data.tags[key] == "v"
    store = TrackingStore.from_url(tracking_url)
    assert store.tag_values("experiment", int(run.info.run_id))[key] == "v"


def test_a_task_running_again_brings_its_deleted_run_back(mlflow_uri):
    """The same task instance (its airflow.* link tags) finds its run again: deleted, it is restored."""
    from mlflow.entities import RunTag as Tag

    client = MlflowClient()
    exp = client.create_experiment("retries")
    link = {"airflow.dag_id": "d", "airflow.run_id": "r1", "airflow.task_id": "t", "airflow.map_index": "-1"}
    tags = [Tag(k, v) for k, v in link.items()]
    store = client._tracking_client.store
    first = store.create_run(exp, "me", 0, tags, None)
    client.set_terminated(first.info.run_id, "FAILED")
    client.delete_run(first.info.run_id)
    again = store.create_run(exp, "me", 0, tags, None)
    assert again.info.run_id == first.info.run_id and again.info.run_name == "t"
    assert (again.info.lifecycle_stage, again.info.status) == ("active", "RUNNING")
