"""The unmodified MLflow client logging artifacts over HTTP: runs served by the app's MLflow REST protocol
have ``artifact_uri`` ``mlflow-artifacts:/<experiment id>/<run id>/artifacts``, which the client sends to the
app's artifact proxy (a real uvicorn server, SQLite and PostgreSQL); a logged model without a run has
``mlflow-artifacts:/<experiment id>/models/<model id>/artifacts``, its own files, which MLflow's web-UI routes
``logged-models/<id>/artifacts/directories`` and ``.../files`` list and serve."""

from __future__ import annotations

import hashlib
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from airflow_mltrack.store import TrackingStore


def test_client_logs_lists_downloads_through_the_proxy(rest, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "nested").mkdir(parents=True)
    (source / "a.txt").write_text("alpha")
    big = bytes(range(256)) * 8192  # 2 MiB
    (source / "nested" / "weights.bin").write_bytes(big)
    mlflow.set_experiment("over-http")
    with mlflow.start_run() as run:
        run_id = run.info.run_id
        mlflow.log_artifacts(str(source), "inputs")
        mlflow.log_text("hello over http", "notes/readme.txt")
        mlflow.log_dict({"k": [1, 2]}, "config.json")
    got = mlflow.get_run(run_id)
    assert got.info.artifact_uri.startswith("mlflow-artifacts:/") and got.info.artifact_uri.endswith(
        f"/{run_id}/artifacts"
    )

    store = TrackingStore.from_url(rest.tracking_url)
    rows = {r["path"]: r for r in store.list_artifacts(int(run_id))}
    assert set(rows) == {"config.json", "inputs/a.txt", "inputs/nested/weights.bin", "notes/readme.txt"}
    assert rows["inputs/nested/weights.bin"]["checksum"] == hashlib.sha256(big).hexdigest()
    assert rows["inputs/nested/weights.bin"]["size_bytes"] == len(big)

    client = MlflowClient()
    top = {(f.path, f.is_dir) for f in client.list_artifacts(run_id)}
    assert top == {("config.json", False), ("inputs", True), ("notes", True)}
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(got.info.artifact_uri)
    assert [(f.path, f.file_size) for f in repo.list_artifacts("inputs/nested")] == [
        ("inputs/nested/weights.bin", len(big))
    ]
    out = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "dl")))
    assert (out / "inputs" / "nested" / "weights.bin").read_bytes() == big
    assert (out / "notes" / "readme.txt").read_text() == "hello over http"
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json") == {"k": [1, 2]}

    repo.delete_artifacts("inputs")
    assert sorted(r["path"] for r in store.list_artifacts(int(run_id))) == ["config.json", "notes/readme.txt"]


