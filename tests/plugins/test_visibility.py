"""What a user who may read one DAG sees, probed from outside through the real app and Airflow auth.

The store holds more hidden rows than a page (505 experiments of a DAG the user may not read, all ranked
above the readable ones), tags and a deployment only hidden DAGs wrote, non-finite final values and
versions that are not numbers.
"""

from __future__ import annotations

import uuid

import pytest

from tests.plugins.conftest import dag_reader_headers
from tests.reliability._support import mltrack_client, token

pytestmark = pytest.mark.postgres

READABLE = "nightly_training"
HIDDEN = "red_team_training"
HIDDEN_RUNS = 505  # more than a page (500)


def seed(url: str) -> dict[str, int]:
    from sqlalchemy import update

    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.tables import endpoint_models

    store = TrackingStore.from_url(url)
    data = store.register_dataset("ranked", "reviews", "Text")
    sgd = store.register_model("ranked", "classifier", "sklearn", version="sgd-539ac701")
    numbered = store.register_model("ranked", "classifier", "sklearn", version="2.1")
    hidden_ids = []
    for i in range(HIDDEN_RUNS):
        e = store.create_experiment(
            "ranked",
            f"hidden-{i}",
            sgd,
            data,
            {"lr": 0.1},
            dag_id=HIDDEN,
            run_id=f"r{i}",
            task_id="train",
            tags=["red-team-only"] if i == 0 else None,
        )
        store.log_metrics(e, {"accuracy": 0.95 + i / 100_000})
        hidden_ids.append(e)
    ids = {"hidden": hidden_ids[0]}
    for name, value in (
        ("low", 0.5),
        ("mid", 0.6),
        ("high", 0.7),
        ("diverged", float("inf")),
        ("nan", float("nan")),
    ):
        ids[name] = store.create_experiment(
            "ranked",
            name,
            numbered,
            data,
            {"lr": 0.01},
            dag_id=READABLE,
            run_id="r1",
            task_id=name,
            tags=["shared"],
        )
        store.log_metrics(ids[name], {"accuracy": value})
    store.deploy_model("ranked", "shadow", sgd, 100, dag_id=HIDDEN, run_id="r1")
    store.deploy_model("ranked", "prod", numbered, 100, dag_id=READABLE, run_id="r1")
    store.deploy_model("ranked", "shadow", numbered, 10, dag_id=HIDDEN, run_id="r2")
    with store.engine.begin() as conn:
        conn.execute(
            update(endpoint_models).where(endpoint_models.c.dag_id == READABLE).values(kind="deploy")
        )
    store.record_preprocessing_job("ranked", "clean-hidden", data, dag_id=HIDDEN, run_id="r1", task_id="c")
    store.record_preprocessing_job(
        "ranked", "clean-readable", data, dag_id=READABLE, run_id="r1", task_id="c"
    )
    return ids


@pytest.fixture(scope="module")
def site(ui_airflow_home, pg_server, pg_template):
    from airflow_mltrack.store.engine import dispose_engines

    name = f"vis_{uuid.uuid4().hex[:10]}"
    url = pg_server.create_database(name, template=pg_template, strategy="FILE_COPY")
    ids = seed(url)
    with mltrack_client(url) as client:
        yield client, ids
    dispose_engines()
    pg_server.drop_database(name)


@pytest.fixture
def one_dag_reader(site, monkeypatch):
    """Headers of 'viewer', who may read DAG ``READABLE`` only."""
    return dag_reader_headers(monkeypatch, READABLE)


def test_leaderboard_ranks_the_readable_rows_behind_a_page_of_hidden_ones(site, one_dag_reader):
    client, _ = site
    board = client.get(
        "/mltrack/api/leaderboard", params={"project": "ranked", "metric": "accuracy"}, headers=one_dag_reader
    ).json()
    assert [(r["rank"], r["name"]) for r in board] == [(1, "high"), (2, "mid"), (3, "low")]


def test_leaderboard_leaves_out_non_finite_final_values(site):
    client, _ = site
    admin = {"Authorization": f"Bearer {token()}"}
    for mode in ("max", "min"):
        board = client.get(
            "/mltrack/api/leaderboard",
            params={"project": "ranked", "metric": "accuracy", "mode": mode, "limit": 500},
            headers=admin,
        ).json()
        assert {r["name"] for r in board}.isdisjoint({"diverged", "nan"}), mode
        assert all(isinstance(r["value"], float) for r in board), mode
    by_sort = client.get(
        "/mltrack/api/experiments",
        params={"project": "ranked", "sort": "test/accuracy", "limit": 1},
        headers=admin,
    ).json()
    assert by_sort["items"][0]["name"] == f"hidden-{HIDDEN_RUNS - 1}"  # not the infinite one


def test_tags_models_and_deployments_of_hidden_dags_are_not_shown(site, one_dag_reader):
    client, _ = site
    page = client.get("/mltrack/experiments", headers=one_dag_reader).text
    assert "shared" in page and "red-team-only" not in page
    models = {(m["version"]): m for m in client.get("/mltrack/api/models", headers=one_dag_reader).json()}
    assert models["sgd-539ac701"]["serving"] == []  # deployed only by the hidden DAG
    assert [s["endpoint"] for s in models["2.1"]["serving"]] == ["prod"]
    assert "shadow" not in client.get("/mltrack/models", headers=one_dag_reader).text
    endpoints = {e["name"]: e for e in client.get("/mltrack/api/deployments", headers=one_dag_reader).json()}
    assert endpoints["shadow"]["active"] == [] and endpoints["shadow"]["history"] == []
    assert [(a["model_version"], a["kind"]) for a in endpoints["prod"]["history"]] == [("2.1", "deploy")]
    jobs = client.get("/mltrack/api/preprocessing-jobs", headers=one_dag_reader).json()
    assert [j["name"] for j in jobs] == ["clean-readable"]


def test_compare_answers_hidden_ids_as_it_answers_missing_ones(site, one_dag_reader):
    client, ids = site
    hidden, missing, mine = ids["hidden"], 999_999, ids["high"]
    answers = {}
    for label, probe in (("hidden", hidden), ("missing", missing)):
        response = client.get(f"/mltrack/api/compare?ids={probe},{mine}", headers=one_dag_reader)
        body = response.json()
        answers[label] = (response.status_code, body["field"], body["reason"], body["value"] == [probe])
    assert answers["hidden"] == answers["missing"] == (404, "ids", answers["missing"][2], True)
    both = client.get(f"/mltrack/api/compare?ids={missing},{hidden},{mine}", headers=one_dag_reader)
    assert both.status_code == 404 and both.json()["value"] == [missing, hidden]


def test_versions_are_prefixed_with_v_only_when_they_are_numbers(site):
    client, ids = site
    admin = {"Authorization": f"Bearer {token()}"}
    deployments = client.get("/mltrack/deployments", headers=admin).text
    assert '<bdi>classifier</bdi> <span class="ver">sgd-539ac701</span>' in deployments
    assert "vsgd-" not in deployments
    assert '<bdi>classifier</bdi> <span class="ver">v2.1</span>' in deployments
    detail = client.get(f"/mltrack/experiments/{ids['hidden']}", headers=admin).text
    assert "sgd-539ac701" in detail and "vsgd-" not in detail
    history = deployments.split("History", 1)[1]
    assert "<td>deploy</td>" in history
