"""MLflow 3 logged models through ``mltrack://`` with the real client, on SQLite and PostgreSQL: they are rows
of our ``models`` (id ``m-<model_id>``), linked to the run that logged them (docs/mlflow.md)."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

from airflow_mltrack.store import TrackingStore
from airflow_mltrack.vocabulary import PLACEHOLDER_FRAMEWORK


def test_logged_model_lifecycle(mlflow_uri, tracking_url):
    mlflow.set_experiment("models")
    with mlflow.start_run(run_name="fit") as run:
        mlflow.log_param("alpha", "0.5")
        model = mlflow.initialize_logged_model(name="ridge", params={"depth": "3"}, tags={"team": "ml"})
    run_id = run.info.run_id
    assert model.model_id.startswith("m-") and model.status == LoggedModelStatus.PENDING
    assert model.source_run_id == run_id and model.name == "ridge"
    assert model.artifact_location.endswith(f"/{run_id}/artifacts/models/{model.model_id}")

    store = TrackingStore.from_url(tracking_url)
    row = store.get_model(int(model.model_id[2:]))
    assert (row["name"], row["version"], row["status"]) == ("ridge", model.model_id, "Pending")
    assert row["source_experiment_id"] == int(run_id) and row["params"] == {"depth": "3"}
    assert store.tag_values("model", row["model_id"])["team"] == "ml"

    client = MlflowClient()
    client.log_model_params(model.model_id, {"solver": "auto"})
    client.set_logged_model_tags(model.model_id, {"stage": "dev", "team": "ds"})
    client.delete_logged_model_tag(model.model_id, "stage")
    done = mlflow.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    assert done.status == LoggedModelStatus.READY
    got = mlflow.get_logged_model(model.model_id)
    assert got.params == {"depth": "3", "solver": "auto"}
    assert got.tags["team"] == "ds" and "stage" not in got.tags
    assert got.experiment_id == run.info.experiment_id
    assert store.get_model(row["model_id"])["status"] == "Ready"

    client.delete_logged_model(model.model_id)
    assert store.get_model(row["model_id"])["deleted_at"] is not None  # soft: the row stays
    with pytest.raises(MlflowException) as exc:
        mlflow.get_logged_model(model.model_id)
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client._tracking_client.store.get_logged_model(model.model_id, allow_deleted=True).name == "ridge"
    assert mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list") == []


def test_log_model_moves_the_runs_model_and_links_metrics(mlflow_uri, tracking_url):
    """A model logged in a run becomes that experiment's model (the placeholder goes); metrics logged with
    its model_id come back with get_logged_model."""
    mlflow.set_experiment("outputs")
    with mlflow.start_run() as run:
        model = mlflow.create_external_model(name="ext")
        mlflow.log_outputs([mlflow.entities.LoggedModelOutput(model.model_id, step=2)])
        mlflow.log_metric("val_loss", 0.25, step=2, model_id=model.model_id)
        mlflow.log_metric("other", 1.0)
    store = TrackingStore.from_url(tracking_url)
    experiment = store.get_experiment(int(run.info.run_id))
    assert experiment["model_id"] == int(model.model_id[2:]) and experiment["model_name"] == "ext"
    got = mlflow.get_run(run.info.run_id)
    assert [(o.model_id, o.step) for o in got.outputs.model_outputs] == [(model.model_id, 2)]
    assert not any(k.startswith("mltrack.model") for k in got.data.tags)  # kept as RunOutputs, not tags
    metrics = mlflow.get_logged_model(model.model_id).metrics
    assert [(x.key, x.value, x.step, x.run_id) for x in metrics] == [("val_loss", 0.25, 2, run.info.run_id)]
    placeholders = [r for r in store.list_models("outputs") if r["framework"] == PLACEHOLDER_FRAMEWORK]
    assert len(placeholders) == 1  # still there (it named the run before), no longer the run's model


def test_search_logged_models_filters(mlflow_uri):
    mlflow.set_experiment("search-models")
    with mlflow.start_run() as run:
        a = mlflow.initialize_logged_model(name="a", model_type="agent")
        b = mlflow.initialize_logged_model(name="b")
        c = mlflow.initialize_logged_model(name="a")
    mlflow.finalize_logged_model(b.model_id, LoggedModelStatus.READY)
    mlflow.finalize_logged_model(c.model_id, LoggedModelStatus.FAILED)
    exp = [run.info.experiment_id]

    def ids(**kwargs) -> list[str]:
        return [
            x.model_id
            for x in mlflow.search_logged_models(experiment_ids=exp, output_format="list", **kwargs)
        ]

    assert ids() == [c.model_id, b.model_id, a.model_id]  # newest first; no placeholder models
    assert ids(filter_string="name = 'a'") == [c.model_id, a.model_id]
    assert ids(filter_string="name = 'a' AND status = 'FAILED'") == [c.model_id]
    assert ids(filter_string="status != 'PENDING'") == [c.model_id, b.model_id]
    assert ids(filter_string="model_type = 'agent'") == [a.model_id]
    assert ids(filter_string=f"source_run_id = '{run.info.run_id}'") == [c.model_id, b.model_id, a.model_id]
    client = MlflowClient()
    first = client.search_logged_models(exp, max_results=2)
    second = client.search_logged_models(exp, max_results=2, page_token=first.token)
    assert [x.model_id for x in first] + [x.model_id for x in second] == [c.model_id, b.model_id, a.model_id]
    assert second.token is None


@pytest.mark.parametrize(
    "call, code",
    [
        (lambda c, e, r, mid: c.get_logged_model("m-999999"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c, e, r, mid: c.get_logged_model("abc"), "INVALID_PARAMETER_VALUE"),
        (
            lambda c, e, r, mid: c.search_logged_models([e], filter_string="metrics.x > 1"),
            "INVALID_PARAMETER_VALUE",
        ),
        (
            lambda c, e, r, mid: c.search_logged_models([e], filter_string="status = 'DONE'"),
            "INVALID_PARAMETER_VALUE",
        ),
        (
            lambda c, e, r, mid: c.search_logged_models([e], datasets=[{"dataset_digest": "d"}]),
            "INVALID_PARAMETER_VALUE",
        ),
        (lambda c, e, r, mid: c.delete_logged_model_tag(mid, "missing"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c, e, r, mid: c.log_metric(r, "x", 1.0, model_id="m-999999"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c, e, r, mid: c.set_logged_model_tags(mid, {"k" * 251: "v"}), "INVALID_PARAMETER_VALUE"),
        (lambda c, e, r, mid: c.finalize_logged_model("m-999999", "READY"), "RESOURCE_DOES_NOT_EXIST"),
    ],
)
def test_logged_model_errors(mlflow_uri, tracking_url, call, code):
    client = MlflowClient()
    exp = client.create_experiment("model-errors")
    run = client.create_run(exp, run_name="r")
    model = client._tracking_client.store.create_logged_model(exp, "m", source_run_id=run.info.run_id)
    with pytest.raises(MlflowException) as exc:
        call(client, exp, run.info.run_id, model.model_id)
    assert exc.value.error_code == code
    store = TrackingStore.from_url(tracking_url)
    assert store.latest_metrics(int(run.info.run_id)) == []  # nothing partly written


def test_a_failed_log_model_is_failed(mlflow_uri, tracking_url):
    """MLflow marks a model FAILED when saving it raises: the status lands in our row."""
    mlflow.set_experiment("failing")
    with mlflow.start_run():
        with (
            pytest.raises(RuntimeError),
            mlflow.tracking.fluent._use_logged_model(mlflow.initialize_logged_model(name="broken")) as model,
        ):
            raise RuntimeError("disk full")
    row = TrackingStore.from_url(tracking_url).get_model(int(model.model_id[2:]))
    assert row["status"] == "Failed"
