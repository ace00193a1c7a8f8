"""The runs explorer's API and page side: ``filter=``, ``order_by=``, ``columns=`` on /api/experiments and
the experiments page, the CSV export, errors with the token's position, bounds, hidden parameters and DAGs.

The real app behind the real auth manager (as tests/plugins/test_api.py), once on SQLite and once on
PostgreSQL, each seeded with ``seed()`` and a project of its own (``runs-search``).
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.plugins.conftest import HIDDEN_DAG, seed

PROJECT = "runs-search"
INJECTION = '=HYPERLINK("http://evil.example","x")'
RUNS = {  # name: (params, test accuracy, validation loss or None)
    "r-adam-fast": ({"lr": 0.1, "optimizer": "adam", "net": {"depth": 18}}, 0.91, 0.30),
    "r-adam-slow": ({"lr": 0.001, "optimizer": "adam", "net": {"depth": 50}}, 0.95, 0.20),
    "r-sgd": ({"lr": 0.01, "optimizer": "sgd", "shift": -0.5}, 0.70, None),
    INJECTION: ({"lr": 0.05, "optimizer": "@sum(A1)"}, 0.60, 0.90),
}


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")],
)
def seeded(request, tmp_path_factory):
    """(url, ids) of a tracking store with seed() and the runs-search project; a raw secret written past
    the store's redaction (as an older version could have) under ``api_key``."""
    import uuid

    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.engine import dispose_engines
    from airflow_mltrack.store.migrations import upgrade
    from airflow_mltrack.store.redaction import NO_REDACTION

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('runs') / 'mltrack.db'}"
        upgrade(url)
        name = None
    else:
        server, template = request.getfixturevalue("pg_server"), request.getfixturevalue("pg_template")
        name = f"runs_{uuid.uuid4().hex[:12]}"
        url = server.create_database(name, template=template, strategy="FILE_COPY")
    ids = seed(url)
    store = TrackingStore.from_url(url)
    raw = TrackingStore.from_url(url, redaction=NO_REDACTION)
    model = store.register_model(PROJECT, "net", "PyTorch", version="1")
    data = store.register_dataset(PROJECT, "data", "Tabular")
    for run, (params, accuracy, loss) in RUNS.items():
        ids[run] = raw.create_experiment(PROJECT, run, model, data, {**params, "api_key": "s3cr3t-value"})
        store.set_status(ids[run], "Running")
        store.log_metrics(ids[run], {"accuracy": accuracy}, evaluation_set="test")
        if loss is not None:
            store.log_metrics(ids[run], {"loss": [loss * 2, loss]}, evaluation_set="validation")
        store.set_status(ids[run], "Completed")
    store.tag("experiment", ids["r-adam-slow"], ["best"])
    ids["hidden-run"] = store.create_experiment(
        PROJECT,
        "hidden-run",
        model,
        data,
        {"lr": 0.1, "optimizer": "adam"},
        dag_id=HIDDEN_DAG,
        run_id="r1",
        task_id="t",
    )
    store.log_metrics(ids["hidden-run"], {"accuracy": 0.99}, evaluation_set="test")
    dispose_engines()
    yield url, ids
    dispose_engines()
    if name is not None:
        request.getfixturevalue("pg_server").drop_database(name)


@pytest.fixture(scope="module")
def client(ui_airflow_home, seeded):
    from tests.reliability._support import mltrack_client

    with mltrack_client(seeded[0]) as test_client:
        yield test_client


def _headers(user: str) -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=user, role=user))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def admin(client):
    return _headers("admin")


@pytest.fixture
def viewer(client, monkeypatch):
    """A viewer who may not read HIDDEN_DAG."""
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    original = manager.is_authorized_dag

    def is_authorized_dag(*, method, user, access_entity=None, details=None):
        if user.get_name() == "viewer" and details is not None and details.id == HIDDEN_DAG:
            return False
        return original(method=method, user=user, access_entity=access_entity, details=details)

    monkeypatch.setattr(manager, "is_authorized_dag", is_authorized_dag)
    return _headers("viewer")


