"""Metric payloads, bulk upserts, reads, deployments and preprocessing on both backends."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import func, select

from airflow_mltrack import MLTrackError
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.models import EndpointModel, Metric


def metric_count(store: TrackingStore) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Metric.__table__)).scalar_one()


@pytest.fixture
def experiment(store: TrackingStore):
    dataset_id = store.register_dataset("p", "d", "Tabular")
    model_id = store.register_model("p", "m", "scikit-learn")
    return store, store.create_experiment("p", "e", model_id, dataset_id, {"lr": 0.1})


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"accuracy": 0.93}, {("accuracy", None, "test"): 0.93}),
        (
            {"loss": [0.9, 0.5, 0.3]},
            {("loss", 0, "test"): 0.9, ("loss", 1, "test"): 0.5, ("loss", 2, "test"): 0.3},
        ),
        (
            {"test": {"accuracy": 0.93}, "train": {"accuracy": 0.99, "loss": [0.2, 0.1]}},
            {
                ("accuracy", None, "test"): 0.93,
                ("accuracy", None, "train"): 0.99,
                ("loss", 0, "train"): 0.2,
                ("loss", 1, "train"): 0.1,
            },
        ),
        (
            [
                {"name": "f1", "value": 0.8, "step": 3, "evaluation_set": "validation"},
                {"name": "f1", "value": 0.7},
            ],
            {("f1", 3, "validation"): 0.8, ("f1", None, "test"): 0.7},
        ),
    ],
    ids=["scalar", "curve", "split-first", "rows"],
)
def test_payload_shapes(experiment, payload, expected):
    store, experiment_id = experiment
    assert store.log_metrics(experiment_id, payload) == len(expected)
    with store.engine.connect() as conn:
        got = {
            (r.name, r.step, r.evaluation_set): r.value
            for r in conn.execute(select(Metric.__table__).where(Metric.experiment_id == experiment_id))
        }
    assert got == expected


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"accuracy": "high"}, "metrics.accuracy"),
        ({"loss": [[0.1, 0.2]]}, "metrics.loss[0]"),
        ({}, "metrics"),
        (None, "metrics"),
        ({"x" * 300: 1.0}, "metrics name"),
        ({"holdout": {"acc": 1.0}}, "metrics.holdout"),
        ([{"name": "a"}], "metrics[0]"),
        ({"ok": 1.0, "bad": True}, "metrics.bad"),
        ("accuracy=0.9", "metrics"),
    ],
)
def test_bad_payloads_write_nothing(experiment, payload, field):
    store, experiment_id = experiment
    with pytest.raises(MLTrackError) as info:
        store.log_metrics(experiment_id, payload)
    assert info.value.field == field
    assert metric_count(store) == 0


def test_unknown_experiment(experiment):
    store, _ = experiment
    with pytest.raises(MLTrackError, match="experiment_id=4242"):
        store.log_metrics(4242, {"a": 1.0})


def test_stepless_metric_is_one_row_however_often_logged(experiment):
    store, experiment_id = experiment
    for value in (0.1, 0.2, 0.3):
        store.log_metrics(experiment_id, {"accuracy": value})
    assert metric_count(store) == 1
    assert store.metric_history(experiment_id, "accuracy")[0]["value"] == 0.3


def test_nan_and_inf_survive(experiment):
    store, experiment_id = experiment
    store.log_metrics(experiment_id, {"loss": [1.0, float("inf"), float("nan")], "lr": 1e-12, "big": 1e12})
    values = [r["value"] for r in store.metric_history(experiment_id, "loss")]
    assert values[0] == 1.0 and math.isinf(values[1]) and math.isnan(values[2])
    assert store.metric_history(experiment_id, "lr")[0]["value"] == 1e-12
    assert store.metric_history(experiment_id, "big")[0]["value"] == 1e12


@pytest.mark.parametrize("size", [100, 10_000])
def test_bulk_upsert_twice_leaves_one_set(experiment, size):
    store, experiment_id = experiment
    rows = [
        {"name": f"m{i % 10}", "value": float(i), "step": i // 10, "evaluation_set": "train"}
        for i in range(size)
    ]
    assert store.log_metrics(experiment_id, rows) == size
    rows2 = [dict(r, value=r["value"] * 2) for r in rows]
    assert store.log_metrics(experiment_id, rows2) == size
    assert metric_count(store) == size
    history = store.metric_history(experiment_id, "m3", "train")
    assert [h["value"] for h in history[:2]] == [6.0, 26.0]


def test_duplicate_keys_in_one_batch_last_wins(experiment):
    store, experiment_id = experiment
    rows = [{"name": "a", "value": 1.0, "step": 1}, {"name": "a", "value": 2.0, "step": 1}] * 300
    assert store.log_metrics(experiment_id, rows) == 1
    assert store.metric_history(experiment_id, "a")[0]["value"] == 2.0


def test_latest_leaderboard_compare(store: TrackingStore):
    dataset_id = store.register_dataset("p", "d", "Tabular")
    model_id = store.register_model("p", "m", "sklearn")
    ids = []
    for i, (lr, acc) in enumerate([(0.1, 0.80), (0.01, 0.95), (0.001, 0.90)]):
        experiment_id = store.create_experiment("p", f"e{i}", model_id, dataset_id, {"lr": lr, "opt": "sgd"})
        store.log_metrics(experiment_id, {"accuracy": [acc - 0.2, acc]}, evaluation_set="validation")
        store.log_metrics(experiment_id, {"loss": 1 - acc})
        ids.append(experiment_id)
    nan_experiment = store.create_experiment("p", "diverged", model_id, dataset_id)
    store.log_metrics(nan_experiment, {"accuracy": float("nan")}, evaluation_set="validation")

    latest = {(r["evaluation_set"], r["name"]): r for r in store.latest_metrics(ids[1])}
    assert latest[("validation", "accuracy")]["value"] == pytest.approx(0.95)
    assert latest[("validation", "accuracy")]["min_value"] == pytest.approx(0.75)
    assert latest[("validation", "accuracy")]["points"] == 2

    top = store.leaderboard("p", "accuracy", "validation", mode="max", limit=2)
    assert [r["experiment_id"] for r in top] == [ids[1], ids[2]]
    assert [r["rank"] for r in top] == [1, 2]
    low = store.leaderboard("p", "loss", "test", mode="min", limit=10)
    assert [r["experiment_id"] for r in low] == [ids[1], ids[2], ids[0]]
    with pytest.raises(MLTrackError, match="mode='best'"):
        store.leaderboard("p", "loss", mode="best")

    compared = store.compare([ids[0], ids[1]])
    assert compared["differing"] == ["lr"]
    assert compared["hyperparameters"]["opt"] == {ids[0]: "sgd", ids[1]: "sgd"}
    table = {(m["evaluation_set"], m["name"]): m["values"] for m in compared["metrics"]}
    assert table[("validation", "accuracy")][ids[1]] == pytest.approx(0.95)
    with pytest.raises(MLTrackError, match="experiment_ids"):
        store.compare([ids[0], 99999])


def test_canary_then_promotion(store: TrackingStore):
    incumbent = store.register_model("p", "m", "sklearn", version="1")
    challenger = store.register_model("p", "m", "sklearn", version="2")
    store.deploy_model("p", "prod", incumbent, 100, url="http://serve/prod")
    store.deploy_model("p", "prod", challenger, 10)
    state = {r["model_id"]: r["traffic_percentage"] for r in store.endpoint_state("p", "prod")}
    assert state == {incumbent: 90, challenger: 10}
    again = store.deploy_model("p", "prod", challenger, 10)
    assert again == store.deploy_model("p", "prod", challenger, 10)  # idempotent
    store.deploy_model("p", "prod", challenger, 100)
    state = {r["model_id"]: r["traffic_percentage"] for r in store.endpoint_state("p", "prod")}
    assert state == {challenger: 100}
    history = [
        (r["model_id"], r["traffic_percentage"], r["retired_at"] is None)
        for r in store.endpoint_history("p", "prod")
    ]
    assert history == [
        (incumbent, 100, False),
        (incumbent, 90, False),
        (challenger, 10, False),
        (challenger, 100, True),
    ]


def test_traffic_never_sums_past_100(store: TrackingStore):
    models = [store.register_model("p", "m", "sk", version=str(i)) for i in range(4)]
    for model_id, share in zip(models, [40, 30, 30, 50], strict=True):
        store.deploy_model("p", "ep", model_id, share)
    active = store.endpoint_state("p", "ep")
    assert sum(r["traffic_percentage"] for r in active) == pytest.approx(100)
    with pytest.raises(MLTrackError, match="traffic_percentage=120"):
        store.deploy_model("p", "ep", models[0], 120)
    with pytest.raises(MLTrackError, match="traffic_percentage=nan"):
        store.deploy_model("p", "ep", models[0], float("nan"))
    with store.engine.connect() as conn:
        rows_before = conn.execute(select(func.count()).select_from(EndpointModel.__table__)).scalar_one()
    assert rows_before == 4 + 3  # three scaled rows re-inserted when the 50% share arrived


def test_preprocessing_job_lineage(store: TrackingStore):
    raw = store.register_dataset("p", "iris", "Tabular")
    scaled = store.register_dataset("p", "iris-scaled", "Tabular")
    link = {"dag_id": "d", "run_id": "r", "task_id": "prep"}
    job = store.record_preprocessing_job(
        "p", "scale", raw, scaled, {"scaler": "standard"}, try_number=1, **link
    )
    assert (
        store.record_preprocessing_job(
            "p", "scale", raw, scaled, {"scaler": "standard"}, try_number=2, **link
        )
        == job
    )
    (recorded,) = store.list_preprocessing_jobs("p")
    assert (recorded["input_dataset_id"], recorded["output_dataset_id"], recorded["try_number"]) == (
        raw,
        scaled,
        2,
    )
    with pytest.raises(MLTrackError, match="output_dataset_id"):
        store.record_preprocessing_job("p", "self", raw, raw)
