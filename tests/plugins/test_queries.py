"""The UI's read rules on both backends, as a notebook or the CLI reads the store: which final values are
ranked, and which rows a reader limited to some DAGs gets (filtered in SQL, before any limit)."""

from __future__ import annotations

import pytest

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.plugins.filters import parse_params
from airflow_mltrack.store.reads import catalog
from airflow_mltrack.store.reads.experiment_list import ExperimentFilter, experiment_page, filter_choices

FINALS = {
    "ok-low": 0.2,
    "ok-high": 0.8,
    "exploded": float("inf"),
    "collapsed": float("-inf"),
    "nan": float("nan"),
}


@pytest.fixture
def ranked(store):
    data = store.register_dataset("p", "d", "Tabular")
    model = store.register_model("p", "m", "sklearn")
    ids = {}
    for name, value in FINALS.items():
        ids[name] = store.create_experiment("p", name, model, data, dag_id="mine", run_id="r", task_id=name)
        store.log_metrics(ids[name], {"loss": [1.0, value]}, evaluation_set="validation")
    for i in range(12):  # a DAG the reader may not see, all better than the reader's rows
        e = store.create_experiment(
            "p", f"other-{i}", model, data, dag_id="theirs", run_id=f"r{i}", task_id="t"
        )
        store.log_metrics(e, {"loss": [1.0, 0.9 + i / 100]}, evaluation_set="validation")
    return ids


@pytest.mark.parametrize("mode", ["max", "min"])
def test_leaderboard_ranks_only_finite_final_values(store, ranked, mode):
    board = store.leaderboard("p", "loss", "validation", mode=mode, limit=50)
    names = [r["name"] for r in board]
    assert {"exploded", "collapsed", "nan"}.isdisjoint(names)
    assert len(names) == 14 and [r["rank"] for r in board] == list(range(1, 15))


def test_leaderboard_filters_visibility_before_the_limit(store, ranked):
    board = store.leaderboard("p", "loss", "validation", mode="max", limit=2, visible_dag_ids={"mine"})
    assert [(r["rank"], r["name"]) for r in board] == [(1, "ok-high"), (2, "ok-low")]
    assert store.leaderboard("p", "loss", "validation", limit=2, visible_dag_ids=set()) == []


def test_metric_sort_puts_non_finite_values_after_the_numbers(store, ranked):
    page = experiment_page(store, ExperimentFilter(sort=("validation", "loss"), order="desc"), {"mine"})
    names = [e["name"] for e in page["items"]]
    assert names == ["ok-high", "ok-low", "nan", "collapsed", "exploded"]  # non-finite: newest first
    values = [e["sort_value"] for e in page["items"]]
    assert values[2] != values[2] and values[3:] == [float("-inf"), float("inf")]  # NaN stays NaN
    ascending = experiment_page(store, ExperimentFilter(sort=("validation", "loss"), order="asc"), {"mine"})
    assert [e["name"] for e in ascending["items"]][:2] == ["ok-low", "ok-high"]


def test_hidden_tags_and_deployments_stay_hidden(store):
    data = store.register_dataset("p", "d", "Tabular")
    model = store.register_model("p", "m", "sklearn", version="candidates")
    store.create_experiment("p", "a", model, data, dag_id="mine", run_id="r", task_id="t", tags=["public"])
    store.create_experiment(
        "p", "b", model, data, dag_id="theirs", run_id="r", task_id="t", tags=["secret-project"]
    )
    store.deploy_model("p", "shadow", model, 100, dag_id="theirs", run_id="r")
    store.deploy_model("p", "prod", model, 50, dag_id="mine", run_id="r")
    choices = filter_choices(store, {"mine"})
    assert choices["tags"] == ["public"] and choices["dag_ids"] == ["mine"]
    assert filter_choices(store)["tags"] == ["public", "secret-project"]
    [row] = catalog.models_with_usage(store, "p", {"mine"})
    assert row["serving"] == [{"endpoint": "prod", "traffic_percentage": 50.0}]
    endpoints = {e["name"]: e for e in catalog.deployments_overview(store, "p", {"mine"})}
    assert endpoints["shadow"]["active"] == endpoints["shadow"]["history"] == []
    assert [a["traffic_percentage"] for a in endpoints["prod"]["active"]] == [50.0]
    everything = {e["name"]: e for e in catalog.deployments_overview(store, "p")}
    assert len(everything["shadow"]["history"]) == 1


def test_map_index_is_a_sql_filter(store):
    data = store.register_dataset("p", "d", "Tabular")
    model = store.register_model("p", "m", "sklearn")
    for i in range(3):
        store.create_experiment(
            "p", f"fold-{i}", model, data, dag_id="cv", run_id="r", task_id="fold", map_index=i
        )
    page = experiment_page(
        store, ExperimentFilter(dag_id="cv", run_id="r", task_id="fold", map_index=1, limit=1)
    )
    assert page["total"] == 1 and [e["name"] for e in page["items"]] == ["fold-1"]


@pytest.mark.parametrize(
    "pairs",
    [["lr=" + "[" * 5000], ["lr=" + "{" * 30 + "}" * 30], ["lr=0.1"] * 21, ["lr=" + "1" * 3000]],
    ids=["unclosed", "deep", "many", "long"],
)
def test_filters_have_bounds(pairs):
    with pytest.raises(MLTrackError) as caught:
        parse_params(pairs)
    assert caught.value.field == "param" and len(repr(caught.value.value)) < 100


def test_offset_has_a_bound(store):
    with pytest.raises(MLTrackError) as caught:
        experiment_page(store, ExperimentFilter(offset=9223372036854775800, sort=("test", "accuracy")))
    assert caught.value.field == "offset"
