"""Text and JSON as users' DAGs hand it over, on both backends: lone surrogates (a path decoded with
``surrogateescape``, a ``"\\ud800"`` JSON escape), int and str keys of one nested dict, and names spelled in
NFC or NFD, or made only of invisible characters."""

from __future__ import annotations

import json
import unicodedata

import pytest
from sqlalchemy import func, select

from airflow_mltrack import MLTrackError
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.models import Base

NFC = unicodedata.normalize("NFC", "Café")
NFD = unicodedata.normalize("NFD", "Café")
# What os.fsdecode gives for a latin-1 file name on a UTF-8 system: b"caf\xe9.csv".
SURROGATE = b"caf\xe9.csv".decode("utf-8", "surrogateescape")


def _row_counts(store: TrackingStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in Base.metadata.tables.items()
        }


@pytest.fixture
def ids(store: TrackingStore) -> dict[str, int]:
    dataset = store.register_dataset("churn", "customers", "Tabular")
    model = store.register_model("churn", "xgb", "xgboost")
    experiment = store.create_experiment("churn", "baseline", model, dataset, {"max_depth": 3})
    return {"dataset": dataset, "model": model, "experiment": experiment}


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s, i: s.ensure_project(SURROGATE), "project"),
        (lambda s, i: s.register_dataset("churn", SURROGATE, "Tabular"), "name"),
        (
            lambda s, i: s.register_model("churn", "xgb", "xgboost", version="2", model_path=SURROGATE),
            "model_path",
        ),
        (lambda s, i: s.create_experiment("churn", "e\ud800", i["model"], i["dataset"]), "name"),
        (
            lambda s, i: s.create_experiment(
                "churn", "e2", i["model"], i["dataset"], {"train_file": SURROGATE}
            ),
            "hyperparameters.train_file",
        ),
        (
            lambda s, i: s.create_experiment(
                "churn", "e3", i["model"], i["dataset"], '{"lr": 0.1, "\\ud800": 1}'
            ),
            "hyperparameters key",
        ),
        (lambda s, i: s.log_hyperparameters(i["experiment"], {"note": "\udcff"}), "hyperparameters.note"),
        (lambda s, i: s.log_metrics(i["experiment"], {"acc\ud800": 0.9}), "metrics name"),
        (lambda s, i: s.tag("experiment", i["experiment"], ["ok", "\ud800"]), "tags"),
        (lambda s, i: s.deploy_model("churn", "prod\ud800", i["model"], 100), "endpoint"),
    ],
    ids=[
        "project",
        "dataset",
        "model_path",
        "experiment",
        "hyperparameter-value",
        "json-escape-key",
        "log_hyperparameters",
        "metric",
        "tag",
        "endpoint",
    ],
)
def test_lone_surrogate_is_our_error_naming_the_field(store: TrackingStore, ids, call, field):
    before = _row_counts(store)
    with pytest.raises(MLTrackError, match="not valid Unicode text") as caught:
        call(store, ids)
    assert caught.value.field == field
    assert _row_counts(store) == before


def test_failure_reason_with_a_lone_surrogate_is_still_recorded(store: TrackingStore, ids):
    """A task failing on a badly decoded file name: the experiment must still be marked Failed."""
    store.set_status(ids["experiment"], "Running")
    store.set_status(ids["experiment"], "Failed", error=f"FileNotFoundError: {SURROGATE}\x00")
    experiment = store.get_experiment(ids["experiment"])
    assert experiment["status"] == "Failed"
    assert experiment["error"] == "FileNotFoundError: caf\ufffd.csv\ufffd"


