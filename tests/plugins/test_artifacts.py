"""Artifacts in the ML Tracking app, through the real app and Airflow auth (SimpleAuthManager, real JWTs) on
PostgreSQL: the experiment page lists them with thumbnails, downloads need auth, raster images are inline,
HTML and SVG are attachments, every answer is sandboxed; a DAG the user may not read answers 404. The
MLflow artifact proxy (``/mlflow/api/2.0/mlflow-artifacts/artifacts/...``): list, download, upload
(streamed), delete, with write rights checked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.plugins.conftest import DEMO_DAG, HIDDEN_DAG, dag_reader_headers
from tests.reliability._support import enable_auth, mltrack_client, token

pytestmark = pytest.mark.postgres

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32  # served by type, never sniffed
HTML = b"<html><script>alert(document.cookie)</script></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
PROXY = "/mltrack/mlflow/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def app(tracking_pg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(client, ids, store): the app on a fresh store with a visible, a hidden and a DAG-less experiment,
    each with artifacts stored under a temporary ``artifact_root``."""
    from airflow_mltrack.hooks.artifacts import ArtifactStorage
    from airflow_mltrack.store import TrackingStore

    enable_auth(tmp_path)
    monkeypatch.setenv("AIRFLOW__MLTRACK__ARTIFACT_ROOT", f"file://{tmp_path}/artifact-root")
    store = TrackingStore.from_url(tracking_pg)
    data = store.register_dataset("vision", "cifar", "Image")
    model = store.register_model("vision", "resnet", "PyTorch")
    ids = {
        "visible": store.create_experiment(
            "vision", "seen", model, data, dag_id=DEMO_DAG, run_id="r1", task_id="train"
        ),
        "hidden": store.create_experiment(
            "vision", "secret", model, data, dag_id=HIDDEN_DAG, run_id="r1", task_id="train"
        ),
        "plain": store.create_experiment("vision", "no-dag", model, data),
    }
    ids["project"] = store.get_experiment(ids["visible"])["project_id"]
    storage = ArtifactStorage(store)
    for key in ("visible", "hidden"):
        storage.write(ids[key], "plots/loss curve.png", PNG, "image/png")
        storage.write(ids[key], "report.html", HTML, "text/html")
        storage.write(ids[key], "logo.svg", SVG, "image/svg+xml")
        storage.write(ids[key], "data/x.csv", b"a,b\n1,2\n")
    with mltrack_client(tracking_pg) as client:
        yield client, ids, store


def _bearer(user: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, user)}"}


def test_page_lists_artifacts_with_thumbnails(app) -> None:
    client, ids, _ = app
    page = client.get(f"/mltrack/experiments/{ids['visible']}", headers=_bearer())
    assert page.status_code == 200
    html = page.text
    assert 'id="artifact-table"' in html
    for path in ("plots/loss%20curve.png", "report.html", "logo.svg", "data/x.csv"):
        assert f"api/experiments/{ids['visible']}/artifacts/{path}" in html, path
    assert hashlib.sha256(HTML).hexdigest()[:12] in html
    # the PNG is a thumbnail; the SVG and the HTML are not shown, only linked for download
    assert 'artifacts/plots/loss%20curve.png" alt="plots/loss curve.png"' in html
    assert 'logo.svg" alt=' not in html and 'report.html" alt=' not in html

    empty = client.get(f"/mltrack/experiments/{ids['plain']}", headers=_bearer())
    assert "No artifacts were logged" in empty.text


