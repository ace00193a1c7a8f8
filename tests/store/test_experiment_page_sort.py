"""The experiment list sorted by a metric: every page, on both backends, against a sort done in Python."""

from __future__ import annotations

import math

import pytest

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.reads.experiment_list import ExperimentFilter, experiment_page, metric_keys
from airflow_mltrack.store.reads.lineage import lineage


@pytest.fixture
def seeded(store: TrackingStore) -> dict[int, tuple[str, float | None]]:
    """25 experiments in two projects: ties, NaN, an infinity, and some without the metric."""
    out: dict[int, tuple[str, float | None]] = {}
    values = [0.5, 0.9, 0.5, float("nan"), None, 0.1, 0.9, float("inf"), None, 0.5, float("nan"), 0.3, -1.0]
    for project in ("a", "b"):
        dataset_id = store.register_dataset(project, "d", "Tabular")
        model_id = store.register_model(project, "m", "sklearn")
        for i, value in enumerate(values if project == "a" else values[:12]):
            experiment_id = store.create_experiment(project, f"e{i}", model_id, dataset_id)
            store.log_metrics(experiment_id, {"other": 1.0})
            if value is not None:
                store.log_metrics(experiment_id, {"acc": [0.0, value]}, evaluation_set="validation")
            out[experiment_id] = (project, value)
    return out


def expected(seeded: dict[int, tuple[str, float | None]], order: str, project: str | None) -> list[int]:
    chosen = {i: value for i, (p, value) in seeded.items() if project in (None, p)}
    # NaN and +-Infinity are not ranked (as on the leaderboard): they come after the numbers, newest first.
    numbers = [i for i, value in chosen.items() if value is not None and math.isfinite(value)]
    numbers.sort(key=lambda i: -i)  # ties: newest first, in either order (the sort below is stable)
    numbers.sort(key=lambda i: chosen[i], reverse=order == "desc")
    nans = sorted(
        (i for i, value in chosen.items() if value is not None and not math.isfinite(value)), reverse=True
    )
    missing = sorted((i for i, value in chosen.items() if value is None), reverse=True)
    return numbers + nans + missing


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("project", [None, "a"])
@pytest.mark.parametrize("limit", [1, 4, 50])
def test_every_page_matches_a_python_sort(store, seeded, order, project, limit):
    want = expected(seeded, order, project)
    got: list[int] = []
    offset = 0
    while True:
        page = experiment_page(
            store,
            ExperimentFilter(
                sort=("validation", "acc"), order=order, project=project, limit=limit, offset=offset
            ),
        )
        assert page["total"] == len(want)
        got += [item["experiment_id"] for item in page["items"]]
        for item in page["items"]:
            value = seeded[item["experiment_id"]][1]
            if value is None:
                assert item["sort_value"] is None
            elif math.isnan(value):
                assert math.isnan(item["sort_value"])
            else:
                assert item["sort_value"] == value
        assert page["more"] == (offset + limit < len(want))
        offset += limit
        if offset >= len(want):
            break
    assert got == want


@pytest.mark.parametrize("limit", [1, 4, 25])
@pytest.mark.parametrize(
    "how",
    [
        {"sort": ("validation", "acc"), "order": "asc"},  # the walk of the metric's index
        {"order_by": ("metrics.validation.acc DESC", "attributes.name ASC")},  # the general ORDER BY
        {},  # newest first
        {"search": "metrics.validation.acc > 0.2", "tiebreak": "mlflow"},
    ],
)
def test_uncounted_pages_are_the_counted_ones_and_know_if_more_follow(store, seeded, how, limit):
    """``count=False`` (the MLflow adapter's pages): no total, the same rows, ``more`` from one row past
    the page; ``labels=False`` leaves the label list out."""
    counted: list[int] = []
    uncounted: list[int] = []
    offset = 0
    while True:
        page = experiment_page(store, ExperimentFilter(limit=limit, offset=offset, **how))
        bare = experiment_page(
            store, ExperimentFilter(limit=limit, offset=offset, count=False, labels=False, **how)
        )
        assert bare["total"] is None and not bare["total_exact"]
        assert [i["experiment_id"] for i in bare["items"]] == [i["experiment_id"] for i in page["items"]]
        assert bare["more"] == page["more"] == (offset + len(page["items"]) < page["total"])
        assert all("tags" not in i for i in bare["items"]) and all("tags" in i for i in page["items"])
        counted += [i["experiment_id"] for i in page["items"]]
        uncounted += [i["experiment_id"] for i in bare["items"]]
        if not bare["more"]:
            break
        offset += limit
    assert uncounted == counted and len(counted) == page["total"] > 0


def test_a_page_from_the_end_needs_the_count(store, seeded):
    with pytest.raises(MLTrackError) as raised:
        experiment_page(store, ExperimentFilter(from_end=True, count=False))
    assert raised.value.field == "from_end"


def test_metric_keys_follow_project_and_visibility(store, seeded):
    dataset_id = store.register_dataset("b", "d", "Tabular")
    model_id = store.register_model("b", "m", "sklearn")
    hidden = store.create_experiment(
        "b", "h", model_id, dataset_id, dag_id="secret_dag", run_id="r", task_id="t"
    )
    store.log_metrics(hidden, {"secret": 1.0}, evaluation_set="train")
    store.log_metrics(max(seeded), {"b_only": 2.0})

    def keys(**kwargs):
        return [(k["evaluation_set"], k["name"]) for k in metric_keys(store, **kwargs)]

    assert keys() == [("test", "b_only"), ("test", "other"), ("train", "secret"), ("validation", "acc")]
    assert keys(project="a") == [("test", "other"), ("validation", "acc")]
    assert keys(visible_dag_ids=[]) == [("test", "b_only"), ("test", "other"), ("validation", "acc")]
    assert keys(project="b", visible_dag_ids=["secret_dag"]) == [
        ("test", "b_only"),
        ("test", "other"),
        ("train", "secret"),
        ("validation", "acc"),
    ]
    assert keys(project="nope") == []


def test_lineage_lists_the_newest_experiments_and_counts_all(store):
    raw = store.register_dataset("lin", "raw", "Tabular")
    store.record_preprocessing_job(
        "lin", "clean", raw, output_dataset={"name": "clean", "data_type": "Tabular"}, status="Completed"
    )
    clean = next(d["dataset_id"] for d in store.list_datasets("lin") if d["name"] == "clean")
    first = store.register_model("lin", "m", "sklearn", version="1")
    second = store.register_model("lin", "m", "sklearn", version="2")
    created = [
        store.create_experiment("lin", f"e{i}", first if i == 0 else second, raw if i % 2 else clean)
        for i in range(5)
    ]
    graph = lineage(store, raw, experiment_limit=2)
    assert [e["experiment_id"] for e in graph["experiments"]] == created[::-1][:2]
    assert graph["experiments_total"] == 5
    assert {m["model_id"] for m in graph["models"]} == {first, second}  # e0's model, though not listed
