"""The real MLflow client storing artifacts through ``mltrack://`` (entry point ``mlflow.artifact_repository``):
log_artifact / log_artifacts / log_text / log_dict / a PNG, list_artifacts with directories and sizes,
download_artifacts, delete, a logged model's ``models/<id>`` location (under its run, or its own for a model
logged without a run), and a task of a DAG run by
``dag.test()`` logging into the task's experiment. Bytes land under ``[mltrack] artifact_root``."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import zlib
from pathlib import Path

import mlflow  # noqa: F401 - first, as user code does: its import registers our entry points
import pytest

from airflow_mltrack.mlflow.artifacts import (
    MLTrackArtifactRepository,
    artifact_uri,
    parse_artifact_location,
    parse_artifact_uri,
)
from airflow_mltrack.store import TrackingStore

# The smallest valid PNG: 1x1, one red pixel.
PNG = (
    b"\x89PNG\r\n\x1a\n"
    + b"\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
    + zlib.crc32(b"IHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00").to_bytes(4, "big")
    + len(zlib.compress(b"\x00\xff\x00\x00")).to_bytes(4, "big")
    + b"IDAT"
    + zlib.compress(b"\x00\xff\x00\x00")
    + zlib.crc32(b"IDAT" + zlib.compress(b"\x00\xff\x00\x00")).to_bytes(4, "big")
    + b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def artifact_root(tmp_path: Path, monkeypatch) -> Path:
    """``[mltrack] artifact_root`` in a fresh folder; MLflow's per-run artifact repository cache emptied
    (run ids repeat across the tests' fresh databases) and no experiment id left over from another test."""
    from mlflow.tracking._tracking_service import utils

    root = tmp_path / "artifact-root"
    monkeypatch.setenv("AIRFLOW__MLTRACK__ARTIFACT_ROOT", f"file://{root}")
    utils._artifact_repos_cache.clear()
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # set_experiment() in a task of dag.test() is process-wide
    yield root
    utils._artifact_repos_cache.clear()
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_entry_point_is_registered() -> None:
    found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="mlflow.artifact_repository")}
    assert found["mltrack"] == "airflow_mltrack.mlflow.artifacts:MLTrackArtifactRepository"


def test_uri_shapes() -> None:
    assert artifact_uri("mltrack_default", 42) == "mltrack://mltrack_default/42/artifacts"
    assert artifact_uri("c", "7", "models/m-3") == "mltrack://c/7/artifacts/models/m-3"
    assert parse_artifact_uri("mltrack:///42/artifacts") == ("mltrack_default", 42, "")
    assert parse_artifact_uri("mltrack:/42/artifacts/x") == ("mltrack_default", 42, "x")  # MLflow's spelling
    assert parse_artifact_uri("mltrack://c/42/artifacts/a b#/c?") == ("c", 42, "a b#/c?")
    from mlflow.exceptions import MlflowException

    for bad in ("mltrack://c/x/artifacts", "mltrack://c/42", "mltrack://c/42/files", "s3://b/42/artifacts"):
        with pytest.raises(MlflowException, match="must be mltrack://") as caught:
            parse_artifact_uri(bad)
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match=r"'\.\.'"):
        parse_artifact_uri("mltrack://c/42/artifacts/../../etc")
    # a logged model no run logged: its own files, under its experiment (project)
    assert parse_artifact_location("mltrack://c/3/models/m-17/artifacts") == ("c", ("model_id", 17), "")
    assert parse_artifact_location("mltrack:/3/models/m-17/artifacts/a/b") == (
        "mltrack_default",
        ("model_id", 17),
        "a/b",
    )
    assert parse_artifact_location("mltrack://c/42/artifacts/models/m-3") == (
        "c",
        ("experiment_id", 42),
        "models/m-3",
    )
    for bad in (
        "mltrack://c/3/models/17/artifacts",
        "mltrack://c/3/models/m-0/artifacts",
        "mltrack://c/3/models/m-1",
    ):
        with pytest.raises(MlflowException, match="must be mltrack://"):
            parse_artifact_location(bad)
    with pytest.raises(MlflowException, match="logged model's files"):
        parse_artifact_uri("mltrack://c/3/models/m-17/artifacts")


