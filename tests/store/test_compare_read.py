"""The compare read (store/reads/compare.py) on both backends: up to 100 experiments in a fixed number of
statements, parameters that differ (nested values compared as values), the best final value per metric
with the direction guessed from the name, and hidden ids answered as missing ones."""

from __future__ import annotations

import math

import pytest

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.reads.compare import MAX_COMPARED, compare, lower_is_better
from tests.support.statements import statements


def _make(store: TrackingStore, n: int, **fields) -> list[int]:
    model = store.register_model("cmp", "net", "PyTorch", version="1")
    data = store.register_dataset("cmp", "rows", "Tabular")
    ids = []
    for i in range(n):
        e = store.create_experiment(
            "cmp",
            f"run-{i}",
            model,
            data,
            {
                "lr": 10 ** -(1 + i % 4),
                "depth": 2 + i % 3,
                "opt": "adam",
                "sched": {"kind": "cos", "warmup": 5},
            },
            **fields,
        )
        store.log_metrics(e, {"loss": [1.0, 0.5 + i / 1000]}, evaluation_set="validation")
        store.log_metrics(e, {"accuracy": 0.5 + i / 1000}, evaluation_set="test")
        ids.append(e)
    return ids


def test_a_hundred_experiments_in_the_statements_of_three(store: TrackingStore):
    ids = _make(store, MAX_COMPARED)
    compare(store, ids[:3])  # warm: the revision check and the engine's first connection
    with statements(store) as few:
        small = compare(store, ids[:3])
    with statements(store) as many:
        result = compare(store, ids, visible_dag_ids=set())
    assert len(few) == len(many) == 2, many
    assert "metric_latest" in many[1] and not any("FROM metrics" in s for s in many), many  # finals only
    assert [e["experiment_id"] for e in result["experiments"]] == ids
    assert [e["name"] for e in small["experiments"]] == ["run-0", "run-1", "run-2"]
    assert sorted(result["differing"]) == ["depth", "lr"]
    assert result["hyperparameters"]["opt"] == dict.fromkeys(ids, "adam")
    table = {(m["evaluation_set"], m["name"]): m for m in result["metrics"]}
    assert set(table) == {("validation", "loss"), ("test", "accuracy")}
    assert (
        table[("test", "accuracy")]["best"] == [ids[-1]]
        and not table[("test", "accuracy")]["lower_is_better"]
    )
    assert (
        table[("validation", "loss")]["best"] == [ids[0]] and table[("validation", "loss")]["lower_is_better"]
    )
    assert table[("validation", "loss")]["values"][ids[0]] == pytest.approx(0.5)
    assert list(table[("test", "accuracy")]["values"]) == ids  # in the order asked


def test_nested_values_are_compared_as_values(store: TrackingStore):
    model = store.register_model("cmp", "net", "PyTorch", version="1")
    data = store.register_dataset("cmp", "rows", "Tabular")
    params = [
        {"opt": {"name": "adam", "betas": [0.9, 0.99]}, "same": {"a": 1, "b": 2}, "only_here": 1},
        {"opt": {"name": "adam", "betas": [0.9, 0.999]}, "same": {"b": 2, "a": 1}},
        {"opt": {"betas": [0.9, 0.99], "name": "adam"}, "same": {"a": 1, "b": 2}},
    ]
    ids = [store.create_experiment("cmp", f"n{i}", model, data, p) for i, p in enumerate(params)]
    result = compare(store, ids)
    assert result["differing"] == ["only_here", "opt"]
    assert result["hyperparameters"]["only_here"] == {ids[0]: 1, ids[1]: None, ids[2]: None}
    assert compare(store, [ids[0], ids[2]])["differing"] == ["only_here"]
    assert result["metrics"] == []


def test_best_skips_non_finite_values_and_keeps_ties(store: TrackingStore):
    model = store.register_model("cmp", "net", "PyTorch", version="1")
    data = store.register_dataset("cmp", "rows", "Tabular")
    ids = [store.create_experiment("cmp", f"b{i}", model, data) for i in range(4)]
    for e, rmse, f1 in zip(ids, (float("nan"), 0.2, 0.2, 0.3), (float("inf"), 0.7, 0.9, 0.9), strict=True):
        store.log_metrics(e, {"val_RMSE": rmse, "f1": f1}, evaluation_set="test")
    table = {m["name"]: m for m in compare(store, ids)["metrics"]}
    assert table["val_RMSE"]["best"] == [ids[1], ids[2]]
    assert math.isnan(table["val_RMSE"]["values"][ids[0]])
    assert table["f1"]["best"] == [ids[2], ids[3]]  # +inf is not a best value


def test_hidden_and_missing_ids_answer_the_same(store: TrackingStore):
    model = store.register_model("cmp", "net", "PyTorch", version="1")
    data = store.register_dataset("cmp", "rows", "Tabular")
    mine = store.create_experiment("cmp", "mine", model, data, dag_id="readable", run_id="r", task_id="t")
    free = store.create_experiment("cmp", "outside-airflow", model, data)
    hidden = store.create_experiment("cmp", "hidden", model, data, dag_id="secret", run_id="r", task_id="t")
    visible = {"readable"}
    assert [e["name"] for e in compare(store, [mine, free], visible)["experiments"]] == [
        "mine",
        "outside-airflow",
    ]
    errors = []
    for probe in (hidden, 999_999):
        with pytest.raises(NotFoundError) as caught:
            compare(store, [mine, probe], visible, field="ids")
        errors.append((caught.value.field, caught.value.value == [probe], caught.value.reason))
    assert errors[0] == errors[1] == ("ids", True, errors[0][2])
    assert compare(store, [mine, hidden])["experiments"][1]["name"] == "hidden"  # None: every DAG


def test_count_limits(store: TrackingStore):
    with pytest.raises(MLTrackError, match="101 ids"):
        compare(store, range(1, MAX_COMPARED + 2))
    with pytest.raises(MLTrackError, match="0 ids"):
        compare(store, [])
    with pytest.raises(MLTrackError, match="experiment_ids"):
        compare(store, [1, "x"])
    model = store.register_model("cmp", "net", "PyTorch", version="1")
    data = store.register_dataset("cmp", "rows", "Tabular")
    e = store.create_experiment("cmp", "one", model, data)
    assert len(compare(store, [e, e, str(e)])["experiments"]) == 1  # distinct ids
    assert store.compare([e])["experiments"][0]["name"] == "one"  # the TrackingStore method delegates


@pytest.mark.parametrize(
    ("name", "lower"),
    [
        ("loss", True),
        ("val_loss", True),
        ("MSE", True),
        ("mae", True),
        ("error_rate", True),
        ("perplexity", True),
        ("accuracy", False),
        ("f1", False),
        ("auc", False),
    ],
)
def test_direction_is_guessed_from_the_name(name: str, lower: bool):
    assert lower_is_better(name) is lower