def test_reader_may_not_upload(rest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow.set_experiment("readers")
    with mlflow.start_run() as run:
        run_id = run.info.run_id
    (tmp_path / "x.txt").write_text("x")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", rest.token("viewer", "viewer"))
    # MLflow's HTTP artifact client raises requests' HTTPError with our MLflow-shaped body
    with pytest.raises(Exception, match="403.*PERMISSION_DENIED.*may not edit runs"):  # noqa: B017, PT011
        MlflowClient().log_artifact(run_id, str(tmp_path / "x.txt"))
    assert TrackingStore.from_url(rest.tracking_url).list_artifacts(int(run_id)) == []


def test_model_logged_without_a_run_over_http(rest, tmp_path: Path) -> None:
    import httpx
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    features, labels = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    info = mlflow.sklearn.log_model(
        LogisticRegression().fit(features, labels), name="runless", serialization_format="cloudpickle"
    )
    client = MlflowClient()
    model = client.get_logged_model(info.model_id)
    assert not model.source_run_id  # "" over REST
    assert (
        model.artifact_location == f"mlflow-artifacts:/{model.experiment_id}/models/{info.model_id}/artifacts"
    )
    store = TrackingStore.from_url(rest.tracking_url)
    model_id = int(info.model_id.removeprefix("m-"))
    rows = {r["path"]: r for r in store.list_artifacts(None, model_id=model_id)}
    assert {"MLmodel", "model.pkl"} <= set(rows)
    stored = tmp_path / "artifact-root" / model.experiment_id / "models" / info.model_id / "MLmodel"
    assert rows["MLmodel"]["checksum"] == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert list(mlflow.sklearn.load_model(f"models:/{info.model_id}").predict(features)) == [0, 0, 1, 1]

    headers = {"Authorization": f"Bearer {rest.token()}"}
    ajax = f"{rest.uri}/ajax-api/2.0/mlflow/logged-models/{info.model_id}/artifacts"
    with httpx.Client(headers=headers, timeout=60) as http:
        listed = http.get(f"{ajax}/directories").json()
        assert listed["root_uri"] == model.artifact_location
        assert {(f["path"], f.get("is_dir", False)) for f in listed["files"]} >= {("MLmodel", False)}
        assert {f["path"]: int(f["file_size"]) for f in listed["files"]}["MLmodel"] == rows["MLmodel"][
            "size_bytes"
        ]
        assert (
            http.get(f"{ajax}/directories", params={"artifact_directory_path": "nothing"})
            .json()
            .get("files", [])
            == []
        )
        got = http.get(f"{ajax}/files", params={"artifact_file_path": "MLmodel"})
        assert got.status_code == 200 and got.content == stored.read_bytes()
        assert info.model_id in got.text
        assert got.headers["content-security-policy"].startswith("sandbox")
        for params, status in (
            ({}, 400),
            ({"artifact_file_path": "../x"}, 400),
            ({"artifact_file_path": "no"}, 404),
        ):
            bad = http.get(f"{ajax}/files", params=params)
            assert bad.status_code == status, bad.text
        unknown = http.get(
            f"{rest.uri}/ajax-api/2.0/mlflow/logged-models/m-999/artifacts/files",
            params={"artifact_file_path": "MLmodel"},
        )
        assert unknown.status_code == 404 and unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        proxy = f"{rest.uri}/api/2.0/mlflow-artifacts/artifacts"
        wrong_project = http.get(proxy, params={"path": f"999/models/{info.model_id}/artifacts"})
        assert wrong_project.status_code == 404
        viewer = {"Authorization": f"Bearer {rest.token('viewer', 'viewer')}"}
        denied = http.put(
            f"{proxy}/{model.experiment_id}/models/{info.model_id}/artifacts/x.txt",
            content=b"x",
            headers=viewer,
        )
        assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED"
    assert "x.txt" not in {r["path"] for r in store.list_artifacts(None, model_id=model_id)}
    client.delete_logged_model(info.model_id)  # a deleted model's files are not served
    gone = httpx.get(f"{ajax}/files", params={"artifact_file_path": "MLmodel"}, headers=headers, timeout=60)
    assert gone.status_code == 404 and gone.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_web_ui_get_artifact_routes(rest) -> None:
    """MLflow's ``/get-artifact?run_id=&path=`` serves a run's file; a path leaving the root is MLflow's
    400 "Invalid path" there and on ``/model-versions/get-artifact`` (no registry: 501 otherwise); the
    web UI's ``upload-artifact`` checks its request in MLflow's words, needs the edit right, and stores."""
    import httpx

    mlflow.set_experiment("ui-downloads")
    with mlflow.start_run() as run:
        mlflow.log_text("served to the UI", "notes/readme.txt")
    headers = {"Authorization": f"Bearer {rest.token()}"}
    with httpx.Client(headers=headers, timeout=60) as http:
        got = http.get(
            f"{rest.uri}/get-artifact", params={"run_id": run.info.run_id, "path": "notes/readme.txt"}
        )
        assert got.status_code == 200 and got.text == "served to the UI"
        assert got.headers["content-disposition"].startswith("attachment")
        for url in (f"{rest.uri}/get-artifact", f"{rest.uri}//model-versions/get-artifact"):
            bad = http.get(
                url, params={"run_id": run.info.run_id, "name": "m", "version": 1, "path": "../path"}
            )
            assert (bad.status_code, bad.json()) == (
                400,
                {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"},
            )
        missing = http.get(f"{rest.uri}/get-artifact", params={"run_id": run.info.run_id, "path": "nope.txt"})
        assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        unknown = http.get(f"{rest.uri}/get-artifact", params={"run_id": "999", "path": "a.txt"})
        assert unknown.status_code == 404
        upload = f"{rest.uri}/ajax-api/2.0/mlflow/upload-artifact"
        for params, content, message in (
            ({}, b"x", "Request must specify run_uuid."),
            ({"run_uuid": run.info.run_id, "path": ""}, b"x", "Request must specify path."),
            ({"run_uuid": run.info.run_id, "path": "../t.txt"}, b"x", "Invalid path"),
            ({"run_uuid": run.info.run_id, "path": "t.txt"}, b"", "Request must specify data."),
        ):
            refused = http.post(upload, params=params, content=content)
            assert (refused.status_code, refused.json()["message"]) == (400, message)
        viewer = {"Authorization": f"Bearer {rest.token('viewer', 'viewer')}"}
        denied = http.post(
            upload, params={"run_uuid": run.info.run_id, "path": "t.txt"}, content=b"x", headers=viewer
        )
        assert denied.status_code == 403
        done = http.post(
            upload, params={"run_uuid": run.info.run_id, "path": "up/t.txt"}, content=b"hello world"
        )
        assert done.status_code == 200
        back = http.get(f"{rest.uri}/get-artifact", params={"run_uuid": run.info.run_id, "path": "up/t.txt"})
        assert back.text == "hello world"
        registry = http.get(
            f"{rest.uri}/model-versions/get-artifact", params={"name": "m", "version": 1, "path": "a"}
        )
        assert registry.status_code == 501 and registry.json()["error_code"] == "NOT_IMPLEMENTED"
