"""What MLflow's own REST tests (benchmarks/mlflow_compat.py) expect of ``mltrack://``, with the real client on
SQLite and PostgreSQL: logged models without a run, the client's timestamps, the Default experiment, deleted /
restored / renamed experiments, experiment tags, unknown runs, and which logged models a reader may list."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset as MlflowDataset
from mlflow.entities import (
    DatasetInput,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from airflow_mltrack.store import TrackingStore

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def test_logged_model_without_a_run(mlflow_uri, tracking_url, tmp_path, monkeypatch):
    """``source_run_id`` None (the REST layer turns the client's "" into None): a model of the project; an id
    that is not a run of ours is kept as text; metrics logged with the model come back exactly."""
    client = MlflowClient()
    exp = client.create_experiment("no-run-models")
    model = client.create_logged_model(exp, name="free", params={"p": "v"}, tags={"t": "x"}, model_type="LLM")
    assert model.source_run_id is None and model.experiment_id == exp
    assert (model.params, model.tags, model.model_type) == ({"p": "v"}, {"t": "x"}, "LLM")
    assert model.artifact_location == f"mltrack://mltrack_default/{exp}/models/{model.model_id}/artifacts"
    monkeypatch.setenv("AIRFLOW__MLTRACK__ARTIFACT_ROOT", f"file://{tmp_path}")
    get_artifact_repository(model.artifact_location).log_artifact(__file__)  # files of the model's own
    owned = TrackingStore.from_url(tracking_url).list_artifacts(None, model_id=int(model.model_id[2:]))
    assert [r["path"] for r in owned] == [Path(__file__).name]
    for status in (LoggedModelStatus.READY, LoggedModelStatus.FAILED):
        assert client.finalize_logged_model(model.model_id, status).status == status
    foreign = client.create_logged_model(exp, source_run_id="123")
    assert client.get_logged_model(foreign.model_id).source_run_id == "123"
    assert client.get_logged_model(foreign.model_id).tags == {}  # the hidden tag is not listed

    run = client.create_run(exp)
    run_id = run.info.run_id
    client.log_metric(
        run_id, "metric", 0.5, timestamp=123456789, step=1, dataset_name="ds", dataset_digest="dg",
        model_id=model.model_id,
    )  # fmt: skip
    assert client.get_logged_model(model.model_id).metrics == [
        Metric("metric", 0.5, 123456789, 1, model_id=model.model_id, dataset_name="ds",
               dataset_digest="dg", run_id=run_id)
    ]  # fmt: skip
    client.log_inputs(run_id, models=[LoggedModelInput(model.model_id)])
    client.log_outputs(run_id, [LoggedModelOutput(foreign.model_id, 1)])
    got = client.get_run(run_id)
    assert [x.model_id for x in got.inputs.model_inputs] == [model.model_id]
    assert got.outputs.model_outputs == [LoggedModelOutput(foreign.model_id, 1)]

    found = client.search_logged_models([exp])
    assert [x.model_id for x in found] == [foreign.model_id, model.model_id]
    on_ds = client.search_logged_models([exp], datasets=[{"dataset_name": "ds", "dataset_digest": "dg"}])
    assert [x.model_id for x in on_ds] == [model.model_id]
    assert client.search_logged_models([exp], datasets=[{"dataset_name": "ds", "dataset_digest": "no"}]) == []
    row = TrackingStore.from_url(tracking_url).get_model(int(model.model_id[2:]))
    assert row["source_experiment_id"] is None and row["status"] == "Failed"


def test_client_timestamps_are_kept(mlflow_uri, tracking_url):
    """A metric's timestamp is its recorded_at; create_run's start_time and set_terminated's end_time are
    the run's; an end before the start is refused with nothing written."""
    client = MlflowClient()
    exp = client.create_experiment("times")
    run = client.create_run(exp, start_time=456, run_name="r")
    run_id = run.info.run_id
    assert run.info.start_time == 456 and client.get_run(run_id).info.start_time == 456
    client.log_metric(run_id, "metric", 123.456, timestamp=789, step=2)
    client.log_metric(run_id, "stepless", 1.5, timestamp=321)
    client.log_batch(run_id, metrics=[Metric("batch", 2.0, 1000 + i, i) for i in range(3)])
    assert [(x.timestamp, x.step) for x in client.get_metric_history(run_id, "metric")] == [(789, 2)]
    assert [x.timestamp for x in client.get_metric_history(run_id, "stepless")] == [321]
    assert [x.timestamp for x in client.get_metric_history(run_id, "batch")] == [1000, 1001, 1002]
    store = TrackingStore.from_url(tracking_url)
    point = store.metric_history(int(run_id), "metric")[0]
    assert _utc(point["recorded_at"]) == EPOCH + dt.timedelta(milliseconds=789)
    assert _utc(store.get_experiment(int(run_id))["start_time"]) == EPOCH + dt.timedelta(milliseconds=456)

    with pytest.raises(MlflowException, match="before the run's start_time") as exc:
        client.set_terminated(run_id, "FINISHED", end_time=455)
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_run(run_id).info.status == "RUNNING"  # nothing written
    client.set_terminated(run_id, "FINISHED", end_time=99_000)
    info = client.get_run(run_id).info
    assert (info.status, info.end_time) == ("FINISHED", 99_000)

    # search orders by start_time, newest first, as MLflow does
    old = client.create_run(exp, start_time=100, run_name="old").info.run_id
    new = client.create_run(exp, start_time=10**12, run_name="new").info.run_id
    assert [r.info.run_id for r in client.search_runs([exp])] == [new, run_id, old]


@pytest.mark.parametrize("points", [3, 600])  # 600: PostgreSQL's COPY path, then its staged merge
def test_metric_times_on_every_write_path(mlflow_uri, tracking_url, points):
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("paths")).info.run_id
    for shift in (0, 5000):  # the second batch overwrites every step (the merge path)
        client.log_batch(run_id, metrics=[Metric("loss", float(i), 7 + shift + i, i) for i in range(points)])
        history = client.get_metric_history(run_id, "loss")
        assert [x.timestamp for x in history] == [7 + shift + i for i in range(points)]
        assert [x.value for x in history] == [float(i) for i in range(points)]