def _list(client, headers, **query):
    response = client.get("/mltrack/api/experiments", params={"project": PROJECT, **query}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _names(body) -> list[str]:
    return [e["name"] for e in body["items"]]


def test_filter_selects_matching_rows(client, admin):
    body = _list(client, admin, filter="metrics.test.accuracy > 0.9 and params.optimizer = 'adam'")
    assert sorted(_names(body)) == ["hidden-run", "r-adam-fast", "r-adam-slow"] and body["total"] == 3
    assert body["filter"] == "metrics.test.accuracy > 0.9 and params.optimizer = 'adam'"
    assert _names(_list(client, admin, filter="params.lr = '0.01'")) == ["r-sgd"]
    assert _names(_list(client, admin, filter="tags.best IS NOT NULL")) == ["r-adam-slow"]
    assert _names(_list(client, admin, filter="params.net.depth >= 50")) == ["r-adam-slow"]
    either = _list(client, admin, filter="(params.optimizer = 'sgd' or metrics.validation.loss < 0.25)")
    assert sorted(_names(either)) == ["r-adam-slow", "r-sgd"]
    # The older quick filters still apply, AND-ed with the expression.
    assert _list(client, admin, filter="params.optimizer = 'adam'", status="Completed")["total"] == 2
    assert _names(_list(client, admin, filter="attributes.name LIKE 'r-adam%'", param="lr=0.1")) == [
        "r-adam-fast"
    ]


def test_order_by_sorts_and_flips(client, admin):
    down = _names(_list(client, admin, order_by="metrics.test.accuracy DESC"))
    assert down == ["hidden-run", "r-adam-slow", "r-adam-fast", "r-sgd", INJECTION]
    up = _names(_list(client, admin, order_by="metrics.test.accuracy ASC"))
    assert up == [INJECTION, "r-sgd", "r-adam-fast", "r-adam-slow", "hidden-run"]
    # Missing values last either way; two clauses (repeated or comma-separated) break ties.
    by_loss = _names(_list(client, admin, order_by="metrics.validation.loss DESC", filter="params.lr > 0"))
    assert by_loss[-2:] == ["r-sgd", "hidden-run"] or by_loss[-2:] == ["hidden-run", "r-sgd"]
    assert by_loss[:3] == [INJECTION, "r-adam-fast", "r-adam-slow"]
    two = ["params.optimizer ASC", "metrics.test.accuracy ASC"]
    repeated = _names(_list(client, admin, order_by=two))
    assert repeated == _names(_list(client, admin, order_by=", ".join(two)))
    assert repeated[0] == INJECTION and repeated[-1] == "r-sgd"  # '@sum(A1)' < 'adam' < 'sgd'
    assert repeated[1:4] == ["r-adam-fast", "r-adam-slow", "hidden-run"]
    # Paging through a sort gives every row once, in order.
    pages = [
        _names(_list(client, admin, order_by="attributes.name ASC", limit=2, offset=o)) for o in (0, 2, 4)
    ]
    assert sum(pages, []) == sorted(["hidden-run", "r-adam-fast", "r-adam-slow", "r-sgd", INJECTION])


def test_columns_carry_metric_and_param_values(client, admin, seeded):
    ids = seeded[1]
    body = _list(
        client,
        admin,
        columns=["metrics.test.accuracy,params.lr", "params.net.depth", "metrics.validation.loss"],
        order_by="metrics.test.accuracy DESC",
    )
    assert [c["canonical"] for c in body["columns"]] == [
        "metrics.test.accuracy",
        "params.lr",
        "params.net.depth",
        "metrics.validation.loss",
    ]
    rows = {e["name"]: e["columns"] for e in body["items"]}
    slow = rows["r-adam-slow"]
    assert slow["metrics.test.accuracy"]["value"] == pytest.approx(0.95)
    assert slow["metrics.validation.loss"]["value"] == pytest.approx(0.20)
    assert slow["metrics.validation.loss"]["max"] == pytest.approx(0.40)
    assert slow["metrics.validation.loss"]["points"] == 2
    assert (slow["params.lr"], slow["params.net.depth"]) == (0.001, 50)
    assert rows["r-sgd"]["metrics.validation.loss"] is None and rows["r-sgd"]["params.net.depth"] is None
    # A NaN final value travels as a string (strict JSON).
    nan = client.get(
        "/mltrack/api/experiments",
        params={"columns": "metrics.test.accuracy", "filter": f"attributes.experiment_id = {ids['xss']}"},
        headers=admin,
    ).json()
    assert nan["items"][0]["columns"]["metrics.test.accuracy"]["value"] == "NaN"


@pytest.mark.parametrize(
    "field, expression, token",
    [
        ("filter", "metrics.test.accuracy >> 0.9", ">"),
        ("filter", "params.optimizer = 'adam' and", "end of expression"),
        ("filter", "params.lr = 0.1 and colour = 'red'", "colour"),
        ("filter", "attributes.status = 'Exploded'", "'Exploded'"),
        ("filter", "params.optimizer = 'adam", "'adam"),
        ("filter", "metrics.test.accuracy > 0.9; DROP TABLE experiments", ";"),
        ("order_by", "metrics.test.accuracy SIDEWAYS", "SIDEWAYS"),
        ("order_by", "tags.best DESC", "tags.best"),
        ("columns", "params.lr extra", "extra"),
    ],
)
def test_bad_expression_is_422_naming_token_and_position(client, admin, field, expression, token):
    response = client.get("/mltrack/api/experiments", params={field: expression}, headers=admin)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and body["token"] == token, body
    position = body["position"]
    assert isinstance(position, int) and f"position {position}" in body["detail"]
    if token == "end of expression":
        assert position == len(expression)
    else:
        assert expression[position:].startswith(token), (expression, position, token)
    # The same mistake on the CSV export is the same 422, before any download starts.
    export = client.get("/mltrack/api/experiments.csv", params={field: expression}, headers=admin)
    assert export.status_code == 422 and export.json()["position"] == position


def test_bounds(client, admin):
    long = "params.lr = 1 and " * 222 + "params.lr = 1"  # 4009 characters
    assert len(long) > 4000
    response = client.get("/mltrack/api/experiments", params={"filter": long}, headers=admin)
    assert response.status_code == 422 and response.json()["field"] == "filter"
    assert len(response.text) < 2000  # the input is not echoed back whole
    ok = ["attributes.name ASC"] * 20
    assert client.get("/mltrack/api/experiments", params={"order_by": ok}, headers=admin).status_code == 200
    many = client.get("/mltrack/api/experiments", params={"order_by": ok + ok[:1]}, headers=admin)
    assert many.status_code == 422 and many.json()["field"] == "order_by"
    packed = client.get(
        "/mltrack/api/experiments", params={"order_by": ", ".join(ok + ok[:1])}, headers=admin
    )
    assert packed.status_code == 422 and packed.json()["field"] == "order_by"
    columns = [f"params.p{i}" for i in range(50)]
    assert (
        client.get("/mltrack/api/experiments", params={"columns": columns}, headers=admin).status_code == 200
    )
    too_many = client.get(
        "/mltrack/api/experiments", params={"columns": ",".join([*columns, "params.x"])}, headers=admin
    )
    assert too_many.status_code == 422 and too_many.json()["field"] == "columns"


def test_hidden_parameters_cannot_be_searched_sorted_or_shown(client, admin):
    for field, value in (
        ("filter", "params.api_key = 's3cr3t-value'"),
        ("filter", "params.api_key LIKE 's%'"),
        ("filter", "params.optimizer = '***'"),
        ("order_by", "params.api_key ASC"),
    ):
        response = client.get("/mltrack/api/experiments", params={field: value}, headers=admin)
        assert response.status_code == 422, (field, value, response.text)
        assert "hidden" in response.json()["detail"]
    shown = client.get(
        "/mltrack/api/experiments", params={"project": PROJECT, "columns": "params.api_key"}, headers=admin
    )
    assert "s3cr3t-value" not in shown.text
    if shown.status_code == 200:
        assert {e["columns"]["params.api_key"] for e in shown.json()["items"]} <= {"***", None}
    export = client.get(
        "/mltrack/api/experiments.csv", params={"project": PROJECT, "columns": "params.lr"}, headers=admin
    )
    assert export.status_code == 200 and "s3cr3t-value" not in export.text


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    return list(csv.reader(io.StringIO(response.text)))


def test_csv_export_follows_filter_order_and_columns(client, admin, monkeypatch):
    from airflow_mltrack.plugins import export

    monkeypatch.setattr(export, "EXPORT_PAGE", 2)  # several pages from five rows
    query = {
        "project": PROJECT,
        "order_by": "metrics.test.accuracy DESC",
        "columns": ["metrics.test.accuracy", "params.lr", "params.shift", "params.optimizer"],
        "limit": 1,
        "offset": 3,  # ignored: the export holds every matching row
    }
    rows = _csv(client.get("/mltrack/api/experiments.csv", params=query, headers=admin))
    header, body = rows[0], rows[1:]
    assert header[:6] == ["id", "name", "project", "status", "start", "duration"]
    assert header[-4:] == ["metrics.test.accuracy", "params.lr", "params.shift", "params.optimizer"]
    listing = _list(client, admin, order_by="metrics.test.accuracy DESC")
    assert [r[1] for r in body] == ["hidden-run", "r-adam-slow", "r-adam-fast", "r-sgd", "'" + INJECTION]
    assert [int(r[0]) for r in body] == [e["experiment_id"] for e in listing["items"]]
    by_name = {r[1]: dict(zip(header, r, strict=True)) for r in body}
    slow = by_name["r-adam-slow"]
    assert (slow["metrics.test.accuracy"], slow["params.lr"], slow["status"]) == (
        "0.95",
        "0.001",
        "Completed",
    )
    assert slow["start"].endswith("UTC") or len(slow["start"]) >= 19  # the full start time
    assert by_name["r-sgd"]["params.shift"] == "-0.5"  # a number is not a formula
    # Formula injection: cells starting with = + - @ are written as text.
    injected = by_name["'" + INJECTION]
    assert injected["params.optimizer"] == "'@sum(A1)"
    assert by_name["hidden-run"]["params.shift"] == ""
    filtered = _csv(
        client.get(
            "/mltrack/api/experiments.csv",
            params={"project": PROJECT, "filter": "params.optimizer = 'adam'"},
            headers=admin,
        )
    )
    assert sorted(r[1] for r in filtered[1:]) == ["hidden-run", "r-adam-fast", "r-adam-slow"]


def test_hidden_dag_rows_never_appear(client, viewer):
    listing = _list(
        client, viewer, filter="metrics.test.accuracy > 0.5", order_by="metrics.test.accuracy DESC"
    )
    assert "hidden-run" not in _names(listing) and listing["total"] == 4
    assert _list(client, viewer, filter=f"attributes.dag_id = '{HIDDEN_DAG}'")["total"] == 0
    export = client.get(
        "/mltrack/api/experiments.csv",
        params={"filter": "params.lr > 0", "columns": "params.lr"},
        headers=viewer,
    )
    names = [r[1] for r in _csv(export)[1:]]
    assert "hidden-run" not in names and "secret-experiment" not in names and "r-sgd" in names
    page = client.get("/mltrack/experiments", params={"filter": "params.lr > 0"}, headers=viewer)
    assert page.status_code == 200 and "hidden-run" not in page.text and "r-sgd" in page.text


def test_page_shows_filter_columns_sort_links_and_export(client, admin):
    page = client.get(
        "/mltrack/experiments",
        params={
            "project": PROJECT,
            "filter": "params.optimizer = 'adam'",
            "columns": ["metrics.test.accuracy", "params.lr"],
            "order_by": "metrics.test.accuracy DESC",
        },
        headers=admin,
    )
    assert page.status_code == 200, page.text[:500]
    html = page.text
    assert 'value="params.optimizer = &#39;adam&#39;"' in html  # the box keeps the expression, escaped
    assert "r-adam-slow" in html and "r-sgd" not in html
    assert 'aria-sort="descending"' in html and "↓" in html
    # Clicking the sorted header again flips it; the columns and filter stay in the link.
    assert "order_by=metrics.test.accuracy+ASC" in html
    assert "columns=metrics.test.accuracy&amp;columns=params.lr" in html
    assert 'href="./api/experiments.csv?' in html
    assert 'title="final 0.95 at step' in html or 'title="final 0.95 · min' in html
    assert '<input type="checkbox" name="columns" value="params.net.depth"' in html  # offered, unchecked
    assert 'id="select-page"' in html and 'src="./static/runs.js"' in html


def test_page_keeps_the_older_sort_links(client, admin):
    page = client.get(
        "/mltrack/experiments",
        params={"project": PROJECT, "sort": "test/accuracy", "order": "asc"},
        headers=admin,
    )
    assert page.status_code == 200, page.text[:500]
    html = page.text
    header = re.search(r'<th class="sortable num" aria-sort="(\w+)" data-key="metrics.test.accuracy">', html)
    assert header and header.group(1) == "ascending"  # the sort's metric is shown as a sorted column
    order = [html.index(f">{name}</bdi>") for name in ("r-sgd", "r-adam-fast", "r-adam-slow")]
    assert order == sorted(order)
    assert "order_by=metrics.test.accuracy+DESC" in html  # a click flips it, in the new form


def test_page_shows_a_bad_expression_inline_with_its_position(client, admin):
    expression = "params.lr = 0.1 andd params.optimizer = 'adam'"
    page = client.get("/mltrack/experiments", params={"filter": expression}, headers=admin)
    assert page.status_code == 422
    html = page.text
    assert "Invalid request" not in html and 'id="search-error"' in html  # the page, not the error page
    assert 'id="search"' in html and 'data-error-position="16" data-error-length="4"' in html
    assert "andd" in html and f"\n<mark>{' ' * 16}^^^^</mark>" in html
    bad_column = client.get("/mltrack/experiments", params={"columns": "params.lr junk"}, headers=admin)
    assert bad_column.status_code == 422 and 'id="search-error"' in bad_column.text
    assert "columns=&#39;junk&#39;" in bad_column.text and "data-error-position" not in bad_column.text


def test_cells_as_shown():
    import datetime as dt

    from airflow_mltrack.plugins.export import safe_cell
    from airflow_mltrack.plugins.runs_table import column_cell, human_duration, metric_cell, pager, param_cell

    moment = dt.datetime(2026, 12, 3, 10, 41, 7, tzinfo=dt.UTC)
    start = {"key": "attributes.start_time", "canonical": "attributes.start_time", "kind": "time"}
    assert column_cell(start, moment) == ("2026-12-03 10:41 UTC", "2026-12-03 10:41:07 UTC")
    assert [human_duration(s) for s in (None, 0.4, 12, 252, 7500, 200000)] == [
        "—",
        "0.4s",
        "12s",
        "4m 12s",
        "2h 05m",
        "2d 7h",
    ]
    assert metric_cell({"value": 0.5, "min": 0.1, "max": float("nan"), "step": 3, "points": 4}) == (
        "0.5",
        "final 0.5 at step 3 · min 0.1 · max NaN · 4 points",
    )
    text, title = param_cell("x" * 100)
    assert len(text) == 60 and text.endswith("…") and title == "x" * 100
    assert param_cell({"a": [1, 2]}) == ('{"a": [1, 2]}', '{"a": [1, 2]}')
    assert [safe_cell(c) for c in ("=1+1", "+cmd", "-x", "@A1", "\tx", "-0.5", "+1e3", "a=b")] == [
        "'=1+1",
        "'+cmd",
        "'-x",
        "'@A1",
        "'\tx",
        "-0.5",
        "+1e3",
        "a=b",
    ]

    def page(offset: int, total: int, shown: int, exact: bool = True, from_end: bool = False) -> dict:
        items = [{}] * shown
        return {
            "offset": offset,
            "limit": 50,
            "total": total,
            "items": items,
            "total_exact": exact,
            "from_end": from_end,
        }

    first = pager(page(0, 120, 50))
    assert (first["first"], first["prev"], first["next"]["offset"], first["last"]["offset"]) == (
        None,
        None,
        50,
        100,
    )
    assert first["text"] == "1–50 of 120"
    last = pager(page(100, 120, 20))
    assert (last["first"]["offset"], last["prev"]["offset"], last["next"], last["last"]) == (
        0,
        50,
        None,
        None,
    )
    # Past the count cap: "Last" reads from the end, and the pages near the end count back from it.
    capped = pager(page(50, 10_000, 50, exact=False))
    assert capped["next"] == {"offset": 100, "from_end": None} and capped["last"] == {
        "offset": 0,
        "from_end": 1,
    }
    assert capped["text"] == "51–100 of more than 10,000"
    end = pager(page(0, 10_000, 50, exact=False, from_end=True))
    assert end["prev"] == {"offset": 50, "from_end": 1} and end["next"] is None and end["last"] is None
    assert end["first"] == {"offset": 0, "from_end": None}


def test_past_the_count_cap_last_pages_read_from_the_end(client, admin, monkeypatch):
    """Over COUNT_CAP matches the total is a lower bound; "Last" (from_end) still shows the true last rows,
    in the API, the page and the CSV export (which does not stop at the cap)."""
    from airflow_mltrack.plugins import export
    from airflow_mltrack.store.reads import experiment_list

    order = "attributes.name ASC"
    every = _names(_list(client, admin, order_by=order))
    monkeypatch.setattr(experiment_list, "COUNT_CAP", 2)
    monkeypatch.setattr(export, "EXPORT_PAGE", 2)
    body = _list(client, admin, order_by=order, limit=2)
    assert (body["total"], body["total_exact"], _names(body)) == (2, False, every[:2])
    last = _list(client, admin, order_by=order, limit=2, from_end="true")
    assert (last["from_end"], _names(last)) == (True, every[-2:])
    query = {"project": PROJECT, "order_by": order}
    page = client.get("/mltrack/experiments", params=query, headers=admin).text
    assert "of more than 2" in page and "from_end=1" in page
    rows = _csv(client.get("/mltrack/api/experiments.csv", params=query, headers=admin))
    assert [r[1].lstrip("'") for r in rows[1:]] == every
