"""The adapter's newer ``AbstractStore`` methods served over MLflow's REST protocol by the generic dispatch:
run delete/restore, log-inputs/outputs, MLflow 3 logged models (and their DAG visibility), on SQLite and
PostgreSQL, with the real client against a real uvicorn server."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, LoggedModelOutput, LoggedModelStatus, ViewType
from mlflow.exceptions import MlflowException

from airflow_mltrack.store import TrackingStore
from tests.plugins.conftest import dag_reader_headers


def test_delete_and_restore_run(rest):
    client = MlflowClient()
    project = client.create_experiment("lifecycle")
    kept, dropped = (client.create_run(project, run_name=n).info.run_id for n in ("kept", "dropped"))
    client.delete_run(dropped)
    assert client.get_run(dropped).info.lifecycle_stage == "deleted"
    assert [r.info.run_name for r in client.search_runs([project])] == ["kept"]
    deleted = client.search_runs([project], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [dropped]
    assert len(client.search_runs([project], run_view_type=ViewType.ALL)) == 2
    client.restore_run(dropped)
    assert sorted(r.info.run_name for r in client.search_runs([project])) == ["dropped", "kept"]
    assert TrackingStore.from_url(rest.tracking_url).get_experiment(int(kept))["deleted_at"] is None


def test_log_inputs_and_outputs(rest):
    client = MlflowClient()
    project = client.create_experiment("io")
    run_id = client.create_run(project).info.run_id
    dataset = Dataset(name="churn-train", digest="abc123", source_type="s3", source='{"uri": "s3://b/t.csv"}')
    client.log_inputs(run_id, [DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])])
    model = client.create_logged_model(project, source_run_id=run_id, name="ext")
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=1)])
    got = client.get_run(run_id)
    assert [(d.dataset.name, d.dataset.digest) for d in got.inputs.dataset_inputs] == [
        ("churn-train", "abc123")
    ]
    assert [o.model_id for o in got.outputs.model_outputs] == [model.model_id]
    row = TrackingStore.from_url(rest.tracking_url).get_experiment(int(run_id))
    assert (row["dataset_name"], row["dataset_version"]) == ("churn-train", "abc123")


def test_logged_model_lifecycle(rest):
    mlflow.set_experiment("models")
    with mlflow.start_run(run_name="fit") as run:
        model = mlflow.initialize_logged_model(name="ridge", params={"depth": "3"}, tags={"team": "ml"})
    run_id = run.info.run_id
    assert model.model_id.startswith("m-") and model.source_run_id == run_id
    assert model.artifact_location == (
        f"mlflow-artifacts:/{run.info.experiment_id}/{run_id}/artifacts/models/{model.model_id}"
    )
    client = MlflowClient()
    client.log_model_params(model.model_id, {"solver": "auto"})
    client.set_logged_model_tags(model.model_id, {"stage": "dev"})
    client.delete_logged_model_tag(model.model_id, "stage")
    assert (
        mlflow.finalize_logged_model(model.model_id, LoggedModelStatus.READY).status
        == LoggedModelStatus.READY
    )
    got = mlflow.get_logged_model(model.model_id)
    assert got.params == {"depth": "3", "solver": "auto"}
    assert got.tags["team"] == "ml" and "stage" not in got.tags
    found = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert [m.model_id for m in found] == [model.model_id]
    client.delete_logged_model(model.model_id)
    with pytest.raises(MlflowException) as exc:
        mlflow.get_logged_model(model.model_id)
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_logged_model_of_an_unreadable_dag_is_hidden(rest, monkeypatch):
    store = TrackingStore.from_url(rest.tracking_url)
    model_row = store.register_model("vision", "resnet", "PyTorch")
    data = store.register_dataset("vision", "cifar", "Image")
    hidden = store.create_experiment(
        "vision", "h", model_row, data, dag_id="hidden_dag", run_id="r", task_id="t"
    )
    store.set_status(hidden, "Running")
    project = str(store.get_experiment(hidden)["project_id"])
    model = MlflowClient().create_logged_model(project, source_run_id=str(hidden), name="secret")

    headers = dag_reader_headers(monkeypatch, "open_dag")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", headers["Authorization"].removeprefix("Bearer "))
    client = MlflowClient()
    for call in (
        lambda: client.get_logged_model(model.model_id),
        lambda: client.create_logged_model(project, source_run_id=str(hidden), name="more"),
    ):
        with pytest.raises(MlflowException) as exc:
            call()
        assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST", exc.value.message
    with pytest.raises(MlflowException) as exc:  # the client words this one itself
        client.set_logged_model_tags(model.model_id, {"k": "v"})
    assert "may not have access" in exc.value.message
    assert "k" not in store.tag_values("model", int(model.model_id[2:]))
    with pytest.raises(MlflowException) as exc:  # the viewer may not write models outside Airflow either
        client.create_logged_model(project, name="mine")
    assert exc.value.error_code == "PERMISSION_DENIED"
