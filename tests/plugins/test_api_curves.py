"""The curve routes through the real app and Airflow auth: downsampled series (old fields kept), zoom ranges,
several experiments, the full series as CSV and JSON, 422s naming the bad key/points, hidden DAGs as 404, and
the experiment page inlining only the downsampled data."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid

import pytest

from tests.plugins.conftest import dag_reader_headers
from tests.reliability._support import mltrack_client, token

pytestmark = pytest.mark.postgres

READABLE = "curves_readable"
HIDDEN = "curves_hidden"
LONG = 10_000


def seed(url: str) -> dict[str, int]:
    from airflow_mltrack.store import TrackingStore

    store = TrackingStore.from_url(url)
    model = store.register_model("curves", "net", "PyTorch")
    data = store.register_dataset("curves", "rows", "Tabular")

    def experiment(name: str, dag_id: str) -> int:
        return store.create_experiment("curves", name, model, data, dag_id=dag_id, run_id="r", task_id=name)

    ids = {"long": experiment("long", READABLE), "short": experiment("short", READABLE)}
    ids["hidden"] = experiment("hidden", HIDDEN)
    loss = [1.0 / (1 + s) for s in range(LONG)]
    loss[4321] = float("nan")
    store.log_metrics(ids["long"], {"loss": loss}, evaluation_set="train")
    for i, name in enumerate(("accuracy", "f1", "precision", "recall", "=HYPERLINK(0)")):
        store.log_metrics(ids["long"], {name: [0.5 + i / 100 + s / 1000 for s in range(20)]}, "validation")
    store.log_metrics(ids["short"], {"loss": [0.9, 0.5, 0.4]}, evaluation_set="train")
    store.log_metrics(ids["hidden"], {"loss": [0.3, 0.2]}, evaluation_set="train")
    return ids


@pytest.fixture(scope="module")
def site(ui_airflow_home, pg_server, pg_template):
    from airflow_mltrack.store.engine import dispose_engines

    name = f"curves_{uuid.uuid4().hex[:10]}"
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


def test_experiment_curves_downsampled_with_the_old_fields(site, admin):
    client, ids = site
    body = client.get(f"/mltrack/api/experiments/{ids['long']}/curves", headers=admin).json()
    by_key = {f"{c['evaluation_set']}/{c['name']}": c for c in body}
    assert len(by_key) == 6
    loss = by_key["train/loss"]
    assert {"experiment_id", "name", "evaluation_set", "steps", "values"} <= set(loss)
    assert loss["downsampled"] is True and loss["count"] == LONG and len(loss["steps"]) == 1000
    assert (loss["first_step"], loss["last_step"]) == (0, LONG - 1)
    assert loss["steps"][:2] == [9, 19] and loss["values"][0] == pytest.approx(1 / 10)
    assert loss["mins"][0] == pytest.approx(1 / 10) and loss["maxs"][0] == pytest.approx(1.0)
    assert loss["gaps"] == [4321] and len(loss["relative"]) == 1000
    short = by_key["validation/accuracy"]
    assert short["downsampled"] is False and short["mins"] is None and len(short["steps"]) == 20


def test_keys_points_and_zoom(site, admin):
    client, ids = site
    url = f"/mltrack/api/experiments/{ids['long']}/curves"
    [loss] = client.get(url, params={"key": "train/loss", "points": 50}, headers=admin).json()
    assert len(loss["steps"]) == 50 and loss["steps"][0] == 199
    zoom = {"key": "train/loss", "points": 50, "start": 4300, "end": 4349}
    [near] = client.get(url, params=zoom, headers=admin).json()
    assert near["downsampled"] is False and near["steps"] == list(range(4300, 4350))
    assert near["values"][21] == "NaN" and near["gaps"] == [4321]  # NaN as in every API answer
    two = client.get(url, params=[("key", "train/loss"), ("key", "validation/f1")], headers=admin).json()
    assert {(c["evaluation_set"], c["name"]) for c in two} == {("train", "loss"), ("validation", "f1")}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("key=loss", "key"),
        ("key=holdout/loss", "key"),
        ("key=train/", "key"),
        ("start=10&end=5", "end"),
        ("points=0", "points"),
        ("points=2001", "points"),
        ("points=many", "points"),
    ],
)
def test_bad_key_or_points_is_422_naming_it(site, admin, query, field):
    client, ids = site
    response = client.get(f"/mltrack/api/experiments/{ids['long']}/curves?{query}", headers=admin)
    assert response.status_code == 422, response.text
    body = response.json()
    named = body.get("field") or body["detail"][0]["loc"][-1]
    assert named == field


def test_several_experiments(site, admin):
    client, ids = site
    pair = f"{ids['long']},{ids['short']}"
    body = client.get(f"/mltrack/api/curves?ids={pair}&key=train/loss&points=10", headers=admin).json()
    assert [c["experiment_id"] for c in body] == sorted([ids["long"], ids["short"]])
    assert [len(c["steps"]) for c in body] == [10, 3]
    old = client.get(f"/mltrack/api/compare/curves?ids={pair}", headers=admin).json()
    assert len(old) == 7 and max(len(c["steps"]) for c in old) == 1000
    one = client.get(f"/mltrack/api/curves?ids={ids['long']}", headers=admin)
    assert one.status_code == 422 and one.json()["field"] == "ids"
    many = ",".join(str(i) for i in range(1, 102))
    assert client.get(f"/mltrack/api/curves?ids={many}", headers=admin).status_code == 422
    missing = client.get(f"/mltrack/api/curves?ids={ids['long']},999999", headers=admin)
    assert missing.status_code == 404 and missing.json()["value"] == [999999]


def test_hidden_dag_is_404_and_anonymous_401(site, admin, one_dag_reader):
    client, ids = site
    hidden, visible = ids["hidden"], ids["short"]
    for path in (
        f"/mltrack/api/experiments/{hidden}/curves",
        f"/mltrack/api/experiments/{hidden}/curves.csv",
        f"/mltrack/api/experiments/{hidden}/curves.json",
        f"/mltrack/api/curves?ids={hidden},{visible}",
        f"/mltrack/api/compare/curves?ids={hidden},{visible}",
    ):
        assert client.get(path).status_code == 401, path
        response = client.get(path, headers=one_dag_reader)
        assert response.status_code == 404, (path, response.text)
        assert client.get(path, headers=admin).status_code == 200, path
    assert client.get(f"/mltrack/api/experiments/{visible}/curves", headers=one_dag_reader).status_code == 200


def test_full_series_downloads(site, admin):
    client, ids = site
    base = f"/mltrack/api/experiments/{ids['long']}"
    response = client.get(f"{base}/curves.csv?key=train/loss", headers=admin)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == LONG and [int(r["step"]) for r in rows] == list(range(LONG))
    assert rows[4321]["value"] == "NaN" and float(rows[3]["value"]) == pytest.approx(0.25)
    every = list(csv.DictReader(io.StringIO(client.get(f"{base}/curves.csv", headers=admin).text)))
    assert len(every) == LONG + 5 * 20
    assert {r["name"] for r in every} >= {"'=HYPERLINK(0)", "loss"}  # no formula for a spreadsheet
    body = json.loads(client.get(f"{base}/curves.json", headers=admin).text)
    series = {f"{s['evaluation_set']}/{s['name']}": s for s in body}
    assert len(series) == 6 and len(series["train/loss"]["points"]) == LONG
    step, value, recorded_at = series["train/loss"]["points"][4321]
    assert (step, value) == (4321, "NaN") and recorded_at
    assert series["validation/f1"]["points"][0][:2] == [0, pytest.approx(0.51)]
    bad = client.get(f"{base}/curves.json?key=nope", headers=admin)
    assert bad.status_code == 422 and bad.json()["field"] == "key"


def test_experiment_page_inlines_only_downsampled_data(site, admin):
    client, ids = site
    response = client.get(f"/mltrack/experiments/{ids['long']}", headers=admin)
    assert response.status_code == 200
    assert len(response.content) <= 200_000, len(response.content)
    block = re.search(
        r'<script type="application/json" id="mltrack-curves">(.*?)</script>', response.text, re.S
    )
    assert block
    curves = {c["name"]: c for c in json.loads(block.group(1))}
    assert len(curves["loss"]["steps"]) == 1000 and curves["loss"]["downsampled"] is True
    assert curves["loss"]["gaps"] == [4321] and curves["loss"]["values"][432] == pytest.approx(1 / 4330)
    assert all(c["start_time"] is None or isinstance(c["start_time"], float) for c in curves.values())
    assert "<" not in block.group(1)
    html = response.text
    assert f'api/experiments/{ids["long"]}/curves.csv?key=train/loss"' in html
    assert f'api/experiments/{ids["long"]}/curves.json?key=validation/%3DHYPERLINK%280%29"' in html
    assert 'data-api="../api/"' in html
