"""The unmodified MLflow client logging artifacts over HTTP: runs served by the app's MLflow REST protocol
have ``artifact_uri`` ``mlflow-artifacts:/<experiment id>/<run id>/artifacts``, which the client sends to the
app's artifact proxy (a real uvicorn server, SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from airflow_mltrack.store import TrackingStore
from tests.mlflow.rest_server import serve


@pytest.fixture
def rest(tracking_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The server with an artifact root of its own; the client pointed at it as admin (no retries)."""
    from mlflow.tracking._tracking_service import utils

    monkeypatch.setenv("AIRFLOW__MLTRACK__ARTIFACT_ROOT", f"file://{tmp_path}/artifact-root")
    with serve(tracking_url, tmp_path) as server:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token())
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        utils._tracking_store_registry._get_store_with_resolved_uri.cache_clear()
        utils._artifact_repos_cache.clear()
        mlflow.tracking.fluent._active_experiment_id = None
        mlflow.set_tracking_uri(server.uri)
        yield server
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.tracking.fluent._active_experiment_id = None
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # set_experiment() is process-wide
        utils._tracking_store_registry._get_store_with_resolved_uri.cache_clear()
        utils._artifact_repos_cache.clear()
        mlflow.set_tracking_uri(None)


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