def test_log_list_download_delete(
    mlflow_uri: str, tracking_url: str, artifact_root: Path, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    mlflow.set_experiment("arts")
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_bytes(b"alpha")
    (source / "sub" / "b.bin").write_bytes(b"\x00\x01" * 1000)
    (tmp_path / "plot.png").write_bytes(PNG)
    with mlflow.start_run() as run:
        run_id = run.info.run_id
        assert run.info.artifact_uri == f"mltrack://mltrack_default/{run_id}/artifacts"
        mlflow.log_artifact(str(tmp_path / "plot.png"), "plots")
        mlflow.log_artifacts(str(source), "data")
        mlflow.log_text("hello text", "notes/readme.txt")
        mlflow.log_dict({"k": 1}, "config.json")

    client = MlflowClient()
    top = {(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id)}
    assert top == {
        ("config.json", False, len(b'{\n  "k": 1\n}')),
        ("data", True, None),
        ("notes", True, None),
        ("plots", True, None),
    }

    # Below the root, MLflow 3's client also looks for a logged model of that name (search_logged_models):
    # list with the run's repository itself, as MLflow's RunsArtifactRepository does first.
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(run.info.artifact_uri)
    assert isinstance(repo, MLTrackArtifactRepository)
    assert [(f.path, f.is_dir) for f in repo.list_artifacts("data")] == [
        ("data/a.txt", False),
        ("data/sub", True),
    ]
    assert [(f.path, f.file_size) for f in repo.list_artifacts("data/sub")] == [("data/sub/b.bin", 2000)]
    assert repo.list_artifacts("data/a.txt") == []  # a file has no children

    store = TrackingStore.from_url(tracking_url)
    rows = {r["path"]: r for r in store.list_artifacts(int(run_id))}
    assert set(rows) == {"config.json", "data/a.txt", "data/sub/b.bin", "notes/readme.txt", "plots/plot.png"}
    assert rows["plots/plot.png"]["checksum"] == _sha(PNG)
    assert rows["plots/plot.png"]["content_type"] == "image/png"
    assert rows["data/sub/b.bin"]["size_bytes"] == 2000
    project_id = store.get_experiment(int(run_id))["project_id"]
    stored = artifact_root / str(project_id) / run_id / "plots" / "plot.png"
    assert stored.read_bytes() == PNG
    assert rows["plots/plot.png"]["storage_uri"] == f"file://{stored}"

    out = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "dl")))
    assert (out / "plots" / "plot.png").read_bytes() == PNG
    assert (out / "data" / "sub" / "b.bin").read_bytes() == b"\x00\x01" * 1000
    assert (out / "notes" / "readme.txt").read_text() == "hello text"
    assert mlflow.artifacts.load_text(f"mltrack:///{run_id}/artifacts/notes/readme.txt") == "hello text"
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json") == {"k": 1}

    # logging a path again replaces it
    mlflow.log_text("second", "notes/readme.txt", run_id=run_id)
    assert store.get_artifact(int(run_id), "notes/readme.txt")["checksum"] == _sha(b"second")

    repo.delete_artifacts("data")
    assert sorted(r["path"] for r in store.list_artifacts(int(run_id))) == [
        "config.json",
        "notes/readme.txt",
        "plots/plot.png",
    ]
    assert not (artifact_root / str(project_id) / run_id / "data" / "a.txt").exists()


def test_prefixed_repository_is_a_logged_model_location(
    mlflow_uri: str, tracking_url: str, artifact_root: Path, tmp_path: Path
) -> None:
    """A logged model's files (``artifact_location`` = ``.../artifacts/models/<model_id>``) land in the
    run's experiment under ``models/<model_id>/``, listed relative to the model's location."""

    with mlflow.start_run() as run:
        run_id = run.info.run_id
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    (model_dir / "model.pkl").write_bytes(b"pickle")
    location = artifact_uri("mltrack_default", run_id, "models/m-1")
    repo = MLTrackArtifactRepository(location)
    repo.log_artifacts(str(model_dir))
    assert [(f.path, f.file_size) for f in repo.list_artifacts()] == [("MLmodel", 12), ("model.pkl", 6)]
    store = TrackingStore.from_url(tracking_url)
    assert [r["path"] for r in store.list_artifacts(int(run_id), "models")] == [
        "models/m-1/MLmodel",
        "models/m-1/model.pkl",
    ]
    out = Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(tmp_path / "dl")))
    assert (out / "model.pkl").read_bytes() == b"pickle"
    assert [f.path for f in mlflow.MlflowClient().list_artifacts(run_id, "models")] == ["models/m-1"]


