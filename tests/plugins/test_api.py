"""The ML Tracking app with the real Airflow auth manager (SimpleAuthManager) on a seeded PostgreSQL store.

Mounted at /mltrack under a parent app, as Airflow mounts it. Tokens are real JWTs from the auth manager.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.plugins.conftest import DEMO_DAG, DEMO_RUN, HIDDEN_DAG, XSS_NAME

pytestmark = pytest.mark.postgres


def _log_artifact(url: str, ids: dict, root) -> None:
    """One artifact of the baseline experiment (its download routes are in :func:`routes`)."""
    from airflow_mltrack.hooks.artifacts import ArtifactStorage
    from airflow_mltrack.store import TrackingStore

    store = TrackingStore.from_url(url)
    ArtifactStorage(store, root=f"file://{root}").write(ids["baseline"], "notes.txt", b"notes")
    ids["project"] = store.get_experiment(ids["baseline"])["project_id"]


@pytest.fixture(scope="module")
def client(ui_airflow_home, seeded_pg, tmp_path_factory):
    import os

    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_mltrack.plugins import auth
    from airflow_mltrack.plugins.app import create_app

    url, ids = seeded_pg
    _log_artifact(url, ids, tmp_path_factory.mktemp("artifacts"))
    saved = os.environ.get("AIRFLOW_CONN_MLTRACK_DEFAULT")
    os.environ["AIRFLOW_CONN_MLTRACK_DEFAULT"] = json.dumps({"conn_type": "mltrack", "extra": {"url": url}})
    auth.clear_store_cache()
    purge_cached_app()
    parent = FastAPI()
    manager = init_auth_manager(parent)
    manager.init()
    parent.mount("/mltrack", create_app())
    with TestClient(parent) as test_client:
        yield test_client
    auth.clear_store_cache()
    purge_cached_app()
    if saved is None:
        os.environ.pop("AIRFLOW_CONN_MLTRACK_DEFAULT", None)
    else:
        os.environ["AIRFLOW_CONN_MLTRACK_DEFAULT"] = saved


def token_for(username: str, role: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))


@pytest.fixture(scope="module")
def admin(client):
    return {"Authorization": f"Bearer {token_for('admin', 'admin')}"}


@pytest.fixture
def ids(seeded_pg):
    return seeded_pg[1]


def routes(ids) -> list[str]:
    e, t = ids["baseline"], ids["tuned"]
    return [
        "/mltrack/",
        "/mltrack/projects",
        "/mltrack/experiments",
        f"/mltrack/experiments/{e}",
        f"/mltrack/compare?ids={e}&ids={t}",
        f"/mltrack/run?dag_id={DEMO_DAG}&run_id={DEMO_RUN}",
        f"/mltrack/task-instance?dag_id={DEMO_DAG}&run_id={DEMO_RUN}&task_id=nothing",
        "/mltrack/datasets",
        f"/mltrack/datasets/{ids['raw']}/lineage",
        f"/mltrack/experiments/{e}/lineage",
        f"/mltrack/models/{ids['v1']}/lineage",
        "/mltrack/models",
        "/mltrack/deployments",
        "/mltrack/schema",
        "/mltrack/api/projects",
        "/mltrack/api/experiments",
        f"/mltrack/api/experiments/{e}",
        f"/mltrack/api/experiments/{e}/curves",
        f"/mltrack/api/experiments/{e}/curves.csv?key=validation/loss",
        f"/mltrack/api/experiments/{e}/curves.json?key=validation/loss",
        f"/mltrack/api/curves?ids={e},{t}&key=validation/loss",
        "/mltrack/api/experiments.csv",
        f"/mltrack/api/compare?ids={e},{t}",
        f"/mltrack/api/compare/curves?ids={e},{t}",
        "/mltrack/api/leaderboard?project=vision&metric=accuracy",
        "/mltrack/api/metric-keys",
        "/mltrack/api/datasets",
        f"/mltrack/api/datasets/{ids['raw']}/lineage",
        "/mltrack/api/models",
        "/mltrack/api/preprocessing-jobs",
        "/mltrack/api/deployments",
        "/mltrack/api/schema",
        f"/mltrack/api/experiments/{e}/artifacts",
        f"/mltrack/api/experiments/{e}/artifacts/notes.txt",
        *(
            f"/mltrack/mlflow/{api}/2.0/mlflow-artifacts/artifacts{tail}"
            for api in ("api", "ajax-api")
            for tail in (
                f"?path={ids['project']}/{e}/artifacts",
                f"/{ids['project']}/{e}/artifacts/notes.txt",
            )
        ),
        f"/mltrack/mlflow/get-artifact?run_id={e}&path=notes.txt",
        "/mltrack/openapi.json",
        "/mltrack/static/mltrack.css",
        "/mltrack/static/vendor/uplot-1.6.32/uPlot.iife.min.js",
    ]


def auth_only_routes(ids) -> list[tuple[str, str]]:
    """Routes whose signed-in answer here is the route's own refusal, not 200 (no model registry, no such
    logged model, an empty upload): checked for authentication only."""
    e = ids["baseline"]
    return [
        ("GET", "/mltrack/mlflow/model-versions/get-artifact?name=m&version=1&path=x"),
        ("GET", "/mltrack/mlflow//model-versions/get-artifact?name=m&version=1&path=x"),
        (
            "GET",
            "/mltrack/mlflow/ajax-api/2.0/mlflow/logged-models/m-999999/artifacts/files?artifact_file_path=x",
        ),
        ("POST", f"/mltrack/mlflow/ajax-api/2.0/mlflow/upload-artifact?run_uuid={e}&path=x.txt"),
    ]


def _matching(served: set, path: str) -> set:
    """The app's route paths that ``path`` (an /mltrack URL) is served by."""
    route_path = path.split("?")[0].removeprefix("/mltrack")
    return {
        candidate
        for candidate in served
        if candidate and re.fullmatch(re.sub(r"\{[^}:]+(:path)?\}", ".+", candidate), route_path)
    }