def test_default_experiment_and_mlflow_search(mlflow_uri):
    """An empty store lists the Default experiment; filter, order and pages are MLflow's."""
    client = MlflowClient()
    assert [e.name for e in client.search_experiments()] == ["Default"]
    for name, tags in (("a", {"key": "value"}), ("ab", {"key": "vaLue"}), ("Abc", None)):
        client.create_experiment(name, tags=tags)
    names = lambda **kw: [e.name for e in client.search_experiments(**kw)]  # noqa: E731
    assert names() == ["Abc", "ab", "a", "Default"]
    assert names(filter_string="attribute.name != 'a'") == ["Abc", "ab", "Default"]
    assert names(filter_string="name LIKE 'a%'") == ["ab", "a"]
    assert names(filter_string="tag.key ILIKE '%alu%'") == ["ab", "a"]
    assert names(order_by=["name DESC"]) == ["ab", "a", "Default", "Abc"]
    first = client.search_experiments(max_results=2)
    assert [e.name for e in first] == ["Abc", "ab"]
    assert [e.name for e in client.search_experiments(page_token=first.token)] == ["a", "Default"]
    with pytest.raises(MlflowException) as exc:
        client.search_experiments(filter_string="attribute.nope = 'x'")
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"


def test_delete_restore_and_rename_experiment(mlflow_uri, tracking_url):
    client = MlflowClient()
    exp = client.create_experiment("Deleterious")
    kept = client.create_run(exp, run_name="kept").info.run_id
    gone = client.create_run(exp, run_name="gone").info.run_id
    client.delete_run(gone)  # deleted on its own before: stays deleted after the restore
    client.delete_experiment(exp)
    assert client.get_experiment(exp).lifecycle_stage == "deleted"
    assert client.get_experiment_by_name("Deleterious").lifecycle_stage == "deleted"
    assert client.get_run(kept).info.lifecycle_stage == "deleted"  # its runs with it, as MLflow
    assert {e.name for e in client.search_experiments()} == {"Default"}
    assert {e.name for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)} == {"Deleterious"}
    assert {e.name for e in client.search_experiments(view_type=ViewType.ALL)} == {"Default", "Deleterious"}
    for call, code in (
        (lambda: client.create_run(exp), "INVALID_PARAMETER_VALUE"),
        (lambda: client.set_experiment_tag(exp, "k", "v"), "INVALID_PARAMETER_VALUE"),
        (lambda: client.create_experiment("Deleterious"), "RESOURCE_ALREADY_EXISTS"),
        (lambda: client.delete_experiment(exp), "RESOURCE_DOES_NOT_EXIST"),
        (lambda: client.rename_experiment(exp, "x"), "INVALID_STATE"),
    ):
        with pytest.raises(MlflowException) as exc:
            call()
        assert exc.value.error_code == code
    client.restore_experiment(exp)
    assert client.get_experiment(exp).lifecycle_stage == "active"
    assert client.get_run(kept).info.lifecycle_stage == "active"
    assert client.get_run(gone).info.lifecycle_stage == "deleted"

    client.rename_experiment(exp, "GoodName")
    assert client.get_experiment(exp).name == "GoodName"
    assert TrackingStore.from_url(tracking_url).get_project(int(exp))["name"] == "GoodName"
    other = client.create_experiment("Other")
    default = client.get_experiment_by_name("Default").experiment_id
    for call, code in (
        (lambda: client.rename_experiment(other, "GoodName"), "RESOURCE_ALREADY_EXISTS"),
        (lambda: client.rename_experiment(default, "x"), "INVALID_PARAMETER_VALUE"),
        (lambda: client.delete_experiment("0"), "INVALID_PARAMETER_VALUE"),
        (lambda: client.restore_experiment(other), "RESOURCE_DOES_NOT_EXIST"),
        (lambda: client.get_experiment("424242"), "RESOURCE_DOES_NOT_EXIST"),
    ):
        with pytest.raises(MlflowException) as exc:
            call()
        assert exc.value.error_code == code
    assert client.get_experiment(other).name == "Other"