def test_errors_are_mlflow_errors(mlflow_uri: str, artifact_root: Path, tmp_path: Path) -> None:
    from mlflow.exceptions import MlflowException

    with mlflow.start_run() as run:
        run_id = run.info.run_id
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(MlflowException, match="'..'") as caught:
        mlflow.log_artifact(str(tmp_path / "x.txt"), "../outside", run_id=run_id)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as caught:
        MLTrackArtifactRepository("mltrack:///999/artifacts").log_artifact(str(tmp_path / "x.txt"))
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert not list(artifact_root.rglob("x.txt"))
    with pytest.raises(MlflowException) as caught:
        mlflow.artifacts.download_artifacts(
            f"mltrack:///{run_id}/artifacts/missing.txt", dst_path=str(tmp_path)
        )
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.airflow
def test_task_logs_artifacts_into_its_experiment(
    run_mlflow_dag, tracking_pg: str, artifact_root: Path
) -> None:
    dag_run = run_mlflow_dag("mlflow_artifact_task")
    assert str(dag_run.state) == "success"
    store = TrackingStore.from_url(tracking_pg)
    (row,) = store.find_experiments(dag_id="mlflow_artifact_task")
    found = {r["path"]: r for r in store.list_artifacts(row["experiment_id"])}
    assert set(found) == {"notes.txt", "reports/report.csv"}
    assert found["reports/report.csv"]["checksum"] == _sha(b"epoch,loss\n1,0.5\n")
    stored = artifact_root / str(row["project_id"]) / str(row["experiment_id"]) / "notes.txt"
    assert stored.read_text() == "trained in a task"
    assert os.path.getsize(stored) == found["notes.txt"]["size_bytes"]


def test_sklearn_logged_model_files_land_in_our_storage(
    mlflow_uri: str, tracking_url: str, artifact_root: Path
) -> None:
    """``mlflow.sklearn.log_model`` -> ``create_logged_model`` (location ``.../artifacts/models/<model id>``)
    -> ``log_model_artifacts``: the files are recorded under the run's experiment, and ``models:/`` loads them."""
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    features, labels = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            LogisticRegression().fit(features, labels), name="clf", serialization_format="cloudpickle"
        )
    run_id = run.info.run_id
    assert info.artifact_path == f"mltrack://mltrack_default/{run_id}/artifacts/models/{info.model_id}"
    store = TrackingStore.from_url(tracking_url)
    paths = [r["path"] for r in store.list_artifacts(int(run_id), f"models/{info.model_id}")]
    assert f"models/{info.model_id}/MLmodel" in paths and f"models/{info.model_id}/model.pkl" in paths
    project_id = store.get_experiment(int(run_id))["project_id"]
    assert (artifact_root / str(project_id) / run_id / "models" / info.model_id / "MLmodel").is_file()
    loaded = mlflow.sklearn.load_model(f"models:/{info.model_id}")
    assert list(loaded.predict(features)) == [0, 0, 1, 1]


def test_model_logged_without_a_run_keeps_its_own_files(
    mlflow_uri: str, tracking_url: str, artifact_root: Path
) -> None:
    """MLflow 3's ``log_model`` outside a run: the model's ``artifact_location`` is its own
    (``.../<project>/models/<model id>/artifacts``); its files are recorded as the model's (no experiment),
    stored under ``<root>/<project>/models/<model id>/``, listed, and loaded back by ``models:/``."""
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    features, labels = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    info = mlflow.sklearn.log_model(
        LogisticRegression().fit(features, labels), name="runless", serialization_format="cloudpickle"
    )
    assert mlflow.active_run() is None
    model = mlflow.MlflowClient().get_logged_model(info.model_id)
    assert model.source_run_id is None
    project_id = int(model.experiment_id)
    assert (
        model.artifact_location == f"mltrack://mltrack_default/{project_id}/models/{info.model_id}/artifacts"
    )
    store = TrackingStore.from_url(tracking_url)
    model_id = int(info.model_id.removeprefix("m-"))
    rows = {r["path"]: r for r in store.list_artifacts(None, model_id=model_id)}
    assert {"MLmodel", "model.pkl"} <= set(rows)
    assert {r["experiment_id"] for r in rows.values()} == {None}
    stored = artifact_root / str(project_id) / "models" / info.model_id / "MLmodel"
    assert stored.is_file() and rows["MLmodel"]["checksum"] == _sha(stored.read_bytes())
    repo = MLTrackArtifactRepository(model.artifact_location)
    assert "MLmodel" in {f.path for f in repo.list_artifacts()}
    loaded = mlflow.sklearn.load_model(f"models:/{info.model_id}")
    assert list(loaded.predict(features)) == [0, 0, 1, 1]
    repo.delete_artifacts("model.pkl")
    assert "model.pkl" not in {r["path"] for r in store.list_artifacts(None, model_id=model_id)}
    assert not (artifact_root / str(project_id) / "models" / info.model_id / "model.pkl").exists()
