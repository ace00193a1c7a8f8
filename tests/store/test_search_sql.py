"""The search language against real databases (SQLite and PostgreSQL): every operator on every kind of
key, checked against the same filter done in Python; order-by on every page, read from either end;
injection attempts find nothing and change nothing."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.reads.experiment_list import ExperimentFilter, column_choices, experiment_page
from airflow_mltrack.store.search import SearchError

N = 24
OPTIMIZERS = ["adam", "sgd", "Adam", "rmsprop"]
LRS = [0.01, 1e-05, 0.1, 0.5]


@pytest.fixture
def seeded(store: TrackingStore) -> dict[int, dict[str, Any]]:
    """N experiments with varied params, metrics (NaN, inf, missing), tags and statuses: {id: facts}."""
    facts: dict[int, dict[str, Any]] = {}
    catalog = {
        project: (
            store.register_dataset(project, "cifar" if project == "vision" else "imdb", "Image"),
            store.register_model(project, "net", "PyTorch"),
        )
        for project in ("vision", "text")
    }
    for i in range(N):
        project = "vision" if i % 3 else "text"
        params: dict[str, Any] = {"lr": LRS[i % 4], "optimizer": OPTIMIZERS[i % 4], "depth": i % 5}
        if i % 2:
            params["model"] = {"depth": i, "act": "relu"}
        if i % 6 == 0:
            params["flag"] = i % 12 == 0
            params["a.b"] = "dotted"
        if i == 5:
            params["api_key"] = "sk-secret"
            params["note"] = "it's 100% done"
        if i == 7:
            params.pop("optimizer")
        dataset, model = catalog[project]
        experiment_id = store.create_experiment(
            project,
            f"run-{i:02d}",
            model,
            dataset,
            params,
            dag_id=f"dag_{i % 2}",
            run_id="r1",
            task_id=f"t{i}",
            tags=["base"] * (i % 4 == 0),
        )
        accuracy = [0.5 + i / 100, math.nan, math.inf, None][i % 4] if i % 7 else None
        if accuracy is not None:
            store.log_metrics(experiment_id, {"accuracy": [0.1, accuracy]}, evaluation_set="validation")
        store.log_metrics(experiment_id, {"loss": 1.0 / (i + 1)}, evaluation_set="test")
        if i % 5 == 0:
            store.set_status(experiment_id, "Running")
            store.set_status(experiment_id, "Completed")
        facts[experiment_id] = {
            "i": i,
            "project": project,
            "params": params,
            "accuracy": accuracy,
            "loss": 1.0 / (i + 1),
            "tagged": i % 4 == 0,
            "status": "Completed" if i % 5 == 0 else "Pending",
            "dag_id": f"dag_{i % 2}",
            "name": f"run-{i:02d}",
        }
    return facts


def found(store: TrackingStore, text: str, **more: Any) -> set[int]:
    page = experiment_page(store, ExperimentFilter(search=text, limit=500, **more))
    assert page["total"] == len(page["items"])
    return {row["experiment_id"] for row in page["items"]}


def number(value: Any) -> bool:
    return value is not None and not math.isnan(value)


CASES: list[tuple[str, Any]] = [
    ("metrics.validation.accuracy > 0.6", lambda f: number(f["accuracy"]) and f["accuracy"] > 0.6),
    ("metrics.accuracy >= 0.6", lambda f: number(f["accuracy"]) and f["accuracy"] >= 0.6),  # split resolved
    ("metrics.validation.accuracy < 0.55", lambda f: number(f["accuracy"]) and f["accuracy"] < 0.55),
    ("metrics.validation.accuracy <= 0.51", lambda f: number(f["accuracy"]) and f["accuracy"] <= 0.51),
    ("metrics.validation.accuracy = 0.54", lambda f: f["accuracy"] == 0.54),
    ("metrics.validation.accuracy != 0.54", lambda f: number(f["accuracy"]) and f["accuracy"] != 0.54),
    ("metrics.validation.accuracy IS NULL", lambda f: f["accuracy"] is None),
    ("metrics.validation.accuracy IS NOT NULL", lambda f: f["accuracy"] is not None),
    ("metrics.test.loss IN (1, 0.5)", lambda f: f["loss"] in (1.0, 0.5)),
    ("metrics.train.accuracy > 0", lambda f: False),
    ("params.lr = '0.01'", lambda f: f["params"]["lr"] == 0.01),
    ("params.lr = 0.00001", lambda f: f["params"]["lr"] == 1e-05),
    ("params.lr = '1e-05'", lambda f: f["params"]["lr"] == 1e-05),
    ("params.lr > 0.05", lambda f: f["params"]["lr"] > 0.05),
    ("params.lr <= 0.01", lambda f: f["params"]["lr"] <= 0.01),
    ("params.optimizer = 'adam'", lambda f: f["params"].get("optimizer") == "adam"),
    ("params.optimizer != 'adam'", lambda f: f["params"].get("optimizer") not in (None, "adam")),
    ("params.optimizer LIKE 'a%'", lambda f: f["params"].get("optimizer", "").startswith("a")),
    ("params.optimizer ILIKE 'a%'", lambda f: f["params"].get("optimizer", "").lower().startswith("a")),
    (
        "params.optimizer NOT LIKE '%m%'",
        lambda f: "optimizer" in f["params"] and "m" not in f["params"]["optimizer"],
    ),
    ("params.optimizer IN ('sgd', 'rmsprop')", lambda f: f["params"].get("optimizer") in ("sgd", "rmsprop")),
    ("params.optimizer NOT IN ('sgd')", lambda f: f["params"].get("optimizer") not in (None, "sgd")),
    ("params.optimizer IS NULL", lambda f: "optimizer" not in f["params"]),
    ("params.model.depth > 10", lambda f: f["params"].get("model", {}).get("depth", -1) > 10),
    ("params.model.act = 'relu'", lambda f: "model" in f["params"]),
    ("params.`a.b` = 'dotted'", lambda f: f["params"].get("a.b") == "dotted"),
    ("params.a.b = 'dotted'", lambda f: f["params"].get("a.b") == "dotted"),
    ("params.flag = 'true'", lambda f: f["params"].get("flag") is True),
    ("params.flag = false", lambda f: f["params"].get("flag") is False),
    ("params.depth = '3'", lambda f: f["params"]["depth"] == 3),
    ("params.note LIKE '%100\\% done'", lambda f: f["params"].get("note") == "it's 100% done"),
    ("params.note = 'it''s 100% done'", lambda f: f["params"].get("note") == "it's 100% done"),
    ("tags.base IS NOT NULL", lambda f: f["tagged"]),
    ("tags.base IS NULL", lambda f: not f["tagged"]),
    ("attributes.status = 'FINISHED'", lambda f: f["status"] == "Completed"),
    ("attributes.status != 'Completed'", lambda f: f["status"] != "Completed"),
    ("attributes.name LIKE 'run-1%'", lambda f: f["name"].startswith("run-1")),
    ("attributes.name LIKE 'RUN-1%'", lambda f: False),  # LIKE is case-sensitive on both backends
    ("attributes.run_name ILIKE 'RUN-1%'", lambda f: f["name"].startswith("run-1")),
    ("attributes.project = 'text'", lambda f: f["project"] == "text"),
    ("attributes.dag_id IN ('dag_1')", lambda f: f["dag_id"] == "dag_1"),
    ("attributes.end_time IS NOT NULL", lambda f: f["status"] == "Completed"),
    ("attributes.start_time > '2000-01-01'", lambda f: True),
    ("attributes.start_time < 946684800000", lambda f: False),  # ms since the epoch: 2000-01-01
    ("attributes.duration >= 0", lambda f: f["status"] == "Completed"),
    ("status = 'FINISHED'", lambda f: f["status"] == "Completed"),  # a bare name is an attribute (MLflow)
    (
        "run_name LIKE 'run-1%' and project = 'text'",
        lambda f: f["name"].startswith("run-1") and f["project"] == "text",
    ),
    ("datasets.name = 'imdb'", lambda f: f["project"] == "text"),
    ("models.framework = 'PyTorch'", lambda f: True),
    (
        "(params.optimizer = 'adam' or params.optimizer = 'sgd') and metrics.test.loss < 0.2",
        lambda f: f["params"].get("optimizer") in ("adam", "sgd") and f["loss"] < 0.2,
    ),
    (
        "params.optimizer = 'adam' or params.optimizer = 'sgd' and metrics.test.loss < 0.2",
        lambda f: (
            f["params"].get("optimizer") == "adam"
            or (f["params"].get("optimizer") == "sgd" and f["loss"] < 0.2)
        ),
    ),
]


def test_filter_matches_python(store: TrackingStore, seeded: dict[int, dict[str, Any]]) -> None:
    """Every case of CASES on one seeded database (seeding is the slow part): each mismatch is listed."""
    wrong, selective = {}, 0
    for text, predicate in CASES:
        expected = {i for i, facts in seeded.items() if predicate(facts)}
        selective += 0 < len(expected) < len(seeded)
        got = found(store, text)
        if got != expected:
            wrong[text] = {"missing": sorted(expected - got), "extra": sorted(got - expected)}
    assert not wrong
    assert selective >= 40  # a filter ignored (all rows) or inverted would show


def test_search_adds_to_the_other_filters(store: TrackingStore, seeded: dict[int, dict[str, Any]]) -> None:
    expected = {i for i, f in seeded.items() if f["project"] == "vision" and f["params"]["lr"] > 0.05}
    assert found(store, "params.lr > 0.05", project="vision") == expected


@pytest.mark.parametrize(
    "text",
    [
        "params.optimizer = 'adam'' OR 1=1 --'",
        "params.`optimizer' OR '1'='1` = 'x'",
        "attributes.name = 'x''); DROP TABLE experiments; --'",
        'params.`lr") OR 1=1 --` = 1',
        "attributes.name LIKE '%'' OR ''1''=''1'",
    ],
)
def test_injection_finds_nothing_and_changes_nothing(
    store: TrackingStore, seeded: dict[int, dict[str, Any]], text: str
) -> None:
    try:
        assert found(store, text) == set()
    except SearchError:
        pass  # refused before any SQL: as good
    assert experiment_page(store, ExperimentFilter(limit=500))["total"] == N


def test_secret_params_cannot_be_searched_or_sorted(
    store: TrackingStore, seeded: dict[int, dict[str, Any]]
) -> None:
    for where in (
        ExperimentFilter(search="params.api_key LIKE 'sk-%'"),
        ExperimentFilter(order_by=("params.api_key",)),
    ):
        with pytest.raises(MLTrackError, match="secret"):
            experiment_page(store, where)
    page = experiment_page(
        store, ExperimentFilter(search="params.api_key IS NOT NULL", columns=("params.api_key",))
    )
    assert [row["columns"]["params.api_key"] for row in page["items"]] == ["***"]


def python_order(seeded: dict[int, dict[str, Any]], key: Any, descending: bool) -> list[int]:
    """Values first (by value, ties newest first), missing last (newest first)."""
    with_value = [i for i, f in seeded.items() if key(f) is not None]
    with_value.sort(key=lambda i: -i)
    with_value.sort(key=lambda i: key(seeded[i]), reverse=descending)
    missing = sorted((i for i, f in seeded.items() if key(f) is None), reverse=True)
    return with_value + missing


@pytest.mark.parametrize(
    ("clause", "key"),
    [
        ("params.lr", lambda f: f["params"]["lr"]),
        ("params.model.depth", lambda f: f["params"].get("model", {}).get("depth")),
        ("attributes.name", lambda f: f["name"]),
        ("run_name", lambda f: f["name"]),  # a bare name is an attribute (MLflow)
        ("metrics.test.loss", lambda f: f["loss"]),
    ],
)
@pytest.mark.parametrize("descending", [False, True])
def test_order_by_every_page_from_either_end(
    store: TrackingStore, seeded: dict[int, dict[str, Any]], clause: str, key: Any, descending: bool
) -> None:
    expected = python_order(seeded, key, descending)
    clause = f"{clause} {'DESC' if descending else 'ASC'}"
    pages = []
    for offset in range(0, N, 5):  # offsets past the middle are read from the end
        page = experiment_page(store, ExperimentFilter(order_by=(clause,), limit=5, offset=offset))
        assert page["total"] == N
        pages.extend(row["experiment_id"] for row in page["items"])
    assert pages == expected


def test_metric_order_keeps_nan_after_numbers_on_every_page(
    store: TrackingStore, seeded: dict[int, dict[str, Any]]
) -> None:
    whole = experiment_page(store, ExperimentFilter(order_by=("metrics.validation.accuracy DESC",), limit=N))
    ids = [row["experiment_id"] for row in whole["items"]]
    finite = [i for i in ids if seeded[i]["accuracy"] is not None and math.isfinite(seeded[i]["accuracy"])]
    assert ids[: len(finite)] == finite
    assert [seeded[i]["accuracy"] for i in finite] == sorted(
        (seeded[i]["accuracy"] for i in finite), reverse=True
    )
    assert all(
        seeded[i]["accuracy"] is None
        for i in ids[-sum(1 for f in seeded.values() if f["accuracy"] is None) :]
    )
    paged = [
        row["experiment_id"]
        for offset in range(0, N, 7)
        for row in experiment_page(
            store, ExperimentFilter(order_by=("metrics.validation.accuracy DESC",), limit=7, offset=offset)
        )["items"]
    ]
    assert paged == ids


def test_columns_carry_metric_summaries_and_params(
    store: TrackingStore, seeded: dict[int, dict[str, Any]]
) -> None:
    page = experiment_page(
        store,
        ExperimentFilter(
            search="metrics.validation.accuracy > 0",
            columns=("metrics.accuracy", "params.model.depth,attributes.duration"),
        ),
    )
    assert [c["canonical"] for c in page["columns"]] == [
        "metrics.validation.accuracy",
        "params.model.depth",
        "attributes.duration",
    ]
    for row in page["items"]:
        facts = seeded[row["experiment_id"]]
        summary = row["columns"]["metrics.accuracy"]
        assert summary["value"] == facts["accuracy"] and summary["min"] == 0.1 and summary["points"] == 2
        assert row["columns"]["params.model.depth"] == facts["params"].get("model", {}).get("depth")


def test_column_choices_offer_logged_keys(store: TrackingStore, seeded: dict[int, dict[str, Any]]) -> None:
    choices = column_choices(store)
    assert choices["metrics"] == ["metrics.test.loss", "metrics.validation.accuracy"]
    assert "params.model.depth" in choices["params"] and "params.lr" in choices["params"]
    assert "params.api_key" not in choices["params"]


def test_count_stops_at_the_cap_and_the_last_page_reads_from_the_end(
    store: TrackingStore, seeded: dict[int, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mltrack.store.reads import experiment_list

    order = ("attributes.name DESC",)
    every = [
        row["experiment_id"]
        for row in experiment_page(store, ExperimentFilter(order_by=order, limit=N))["items"]
    ]
    assert len(every) == N
    monkeypatch.setattr(experiment_list, "COUNT_CAP", 7)
    first = experiment_page(store, ExperimentFilter(order_by=order, limit=5))
    assert (first["total"], first["total_exact"]) == (7, False)
    assert [row["experiment_id"] for row in first["items"]] == every[:5]
    deep = experiment_page(
        store, ExperimentFilter(order_by=order, limit=5, offset=20)
    )  # past the cap: forward
    assert [row["experiment_id"] for row in deep["items"]] == every[20:]
    last = experiment_page(store, ExperimentFilter(order_by=order, limit=5, from_end=True))
    assert [row["experiment_id"] for row in last["items"]] == every[-5:]
    assert (last["from_end"], last["offset"]) == (True, 0)
    before = experiment_page(store, ExperimentFilter(order_by=order, limit=5, offset=5, from_end=True))
    assert [row["experiment_id"] for row in before["items"]] == every[-10:-5]
    newest = experiment_page(store, ExperimentFilter(limit=5, from_end=True))  # newest first: the oldest 5
    assert [row["experiment_id"] for row in newest["items"]] == sorted(seeded, reverse=True)[-5:]
    monkeypatch.setattr(experiment_list, "COUNT_CAP", 1000)
    exact = experiment_page(store, ExperimentFilter(order_by=order, limit=5, from_end=True))
    assert (exact["total"], exact["total_exact"], exact["from_end"], exact["offset"]) == (
        N,
        True,
        False,
        N - 5,
    )
    assert [row["experiment_id"] for row in exact["items"]] == every[-5:]


# -- tag values (revision 0006) -------------------------------------------------------------------------

TAG_VALUE_CASES: list[tuple[str, Any]] = [
    ("tags.stage = 'prod'", lambda f, stage: stage == "prod"),
    ("tags.stage != 'prod'", lambda f, stage: stage not in (None, "prod")),
    ("tags.stage LIKE 'p%'", lambda f, stage: stage is not None and stage.startswith("p")),
    ("tags.stage ILIKE 'P%'", lambda f, stage: stage is not None and stage.lower().startswith("p")),
    ("tags.stage IN ('dev', 'prod')", lambda f, stage: stage in ("dev", "prod")),
    ("tags.stage NOT IN ('dev')", lambda f, stage: stage not in (None, "dev")),
    ("tags.stage IS NOT NULL", lambda f, stage: stage is not None),
    ("tags.base = 'base'", lambda f, stage: False),  # the seeded labels have no value
    ("tags.base != 'x'", lambda f, stage: False),
    ("tags.base IS NOT NULL", lambda f, stage: f["tagged"]),
    ("tags.base IS NOT NULL and tags.stage = 'prod'", lambda f, stage: f["tagged"] and stage == "prod"),
    (
        "tags.stage = 'prod' and params.lr > 0.05",
        lambda f, stage: stage == "prod" and f["params"]["lr"] > 0.05,
    ),
]


def test_tag_values_beside_labels_match_python(
    store: TrackingStore, seeded: dict[int, dict[str, Any]]
) -> None:
    """Values set on the seeded experiments (the seeded rows are unchanged: a new tag only)."""
    stages = {
        i: ["prod", "dev", "Prod", "pre"][f["i"] % 4] if f["i"] % 3 else None for i, f in seeded.items()
    }
    for experiment, stage in stages.items():
        if stage is not None:
            store.set_tag("experiment", experiment, "stage", stage)
    wrong = {}
    for text, predicate in TAG_VALUE_CASES:
        expected = {i for i, facts in seeded.items() if predicate(facts, stages[i])}
        got = found(store, text)
        if got != expected:
            wrong[text] = {"missing": sorted(expected - got), "extra": sorted(got - expected)}
    assert not wrong


@pytest.mark.parametrize(
    "text",
    [
        "tags.base = 'x'' OR ''1''=''1'",
        "tags.`base' OR '1'='1` = 'x'",
        "tags.base IN ('a'); DELETE FROM tag_assignments; --')",
        "tags.`base`` = 1 --` LIKE '%'",
    ],
)
def test_tag_injection_finds_nothing_and_changes_nothing(
    store: TrackingStore, seeded: dict[int, dict[str, Any]], text: str
) -> None:
    try:
        assert found(store, text) == set()
    except SearchError:
        pass  # refused before any SQL: as good
    assert found(store, "tags.base IS NOT NULL") == {i for i, f in seeded.items() if f["tagged"]}


# -- the MLflow tie-break (the MLflow adapter's run order) ----------------------------------------------


def test_mlflow_tiebreak_orders_ties_by_start_time_then_id_as_text(store: TrackingStore) -> None:
    """``tiebreak="mlflow"``: rows equal on every key by start time (newest first), then by id as text
    ('10' < '2'), as MLflow's SQL store orders runs; every page, read from either end, agrees."""
    dataset = store.register_dataset("ties", "d", "Tabular")
    model = store.register_model("ties", "m", "PyTorch")
    same = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    starts = [same] * 11 + [same + dt.timedelta(hours=1), same - dt.timedelta(hours=1)]
    ids = []
    for i, start in enumerate(starts):
        ids.append(store.create_experiment("ties", f"run-{i}", model, dataset, start_time=start))
        if i % 2:
            store.set_status(ids[-1], "Running")
    start_of = dict(zip(ids, starts, strict=True))
    assert max(ids) >= 10  # ids of two digits: text order differs from number order
    mlflow_order = sorted(ids, key=lambda i: (-start_of[i].timestamp(), str(i)))
    assert mlflow_order != sorted(ids, key=lambda i: (-start_of[i].timestamp(), -i))

    def page_of(**more: Any) -> list[int]:
        return [row["experiment_id"] for row in experiment_page(store, ExperimentFilter(**more))["items"]]

    assert page_of(order_by=("attributes.start_time DESC",), tiebreak="mlflow", limit=50) == mlflow_order
    assert page_of(tiebreak="mlflow", limit=50) == mlflow_order  # no key: the tie-break alone
    pages = [
        page_of(order_by=("start_time DESC",), tiebreak="mlflow", limit=4, offset=offset)
        for offset in range(0, len(ids), 4)
    ]
    assert [i for page in pages for i in page] == mlflow_order  # deep pages are read from the end
    assert page_of(tiebreak="mlflow", limit=4, from_end=True) == mlflow_order[-4:]
    by_status = sorted(ids, key=lambda i: (ids.index(i) % 2 == 0, -start_of[i].timestamp(), str(i)))
    assert page_of(order_by=("attributes.status DESC",), tiebreak="mlflow", limit=50) == by_status
    ascending = sorted(ids, key=lambda i: (start_of[i].timestamp(), str(i)))  # start time a key: no second
    assert page_of(order_by=("attributes.start_time ASC",), tiebreak="mlflow", limit=50) == ascending
    for i in ids:
        store.log_metrics(i, {"acc": 0.5 if i % 3 else 0.9}, evaluation_set="test")
    by_metric = sorted(ids, key=lambda i: (-(0.5 if i % 3 else 0.9), -start_of[i].timestamp(), str(i)))
    assert page_of(order_by=("metrics.acc DESC",), tiebreak="mlflow", limit=50) == by_metric
    # ours is unchanged: ties newest (highest id) first
    ours = sorted(ids, key=lambda i: (-start_of[i].timestamp(), -i))
    assert page_of(order_by=("attributes.start_time DESC",), limit=50) == ours
    with pytest.raises(MLTrackError, match="tiebreak"):
        experiment_page(store, ExperimentFilter(tiebreak="text"))