def test_experiment_tags_and_artifact_location(mlflow_uri):
    client = MlflowClient()
    exp = client.create_experiment("tagged", artifact_location="s3://bucket/elsewhere", tags={"k1": "v1"})
    got = client.get_experiment(exp)
    assert got.tags == {"k1": "v1"}  # the location is not kept (lossy: our storage decides where files go)
    assert got.artifact_location != "s3://bucket/elsewhere"
    client.set_experiment_tag(exp, "dataset", "imagenet1K")
    client.set_experiment_tag(exp, "dataset", "birdbike")
    client.set_experiment_tag(exp, "empty", "")
    client.set_experiment_tag(exp, "multi", "a\nb")
    assert client.get_experiment(exp).tags == {
        "k1": "v1",
        "dataset": "birdbike",
        "empty": "",
        "multi": "a\nb",
    }
    client.delete_experiment_tag(exp, "dataset")
    assert "dataset" not in client.get_experiment(exp).tags
    with pytest.raises(MlflowException, match="No tag with name: dataset") as exc:
        client.delete_experiment_tag(exp, "dataset")
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as exc:
        client.set_experiment_tag(exp, "k" * 251, "v")
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"


def test_a_run_that_is_not_ours_is_not_found(mlflow_uri):
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("tags")).info.run_id
    client.set_tag(run_id, "taggity", "do-dah")
    for missing in ("fake_run_id", "999999"):
        with pytest.raises(MlflowException, match=f"Run '{missing}' not found") as exc:
            client.delete_tag(missing, "taggity")
        assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException, match="No tag with name: fakeTag"):
        client.delete_tag(run_id, "fakeTag")
    client.delete_run(run_id)
    with pytest.raises(MlflowException, match=f"The run {run_id} must be in"):
        client.delete_tag(run_id, "taggity")
    assert client.get_run(run_id).data.tags["taggity"] == "do-dah"


def test_search_logged_models_hides_models_of_unreadable_dags(mlflow_uri):
    client = MlflowClient()
    exp = client.create_experiment("visibility")

    def run_of(dag_id: str) -> str:
        tags = {"airflow.dag_id": dag_id, "airflow.run_id": "r1", "airflow.task_id": "t"}
        return client.create_run(exp, tags=tags, run_name=dag_id).info.run_id

    mine = client.create_logged_model(exp, name="mine", source_run_id=run_of("dag_a"))
    theirs = client.create_logged_model(exp, name="theirs", source_run_id=run_of("dag_b"))
    free = client.create_logged_model(exp, name="free")
    adapter = client._tracking_client.store
    ids = lambda: [x.model_id for x in client.search_logged_models([exp])]  # noqa: E731
    assert ids() == [free.model_id, theirs.model_id, mine.model_id]
    adapter.visible_dag_ids = {"dag_a"}
    try:
        assert ids() == [free.model_id, mine.model_id]
        adapter.visible_dag_ids = set()
        assert ids() == [free.model_id]
    finally:
        adapter.visible_dag_ids = None


def test_inputs_with_a_model_without_a_run(mlflow_uri):
    client = MlflowClient()
    exp = client.create_experiment("log inputs test")
    run_id = client.create_run(exp).info.run_id
    model = client.create_logged_model(experiment_id=exp)
    dataset = MlflowDataset(name="name1", digest="digest1", source_type="source_type1", source="source1")
    client.log_inputs(run_id, models=[LoggedModelInput(model_id=model.model_id)],
                      datasets=[DatasetInput(dataset=dataset)])  # fmt: skip
    got = client.get_run(run_id).inputs
    assert len(got.model_inputs) == 1 and [d.dataset.name for d in got.dataset_inputs] == ["name1"]
