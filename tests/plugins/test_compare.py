"""Compare through the real app and Airflow auth: 2 to 100 experiments (101 is a 422 naming the count),
hidden ids answered as missing ones, the page's parameter table (differing rows marked), best metric per
row, the data compare.js draws, and the DAG-run tab offering the first 100 of a run's experiments."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.plugins.conftest import dag_reader_headers
from tests.reliability._support import mltrack_client, token

pytestmark = pytest.mark.postgres

READABLE = "cmp_readable"
HIDDEN = "cmp_hidden"
RUN = "cmp_run_1"
RUN_SIZE = 105  # more experiments in one DAG run than a comparison takes


def seed(url: str) -> dict[str, list[int]]:
    from airflow_mltrack.store import TrackingStore

    store = TrackingStore.from_url(url)
    model = store.register_model("cmp", "gbm", "xgboost", version="1")
    data = store.register_dataset("cmp", "rows", "Tabular")
    runs = []
    for i in range(RUN_SIZE):
        e = store.create_experiment(
            "cmp",
            f"trial-{i}",
            model,
            data,
            {"lr": [0.1, 0.01, 0.001][i % 3], "depth": 3 + i % 5, "booster": "gbtree", "api_token": f"s{i}"},
            dag_id=READABLE,
            run_id=RUN,
            task_id="train",
            map_index=i,
        )
        store.log_metrics(e, {"loss": [1.0, 0.6, 0.3 + i / 1000]}, evaluation_set="validation")
        store.log_metrics(e, {"accuracy": 0.7 + i / 1000}, evaluation_set="test")
        runs.append(e)
    hidden = store.create_experiment("cmp", "hidden", model, data, dag_id=HIDDEN, run_id="r", task_id="t")
    return {"runs": runs, "hidden": [hidden]}


@pytest.fixture(scope="module")
def site(ui_airflow_home, pg_server, pg_template):
    from airflow_mltrack.store.engine import dispose_engines

    name = f"cmp_{uuid.uuid4().hex[:10]}"
    url = pg_server.create_database(name, template=pg_template, strategy="FILE_COPY")
    ids = seed(url)
    with mltrack_client(url) as client:
        yield client, ids
    dispose_engines()
    pg_server.drop_database(name)


@pytest.fixture
def admin(site):
    return {"Authorization": f"Bearer {token()}"}


@pytest.fixture
def one_dag_reader(site, monkeypatch):
    """Headers of 'viewer', who may read DAG ``READABLE`` only."""
    return dag_reader_headers(monkeypatch, READABLE)


def _ids(values) -> str:
    return ",".join(str(i) for i in values)


def test_two_to_a_hundred_experiments(site, admin):
    client, ids = site
    runs = ids["runs"]
    for count in (2, 100):
        response = client.get(f"/mltrack/api/compare?ids={_ids(runs[:count])}", headers=admin)
        assert response.status_code == 200, response.text
        body = response.json()
        assert [e["experiment_id"] for e in body["experiments"]] == runs[:count]
        assert sorted(body["differing"]) == ["depth", "lr"]
        assert body["hyperparameters"]["api_token"][str(runs[0])] == "***"  # secrets stay hidden
        metrics = {f"{m['evaluation_set']}/{m['name']}": m for m in body["metrics"]}
        assert metrics["validation/loss"]["lower_is_better"] is True
        assert metrics["validation/loss"]["best"] == [runs[0]]
        assert metrics["test/accuracy"]["best"] == [runs[count - 1]]
    repeated = "&".join(f"ids={i}" for i in runs[:100])  # the experiments list's GET form
    assert client.get(f"/mltrack/compare?{repeated}", headers=admin).status_code == 200


def test_a_hundred_and_one_is_a_422_naming_the_count(site, admin):
    client, ids = site
    for path in ("/mltrack/api/compare", "/mltrack/compare"):
        response = client.get(f"{path}?ids={_ids(ids['runs'][:101])}", headers=admin)
        assert response.status_code == 422, path
        assert "101" in response.text and str(ids["runs"][57]) not in response.text, path
    body = client.get(f"/mltrack/api/compare?ids={_ids(ids['runs'][:101])}", headers=admin).json()
    assert (body["field"], body["value"]) == ("ids", "101 ids")
    one = client.get(f"/mltrack/api/compare?ids={ids['runs'][0]},{ids['runs'][0]}", headers=admin)
    assert one.status_code == 422 and one.json()["value"] == "1 ids"


def test_hidden_ids_answer_as_missing_ones(site, one_dag_reader, admin):
    client, ids = site
    mine, hidden, missing = ids["runs"][0], ids["hidden"][0], 999_999
    answers = []
    for probe in (hidden, missing):
        response = client.get(f"/mltrack/api/compare?ids={mine},{probe}", headers=one_dag_reader)
        body = response.json()
        answers.append((response.status_code, body["field"], body["value"], body["reason"]))
    assert answers[0][:2] == answers[1][:2] == (404, "ids")
    assert answers[0][2] == [hidden] and answers[1][2] == [missing] and answers[0][3] == answers[1][3]
    both = client.get(f"/mltrack/api/compare?ids={missing},{hidden},{mine}", headers=one_dag_reader)
    assert both.status_code == 404 and both.json()["value"] == [missing, hidden]
    assert client.get(f"/mltrack/compare?ids={mine},{hidden}", headers=one_dag_reader).status_code == 404
    assert client.get(f"/mltrack/api/compare?ids={mine},{hidden}", headers=admin).status_code == 200


def test_page_marks_differing_rows_and_best_values(site, admin):
    client, ids = site
    runs = ids["runs"][:50]
    html = client.get(f"/mltrack/compare?ids={_ids(runs)}", headers=admin).text
    assert "<h1>Compare 50 experiments</h1>" in html
    rows = {key: kind for kind, key in re.findall(r'<tr class="(diff|same)" data-key="([^"]+)"', html)}
    assert rows == {"api_token": "same", "booster": "same", "depth": "diff", "lr": "diff"}
    assert 'id="param-table" class="compare-table only-diff"' in html  # differing rows only, at first
    assert "Show all 4 parameters" in html and "2 of 4 parameters differ" in html
    assert html.count('class="num best"') == 2  # one best cell per metric row
    block = re.search(r'<script type="application/json" id="compare-data">(.*?)</script>', html, re.S)
    chart = json.loads(block.group(1))
    assert chart["ids"] == runs and chart["default"] == "validation/loss"
    assert set(chart["params"]) == {"depth", "lr"}  # the axes of the parallel coordinates
    assert chart["params"]["lr"][str(runs[1])] == 0.01
    accuracy = next(m for m in chart["metrics"] if m["key"] == "test/accuracy")
    assert len(accuracy["values"]) == 50 and accuracy["lower"] is False
    assert 'src="./static/compare.js"' in html and "<script>" not in html


def test_run_tab_offers_the_first_hundred(site, admin):
    client, ids = site
    html = client.get(f"/mltrack/run?dag_id={READABLE}&run_id={RUN}", headers=admin).text
    link = re.search(r'href="\./compare\?ids=([0-9,]+)"', html)
    assert link and [int(i) for i in link.group(1).split(",")] == ids["runs"][:100]
    assert f"the first 100 of {RUN_SIZE}" in html
    assert client.get(f"/mltrack/compare?ids={link.group(1)}", headers=admin).status_code == 200