@pytest.mark.parametrize(
    "call",
    [
        lambda s, i: s.create_experiment(
            "churn", "e", i["model"], i["dataset"], {"a": {1: "int", "1": "str"}}
        ),
        lambda s, i: s.log_hyperparameters(i["experiment"], {"class_weight": {0: 1.0, "0": 2.0}}),
        lambda s, i: s.create_experiment("churn", "e", i["model"], i["dataset"], '{"lr": 0.1, "lr": 0.2}'),
        lambda s, i: s.register_model(
            "churn", "xgb", "xgboost", version="2", input_schema={"columns": {7: "age", "7": "income"}}
        ),
        lambda s, i: s.record_preprocessing_job(
            "churn", "scale", i["dataset"], None, {"bins": {10: "a", "10": "b"}}
        ),
    ],
    ids=["nested-int-and-str", "log_hyperparameters", "json-text-twice", "input_schema", "job-parameters"],
)
def test_colliding_json_keys_are_refused_not_dropped(store: TrackingStore, ids, call):
    before = _row_counts(store)
    hyperparameters = store.get_experiment(ids["experiment"])["hyperparameters"]
    with pytest.raises(MLTrackError, match="key") as caught:
        call(store, ids)
    assert "key" in caught.value.field
    assert _row_counts(store) == before
    assert store.get_experiment(ids["experiment"])["hyperparameters"] == hyperparameters


def test_int_keys_follow_one_rule_at_every_depth(store: TrackingStore, ids):
    """Int keys are written as json.dumps writes them, nested (sklearn's class_weight) and at the top (one
    parameter set per fold: ``{fold: params for fold, params in enumerate(grid)}``)."""
    weighted = {"class_weight": {0: 1.0, 1: 5.0}, "max_depth": 3}
    experiment = store.create_experiment("churn", "weighted", ids["model"], ids["dataset"], weighted)
    assert store.get_experiment(experiment)["hyperparameters"] == json.loads(json.dumps(weighted))
    per_fold = {fold: {"lr": lr} for fold, lr in enumerate([0.1, 0.01])}
    experiment = store.create_experiment("churn", "folds", ids["model"], ids["dataset"], per_fold)
    assert store.get_experiment(experiment)["hyperparameters"] == {"0": {"lr": 0.1}, "1": {"lr": 0.01}}


def test_nfc_and_nfd_spellings_are_one_name(store: TrackingStore):
    assert NFC != NFD
    project = store.ensure_project(NFC)
    assert store.ensure_project(NFD) == project
    assert store.ensure_project(f"\u200b{NFD}\ufeff") == project
    assert [p["name"] for p in store.list_projects()] == [NFC]
    assert store.get_project(NFD)["project_id"] == project

    dataset = store.register_dataset(NFD, f"Données {NFD}", "Tabular")
    assert store.register_dataset(NFC, f"Données {NFC}", "Tabular") == dataset
    assert [d["dataset_id"] for d in store.list_datasets(NFD)] == [dataset]
    model = store.register_model(NFC, NFD, "xgboost", tags=[NFC, NFD])
    assert store.register_model(NFD, NFC, "xgboost") == model
    assert store.tags_of("model", model) == [NFC]

    store.deploy_model(NFC, NFD, model, 100)
    assert [r["model_id"] for r in store.endpoint_state(NFD, NFC)] == [model]
    experiment = store.create_experiment(NFD, "run", model, dataset)
    store.log_metrics(experiment, {f"précision {NFD}": 0.9})
    assert store.metric_history(experiment, f"précision {NFC}")[0]["value"] == 0.9
    assert [r["experiment_id"] for r in store.leaderboard(NFD, f"précision {NFD}")] == [experiment]


@pytest.mark.parametrize("invisible", ["\u200b", "\ufeff", " \u200d\u2060 ", "\u200b\n"])
def test_a_name_of_only_invisible_characters_is_refused(store: TrackingStore, invisible):
    with pytest.raises(MLTrackError, match="must not be empty") as caught:
        store.register_dataset("churn", invisible, "Tabular")
    assert (caught.value.field, caught.value.value) == ("name", invisible)
    with pytest.raises(MLTrackError, match="project="):
        store.ensure_project(invisible)
    assert store.list_projects() == []