def test_downloads_image_inline_everything_else_attachment(app) -> None:
    client, ids, _ = app
    base = f"/mltrack/api/experiments/{ids['visible']}/artifacts"
    listing = client.get(base, headers=_bearer()).json()
    assert [i["path"] for i in listing["items"]] == [
        "data/x.csv",
        "logo.svg",
        "plots/loss curve.png",
        "report.html",
    ]
    assert listing["items"][0]["checksum"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()

    image = client.get(f"{base}/plots/loss%20curve.png", headers=_bearer())
    assert image.status_code == 200 and image.content == PNG
    assert image.headers["content-type"] == "image/png"
    assert image.headers["content-disposition"].startswith("inline;")
    for path, body in (("report.html", HTML), ("logo.svg", SVG), ("data/x.csv", b"a,b\n1,2\n")):
        answer = client.get(f"{base}/{path}", headers=_bearer())
        assert answer.status_code == 200 and answer.content == body
        assert answer.headers["content-type"] == "application/octet-stream", path
        assert answer.headers["content-disposition"].startswith("attachment;"), path
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["content-security-policy"].startswith("sandbox")
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.headers["content-security-policy"].startswith("sandbox")

    client.cookies.set("_token", token("admin", "admin"))
    try:
        cookie = client.get(f"{base}/report.html")
    finally:
        client.cookies.clear()
    assert cookie.status_code == 200 and cookie.content == HTML  # the UI's cookie may read
    assert client.get(f"{base}/missing.txt", headers=_bearer()).status_code == 404
    escape = client.get(f"{base}/..%2F..%2F{ids['hidden']}%2Fartifacts%2Freport.html", headers=_bearer())
    assert escape.status_code == 422 and "'..'" in escape.text


def test_no_auth_is_401_and_hidden_dag_is_404(app, monkeypatch: pytest.MonkeyPatch) -> None:
    client, ids, _ = app
    base = f"/mltrack/api/experiments/{ids['hidden']}/artifacts"
    assert client.get(f"{base}/report.html").status_code == 401
    assert client.get(base).status_code == 401
    assert client.get(f"{PROXY}/{ids['project']}/{ids['hidden']}/artifacts/report.html").status_code == 401

    viewer = dag_reader_headers(monkeypatch, DEMO_DAG)
    assert client.get(f"{base}/report.html", headers=viewer).status_code == 404
    assert client.get(base, headers=viewer).status_code == 404
    assert client.get(f"/mltrack/experiments/{ids['hidden']}", headers=viewer).status_code == 404
    hidden = client.get(f"{PROXY}/{ids['project']}/{ids['hidden']}/artifacts/report.html", headers=viewer)
    assert hidden.status_code == 404 and hidden.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    seen = client.get(f"/mltrack/api/experiments/{ids['visible']}/artifacts/report.html", headers=viewer)
    assert seen.status_code == 200 and seen.content == HTML


def test_mlflow_proxy_list_download_upload_delete(app, monkeypatch: pytest.MonkeyPatch) -> None:
    client, ids, store = app
    run = f"{ids['project']}/{ids['visible']}/artifacts"
    for prefix in (PROXY, PROXY.replace("/api/", "/ajax-api/")):
        listing = client.get(prefix, params={"path": run}, headers=_bearer())
        assert listing.status_code == 200, listing.text
        assert listing.json()["files"] == [
            {"path": "data", "is_dir": True},
            {"path": "logo.svg", "is_dir": False, "file_size": len(SVG)},
            {"path": "plots", "is_dir": True},
            {"path": "report.html", "is_dir": False, "file_size": len(HTML)},
        ]
    sub = client.get(PROXY, params={"path": f"{run}/plots"}, headers=_bearer()).json()
    assert sub["files"] == [{"path": "loss curve.png", "is_dir": False, "file_size": len(PNG)}]

    got = client.get(f"{PROXY}/{run}/report.html", headers=_bearer())
    assert got.status_code == 200 and got.content == HTML
    assert got.headers["content-disposition"].startswith("attachment;")

    body = b"x" * (3 * 1024 * 1024 + 17)  # more than one write buffer
    put = client.put(f"{PROXY}/{run}/big/blob.bin", content=body, headers=_bearer())
    assert put.status_code == 200 and put.json() == {}
    row = store.get_artifact(ids["visible"], "big/blob.bin")
    assert (row["size_bytes"], row["checksum"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert Path(row["storage_uri"].removeprefix("file://")).read_bytes() == body

    # writes: a Bearer token and the DAG's edit permission
    client.cookies.set("_token", token("admin", "admin"))
    try:
        refused = client.put(f"{PROXY}/{run}/c.txt", content=b"c")
    finally:
        client.cookies.clear()
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    viewer = client.put(f"{PROXY}/{run}/c.txt", content=b"c", headers=_bearer("viewer"))
    assert viewer.status_code == 403 and viewer.json()["error_code"] == "PERMISSION_DENIED"
    bad = client.put(f"{PROXY}/{run}/a/../../x.txt", content=b"c", headers=_bearer())
    assert bad.status_code in (400, 404)
    wrong_project = client.get(f"{PROXY}/999/{ids['visible']}/artifacts/report.html", headers=_bearer())
    assert (
        wrong_project.status_code == 404 and wrong_project.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    )
    malformed = client.get(PROXY, params={"path": "not-a-run"}, headers=_bearer())
    assert malformed.status_code == 400 and malformed.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    with pytest.raises(Exception):  # noqa: B017,PT011 - the store refused: nothing recorded
        store.get_artifact(ids["visible"], "c.txt")

    deleted = client.delete(f"{PROXY}/{run}/big", headers=_bearer())
    assert deleted.status_code == 200
    assert [r["path"] for r in store.list_artifacts(ids["visible"], "big")] == []
    assert not Path(row["storage_uri"].removeprefix("file://")).exists()
    assert json.loads(client.get(PROXY, params={"path": f"{run}/big"}, headers=_bearer()).text) == {
        "files": []
    }
