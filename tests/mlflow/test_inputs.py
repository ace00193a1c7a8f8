"""MLflow datasets (log-inputs) through ``mltrack://`` with the real client, on SQLite and PostgreSQL: each is
one of our ``datasets``, the experiment's dataset moves off the placeholder (docs/mlflow.md)."""

from __future__ import annotations

import mlflow
import mlflow.data
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, LoggedModelInput
from mlflow.exceptions import MlflowException

from airflow_mltrack.store import TrackingStore
from airflow_mltrack.vocabulary import PLACEHOLDER_DATASET


def test_datasets_land_in_our_catalog(mlflow_uri, tracking_url):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    train = mlflow.data.from_pandas(frame, source="s3://bucket/train.csv", name="churn-train", targets="y")
    evaluation = mlflow.data.from_numpy(np.arange(8).reshape(4, 2), name="holdout")
    mlflow.set_experiment("inputs")
    with mlflow.start_run() as run:
        mlflow.log_input(evaluation, context="eval")
        store = TrackingStore.from_url(tracking_url)
        first = store.get_experiment(int(run.info.run_id))
        assert first["dataset_name"] == "holdout"  # the first dataset replaces the placeholder
        mlflow.log_input(train, context="training", tags={"split": "2024"})
        mlflow.log_input(evaluation, context="eval")  # again: no second entry
    row = store.get_experiment(int(run.info.run_id))
    assert (row["dataset_name"], row["dataset_version"]) == ("churn-train", train.digest)  # training wins
    dataset = store.get_dataset(row["dataset_id"])
    assert (dataset["source_url"], dataset["num_records"], dataset["data_type"]) == (
        "s3://bucket/train.csv",
        3,
        "Tabular",
    )
    assert store.tag_values("dataset", row["dataset_id"])["mlflow.source_type"] == "s3"
    holdout = store.get_dataset(first["dataset_id"])
    assert (holdout["num_records"], holdout["data_type"], holdout["version"]) == (
        4,
        "Other",
        evaluation.digest,
    )

    got = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert [(d.dataset.name, d.dataset.digest) for d in got] == [
        ("holdout", evaluation.digest),
        ("churn-train", train.digest),
    ]
    assert {t.key: t.value for t in got[1].tags} == {"mlflow.data.context": "training", "split": "2024"}
    assert got[1].dataset.source_type == "s3" and got[1].dataset.schema == train._to_mlflow_entity().schema
    assert got[1].dataset.profile == train._to_mlflow_entity().profile
    names = {d["name"] for d in store.list_datasets("inputs")}
    assert names == {"churn-train", "holdout", PLACEHOLDER_DATASET}


def test_model_inputs_and_an_operators_dataset(mlflow_uri, tracking_url):
    """A model given as input comes back in RunInputs; an experiment written by our own API shows its real
    dataset to MLflow readers."""
    store = TrackingStore.from_url(tracking_url)
    dataset = store.register_dataset("ops", "customers", "Tabular", version="2.0", source_url="s3://c")
    model = store.register_model("ops", "mlp", "torch")
    experiment = store.create_experiment("ops", "by-operator", model, dataset, status="Running")
    client = MlflowClient()
    run = client.get_run(str(experiment))
    assert [(d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs] == [("customers", "2.0")]

    with mlflow.start_run(experiment_id=run.info.experiment_id) as evaluating:
        logged = mlflow.initialize_logged_model(name="candidate")
    client.log_inputs(evaluating.info.run_id, models=[LoggedModelInput(logged.model_id)])
    client.log_inputs(evaluating.info.run_id, models=[LoggedModelInput(logged.model_id)])
    inputs = client.get_run(evaluating.info.run_id).inputs
    assert [x.model_id for x in inputs.model_inputs] == [logged.model_id]


@pytest.mark.parametrize(
    "datasets, models, code",
    [
        ([DatasetInput(Dataset("d" * 256, "abc", "code", "{}"))], None, "INVALID_PARAMETER_VALUE"),
        (None, [LoggedModelInput("m-999999")], "RESOURCE_DOES_NOT_EXIST"),
        (None, [LoggedModelInput("model-1")], "INVALID_PARAMETER_VALUE"),
    ],
)
def test_bad_inputs_are_mlflow_errors(mlflow_uri, tracking_url, datasets, models, code):
    client = MlflowClient()
    run = client.create_run(client.create_experiment("bad-inputs"), run_name="r")
    with pytest.raises(MlflowException) as exc:
        client.log_inputs(run.info.run_id, datasets=datasets, models=models)
    assert exc.value.error_code == code
    got = client.get_run(run.info.run_id).inputs
    assert got.dataset_inputs == [] and got.model_inputs == []
    row = TrackingStore.from_url(tracking_url).get_experiment(int(run.info.run_id))
    assert row["dataset_name"] == PLACEHOLDER_DATASET


def test_no_inputs_on_a_deleted_run(mlflow_uri):
    client = MlflowClient()
    run = client.create_run(client.create_experiment("deleted-inputs"), run_name="r")
    client.delete_run(run.info.run_id)
    dataset = DatasetInput(Dataset("d", "abc", "code", "{}"), [InputTag("mlflow.data.context", "train")])
    with pytest.raises(MlflowException) as exc:
        client.log_inputs(run.info.run_id, datasets=[dataset])
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE" and "deleted" in exc.value.message


def test_the_inputs_tags_are_reserved(mlflow_uri):
    client = MlflowClient()
    run = client.create_run(client.create_experiment("reserved"), run_name="r")
    with pytest.raises(MlflowException) as exc:
        client.set_tag(run.info.run_id, "mltrack.model_outputs", "[1]")
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE" and "reserved" in exc.value.message
    assert client.get_run(run.info.run_id).outputs.model_outputs == []