def test_every_route_needs_a_signed_in_user(client, admin, ids):
    app = client.app.routes[-1].app  # the mounted ML Tracking app
    served = {getattr(r, "path", None) for r in app.routes}
    checked = set()
    for path in routes(ids):
        anonymous = client.get(path)
        assert anonymous.status_code == 401, (path, anonymous.status_code, anonymous.text[:200])
        bad = client.get(path, headers={"Authorization": "Bearer not-a-jwt"})
        assert bad.status_code in (401, 403), path
        ok = client.get(path, headers=admin)
        assert ok.status_code == 200, (path, ok.status_code, ok.text[:500])
        checked |= _matching(served, path)
    for method, path in auth_only_routes(ids):
        assert client.request(method, path).status_code == 401, path
        assert client.request(method, path, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (
            401,
            403,
        )
        signed_in = client.request(method, path, headers=admin)
        assert signed_in.status_code not in (401, 403), (path, signed_in.status_code, signed_in.text[:300])
        checked |= _matching(served, path)
    assert served - checked <= {None}, f"routes without a check: {served - checked}"


def test_cookie_auth_as_the_ui_sends_it(client, ids):
    client.cookies.set("_token", token_for("viewer", "viewer"))
    try:
        response = client.get(f"/mltrack/experiments/{ids['baseline']}")
        assert response.status_code == 200
        assert "baseline" in response.text
    finally:
        client.cookies.clear()


def test_html_401_explains_sign_in(client):
    response = client.get("/mltrack/experiments")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert "not signed in" in response.text and "../auth/login" in response.text
    api = client.get("/mltrack/api/experiments")
    assert api.status_code == 401 and api.json() == {"detail": "Not authenticated"}


def test_projects_json(client, admin):
    projects = {p["name"]: p for p in client.get("/mltrack/api/projects", headers=admin).json()}
    assert set(projects) == {"vision", "empty-project"}
    assert projects["vision"]["datasets"] == 2 and projects["vision"]["models"] == 2
    assert projects["vision"]["experiments"] == 4 and projects["vision"]["endpoints"] == 1
    assert projects["empty-project"]["experiments"] == 0


def test_experiments_filters_sort_and_pagination(client, admin, ids):
    get = lambda **q: client.get("/mltrack/api/experiments", params=q, headers=admin)  # noqa: E731
    everything = get().json()
    assert everything["total"] == 4
    assert [e["experiment_id"] for e in everything["items"]] == sorted(
        [ids["baseline"], ids["tuned"], ids["xss"], ids["hidden"]], reverse=True
    )
    assert get(status="Failed").json()["items"][0]["name"] == XSS_NAME
    assert {e["name"] for e in get(dag_id=DEMO_DAG).json()["items"]} == {"baseline", "tuned"}
    assert [e["name"] for e in get(tag="tuned").json()["items"]] == ["tuned"]
    assert [e["name"] for e in get(param="learning_rate=0.1").json()["items"]] == ["baseline"]
    assert [e["name"] for e in get(param=["optimizer=adam", "learning_rate=0.01"]).json()["items"]] == [
        "tuned"
    ]

    by_acc = get(sort="test/accuracy").json()
    assert [e["name"] for e in by_acc["items"]] == ["secret-experiment", "tuned", "baseline", XSS_NAME]
    assert by_acc["items"][1]["sort_value"] == pytest.approx(0.88)
    assert by_acc["items"][3]["sort_value"] == "NaN"  # non-finite values travel as strings
    ascending = get(sort="validation/loss", order="asc").json()["items"]
    assert [e["name"] for e in ascending[:2]] == ["tuned", "baseline"]
    assert ascending[0]["sort_value"] == pytest.approx(0.8 * 0.58)
    assert ascending[2]["sort_value"] is None  # no validation loss: last

    first = get(limit=2, sort="test/accuracy").json()
    second = get(limit=2, offset=2, sort="test/accuracy").json()
    assert first["total"] == second["total"] == 4
    assert [e["name"] for e in first["items"] + second["items"]] == [e["name"] for e in by_acc["items"]]


@pytest.mark.parametrize(
    "query, field",
    [
        ({"status": "Exploded"}, "status"),
        ({"sort": "accuracy"}, "sort"),
        ({"sort": "holdout/accuracy"}, "sort"),
        ({"param": "no-equals-sign"}, "param"),
        ({"limit": 0}, None),
        ({"order": "sideways"}, None),
    ],
)
def test_bad_filter_is_422(client, admin, query, field):
    response = client.get("/mltrack/api/experiments", params=query, headers=admin)
    assert response.status_code == 422, response.text
    if field:
        assert response.json()["field"] == field
        page = client.get("/mltrack/experiments", params=query, headers=admin)
        assert page.status_code == 422 and "Invalid request" in page.text


def test_experiment_detail_json(client, admin, ids):
    body = client.get(f"/mltrack/api/experiments/{ids['baseline']}", headers=admin).json()
    e = body["experiment"]
    assert (e["name"], e["project"], e["status"]) == ("baseline", "vision", "Completed")
    assert (e["dag_id"], e["run_id"], e["task_id"], e["map_index"]) == (
        DEMO_DAG,
        DEMO_RUN,
        "train_baseline",
        -1,
    )
    assert (e["model_name"], e["model_version"], e["dataset_name"]) == ("resnet", "1", "cifar-normalized")
    assert e["hyperparameters"] == {"learning_rate": 0.1, "optimizer": "adam", "epochs": 5}
    assert e["tags"] == ["baseline"]
    metrics = {(m["evaluation_set"], m["name"]): m for m in body["metrics"]}
    assert metrics[("train", "loss")]["value"] == pytest.approx(0.35)
    assert metrics[("train", "loss")]["step"] == 4 and metrics[("train", "loss")]["points"] == 5
    assert metrics[("validation", "loss")]["min_value"] == pytest.approx(0.58)
    assert metrics[("test", "accuracy")]["value"] == pytest.approx(0.81)

    curves = client.get(f"/mltrack/api/experiments/{ids['baseline']}/curves", headers=admin).json()
    assert {(c["evaluation_set"], c["name"]) for c in curves} == {("train", "loss"), ("validation", "loss")}
    train = next(c for c in curves if c["evaluation_set"] == "train")
    assert train["steps"] == [0, 1, 2, 3, 4] and train["values"][0] == pytest.approx(1.0)


def test_failed_experiment_shows_error(client, admin, ids):
    e = client.get(f"/mltrack/api/experiments/{ids['xss']}", headers=admin).json()["experiment"]
    assert (e["status"], e["error"]) == ("Failed", "CUDA out of memory <oops>")
    page = client.get(f"/mltrack/experiments/{ids['xss']}", headers=admin).text
    assert "CUDA out of memory &lt;oops&gt;" in page


def test_compare_json(client, admin, ids):
    a, b = ids["baseline"], ids["tuned"]
    body = client.get(f"/mltrack/api/compare?ids={a}&ids={b}", headers=admin).json()
    assert [e["experiment_id"] for e in body["experiments"]] == [a, b]
    assert body["differing"] == ["learning_rate"]
    assert body["hyperparameters"]["learning_rate"] == {str(a): 0.1, str(b): 0.01}
    acc = next(m for m in body["metrics"] if m["name"] == "accuracy")
    assert acc["values"] == {str(a): pytest.approx(0.81), str(b): pytest.approx(0.88)}
    page = client.get(f"/mltrack/compare?ids={a},{b}", headers=admin).text
    assert 'class="diff"' in page and "learning_rate" in page
    for bad in ("ids=1", f"ids={a}&ids=abc", "ids=" + ",".join(str(i) for i in range(1, 102))):
        response = client.get(f"/mltrack/api/compare?{bad}", headers=admin)
        assert response.status_code == 422 and response.json()["field"] == "ids", bad
    assert client.get(f"/mltrack/api/compare?ids={a},999999", headers=admin).status_code == 404


def test_unknown_ids_are_404(client, admin):
    for path in (
        "/mltrack/api/experiments/999999",
        "/mltrack/api/experiments/999999/curves",
        "/mltrack/api/datasets/999999/lineage",
    ):
        response = client.get(path, headers=admin)
        assert response.status_code == 404, path
        assert response.json()["value"] == 999999
    page = client.get("/mltrack/experiments/999999", headers=admin)
    assert page.status_code == 404 and "Not found" in page.text
    assert client.get("/mltrack/api/datasets?project=nope", headers=admin).status_code == 404


def test_leaderboard_lineage_deployments_schema(client, admin, ids):
    board = client.get(
        "/mltrack/api/leaderboard", params={"project": "vision", "metric": "accuracy"}, headers=admin
    )
    assert [r["name"] for r in board.json()] == ["secret-experiment", "tuned", "baseline"]

    lineage = client.get(f"/mltrack/api/datasets/{ids['raw']}/lineage", headers=admin).json()
    assert [j["name"] for j in lineage["downstream_jobs"]] == ["normalize"]
    assert {d["dataset_id"] for d in lineage["datasets"]} == {ids["raw"], ids["clean"]}
    assert {e["name"] for e in lineage["experiments"]} == {"baseline", "tuned", XSS_NAME, "secret-experiment"}
    assert lineage["experiments_total"] == 4
    assert {m["model_id"] for m in lineage["models"]} == {ids["v1"], ids["v2"]}
    assert len(lineage["deployments"]) == 4
    upstream = client.get(f"/mltrack/api/datasets/{ids['clean']}/lineage", headers=admin).json()
    assert [j["name"] for j in upstream["upstream_jobs"]] == ["normalize"]

    (prod,) = client.get("/mltrack/api/deployments", headers=admin).json()
    assert [(a["model_version"], a["traffic_percentage"]) for a in prod["active"]] == [("2", 100.0)]
    assert [
        (a["model_version"], a["traffic_percentage"], a["retired_at"] is None) for a in prod["history"]
    ] == [
        ("1", 100.0, False),
        ("1", 90.0, False),
        ("2", 10.0, False),
        ("2", 100.0, True),
    ]
    page = client.get("/mltrack/deployments", headers=admin).text
    assert '<bdi>resnet</bdi> <span class="ver">v2</span> · 100%' in page

    schema = client.get("/mltrack/api/schema", headers=admin).json()
    assert schema["dialect"] == "postgresql" and "erDiagram" in schema["mermaid"]
    assert "experiments" in client.get("/mltrack/schema", headers=admin).text


def test_run_and_task_tabs(client, admin, ids):
    run = client.get(f"/mltrack/run?dag_id={DEMO_DAG}&run_id={DEMO_RUN}", headers=admin)
    assert "baseline" in run.text and "tuned" in run.text and "secret-experiment" not in run.text
    assert f"compare?ids={ids['baseline']},{ids['tuned']}" in run.text
    task = client.get(
        f"/mltrack/task-instance?dag_id={DEMO_DAG}&run_id={DEMO_RUN}&task_id=train_tuned&map_index=-1",
        headers=admin,
        follow_redirects=False,
    )
    assert task.status_code == 303 and task.headers["location"] == f"experiments/{ids['tuned']}"
    none = client.get(
        f"/mltrack/task-instance?dag_id={DEMO_DAG}&run_id={DEMO_RUN}&task_id=other", headers=admin
    )
    assert none.status_code == 200 and "has no experiments" in none.text


def test_script_names_are_escaped(client, admin, ids):
    for path in (
        "/mltrack/experiments",
        f"/mltrack/experiments/{ids['xss']}",
        f"/mltrack/compare?ids={ids['xss']},{ids['baseline']}",
        f"/mltrack/datasets/{ids['raw']}/lineage",
    ):
        html = client.get(path, headers=admin).text
        assert XSS_NAME not in html, path
        assert "&lt;script&gt;alert(" in html, path
        assert "</script><b>" not in html, path  # a hyperparameter value cannot close the page's script
    compare = client.get(f"/mltrack/compare?ids={ids['xss']},{ids['baseline']}", headers=admin).text
    data = re.search(r'<script type="application/json" id="compare-data">(.*?)</script>', compare, re.S)
    assert data and "<" not in data.group(1)
    assert XSS_NAME in data.group(1).encode().decode("unicode_escape") or XSS_NAME in json.dumps(
        json.loads(data.group(1)), ensure_ascii=False
    )


def test_pages_link_relatively_and_into_airflow(client, admin, ids):
    html = client.get(f"/mltrack/experiments/{ids['baseline']}", headers=admin).text
    assert 'href="../experiments"' in html and 'href="../static/mltrack.css"' in html
    assert f'href="../../dags/{DEMO_DAG}/runs/{DEMO_RUN}"' in html
    assert f'href="../../dags/{DEMO_DAG}/runs/{DEMO_RUN}/tasks/train_baseline"' in html
    assert "uplot-1.6.32/uPlot.iife.min.js" in html and 'id="mltrack-curves"' in html
    assert 'href="/' not in html and 'src="/' not in html
    listing = client.get("/mltrack/experiments", headers=admin).text
    assert 'href="./experiments/' in listing or f'href="./experiments/{ids["baseline"]}"' in listing


def test_empty_states(client, admin):
    empty = client.get("/mltrack/experiments?project=empty-project", headers=admin)
    assert empty.status_code == 200 and "No experiments match these filters" in empty.text
    models = client.get("/mltrack/models?project=empty-project", headers=admin).text
    assert "No models in empty-project" in models
    deployments = client.get("/mltrack/deployments?project=empty-project", headers=admin).text
    assert "No endpoints in empty-project" in deployments


def test_dags_the_user_may_not_read_are_hidden(client, ids, monkeypatch):
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    original = manager.is_authorized_dag

    def is_authorized_dag(*, method, user, access_entity=None, details=None):
        if user.get_name() == "viewer" and details is not None and details.id == HIDDEN_DAG:
            return False
        return original(method=method, user=user, access_entity=access_entity, details=details)

    monkeypatch.setattr(manager, "is_authorized_dag", is_authorized_dag)
    viewer = {"Authorization": f"Bearer {token_for('viewer', 'viewer')}"}
    listing = client.get("/mltrack/api/experiments", headers=viewer).json()
    assert listing["total"] == 3 and "secret-experiment" not in {e["name"] for e in listing["items"]}
    assert client.get(f"/mltrack/api/experiments/{ids['hidden']}", headers=viewer).status_code == 404
    assert client.get(f"/mltrack/experiments/{ids['hidden']}", headers=viewer).status_code == 404
    assert (
        client.get(f"/mltrack/api/compare?ids={ids['hidden']},{ids['tuned']}", headers=viewer).status_code
        == 404
    )
    board = client.get("/mltrack/api/leaderboard?project=vision&metric=accuracy", headers=viewer).json()
    assert [r["name"] for r in board] == ["tuned", "baseline"] and board[0]["rank"] == 1
    assert HIDDEN_DAG not in client.get("/mltrack/experiments", headers=viewer).text
    projects = {p["name"]: p for p in client.get("/mltrack/api/projects", headers=viewer).json()}
    assert projects["vision"]["experiments"] == 3
    admin = {"Authorization": f"Bearer {token_for('admin', 'admin')}"}
    assert client.get(f"/mltrack/api/experiments/{ids['hidden']}", headers=admin).status_code == 200


def test_openapi_lists_the_api(client, admin):
    spec = client.get("/mltrack/openapi.json", headers=admin).json()
    assert spec["servers"] == [{"url": "/mltrack"}]
    assert {"/api/experiments", "/api/experiments/{experiment_id}", "/api/compare"} <= set(spec["paths"])
    assert not any(p.startswith("/experiments") for p in spec["paths"])  # pages are not API


def test_static_files_cannot_escape(client, admin):
    assert client.get("/mltrack/static/../auth.py", headers=admin).status_code == 404
    assert client.get("/mltrack/static/%2e%2e/auth.py", headers=admin).status_code == 404
    css = client.get("/mltrack/static/mltrack.css", headers=admin)
    assert css.headers["content-type"].startswith("text/css") and "prefers-color-scheme" in css.text
