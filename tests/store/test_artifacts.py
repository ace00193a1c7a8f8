"""Artifacts (revision 0007) on SQLite and PostgreSQL: record/upsert, list by directory prefix, get, delete,
validation naming field and value, the table's own CHECKs, cascade on experiment delete, files owned by a
logged model instead of an experiment (exactly one owner), and the revision's downgrade/upgrade round trip."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import TrackingStore, migrations
from airflow_mltrack.store.engine import get_engine
from airflow_mltrack.store.membership import TaskLink
from airflow_mltrack.store.tables import artifacts, experiment_tasks, experiments, models

SHA = hashlib.sha256(b"hello").hexdigest()


def _experiment(store: TrackingStore, name: str = "e") -> int:
    dataset = store.register_dataset("arts", "customers", "Tabular")
    model = store.register_model("arts", "mlp", "torch")
    return store.create_experiment("arts", name, model, dataset)


def _record(store: TrackingStore, experiment: int, path: str, **over: object) -> dict:
    values = {
        "size_bytes": 5,
        "checksum": SHA,
        "content_type": "text/plain",
        "storage_uri": f"file:///tmp/x/{path}",
    } | over
    return store.record_artifact(experiment, path, **values)  # type: ignore[arg-type]


def _count(store: TrackingStore) -> int:
    with store.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(artifacts)).scalar_one()


def test_record_upserts_and_reads_back(store: TrackingStore) -> None:
    experiment = _experiment(store)
    row = _record(store, experiment, "./plots//loss.png", content_type="image/png")
    assert row["path"] == "plots/loss.png"  # canonical form
    assert (row["size_bytes"], row["checksum"], row["content_type"]) == (5, SHA, "image/png")
    first_id = row["artifact_id"]

    other = hashlib.sha256(b"other bytes").hexdigest()
    again = _record(store, experiment, "plots/loss.png", size_bytes=11, checksum=other.upper())
    assert again["artifact_id"] == first_id  # the same row, replaced
    assert (again["size_bytes"], again["checksum"], again["content_type"]) == (11, other, "text/plain")
    assert again["created_at"] >= row["created_at"]
    assert _count(store) == 1
    assert store.get_artifact(experiment, "plots/loss.png")["checksum"] == other

    second = _experiment(store, "other")  # the same path in another experiment is another row
    _record(store, second, "plots/loss.png")
    assert _count(store) == 2


def test_list_by_directory_prefix_and_delete(store: TrackingStore) -> None:
    experiment = _experiment(store)
    for path in ("model.pkl", "plots/a.png", "plots/b/c.png", "plots2/x.txt", "p_ots/y", "plot"):
        _record(store, experiment, path)
    assert [a["path"] for a in store.list_artifacts(experiment)] == [
        "model.pkl",
        "p_ots/y",
        "plot",
        "plots/a.png",
        "plots/b/c.png",
        "plots2/x.txt",
    ]
    assert [a["path"] for a in store.list_artifacts(experiment, "plots")] == ["plots/a.png", "plots/b/c.png"]
    assert [a["path"] for a in store.list_artifacts(experiment, "plots/")] == ["plots/a.png", "plots/b/c.png"]
    assert [a["path"] for a in store.list_artifacts(experiment, "p_ots")] == ["p_ots/y"]  # '_' is no wildcard
    assert [a["path"] for a in store.list_artifacts(experiment, "model.pkl")] == ["model.pkl"]
    assert store.list_artifacts(experiment, "nothing") == []

    deleted = store.delete_artifacts(experiment, "plots")
    assert [a["path"] for a in deleted] == ["plots/a.png", "plots/b/c.png"]
    assert [a["path"] for a in store.list_artifacts(experiment)] == [
        "model.pkl",
        "p_ots/y",
        "plot",
        "plots2/x.txt",
    ]
    with pytest.raises(NotFoundError) as caught:
        store.get_artifact(experiment, "plots/a.png")
    assert (caught.value.field, caught.value.value) == ("path", "plots/a.png")
    assert len(store.delete_artifacts(experiment)) == 4
    assert store.list_artifacts(experiment) == []


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("path", "/etc/passwd", "relative"),
        ("path", "../secret", "'..'"),
        ("path", "a/../../b", "'..'"),
        ("path", "a\\b", "backslash"),
        ("path", "", "empty"),
        ("path", "./", "empty"),
        ("path", "a\x00b", "NUL"),
        ("path", "a\nb", "control"),
        ("path", "x" * 1025, "at most 1024"),
        ("path", 12, "string"),
        ("size_bytes", -1, ">= 0"),
        ("size_bytes", "many", "integer"),
        ("checksum", "abc", "sha256"),
        ("checksum", "g" * 64, "sha256"),
        ("content_type", "x" * 256, "at most 255"),
        ("storage_uri", "", "empty"),
    ],
)
def test_bad_input_is_named_and_nothing_written(
    store: TrackingStore, field: str, value: object, reason: str
) -> None:
    experiment = _experiment(store)
    args = {
        "path": "ok.txt",
        "size_bytes": 1,
        "checksum": SHA,
        "content_type": None,
        "storage_uri": "file:///x",
    }
    args[field] = value
    with pytest.raises(MLTrackError, match=reason) as caught:
        store.record_artifact(experiment, **args)  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.value) == (field, value)
    assert _count(store) == 0


def test_unknown_experiment_and_bad_prefix(store: TrackingStore) -> None:
    with pytest.raises(NotFoundError) as caught:
        _record(store, 999, "a.txt")
    assert (caught.value.field, caught.value.value) == ("experiment_id", 999)
    with pytest.raises(MLTrackError) as caught:
        store.list_artifacts(_experiment(store), "../up")
    assert (caught.value.field, caught.value.value) == ("prefix", "../up")
    with pytest.raises(MLTrackError) as caught:
        store.list_artifacts("x")  # type: ignore[arg-type]
    assert caught.value.field == "experiment_id"


def test_database_checks_refuse_what_validation_would(store: TrackingStore) -> None:
    experiment = _experiment(store)
    good = {
        "experiment_id": experiment,
        "path": "a.txt",
        "size_bytes": 1,
        "checksum": SHA,
        "storage_uri": "file:///a",
    }
    with store.engine.begin() as conn:
        conn.execute(sa.insert(artifacts).values(good))
    for bad in (
        {"path": "/abs"},
        {"path": ""},
        {"path": ".."},
        {"path": "a/../b"},
        {"path": "a/.."},
        {"path": "../a"},
        {"path": "a\\b"},
        {"size_bytes": -1},
        {"checksum": SHA[:-1]},
        {"checksum": SHA.upper()},
        {"checksum": SHA[:-1] + "g"},
    ):
        row = good | {"path": "other.txt"} | bad
        with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
            conn.execute(sa.insert(artifacts).values(row))
    assert _count(store) == 1


def test_cascade_on_experiment_delete_and_writer_recorded(store: TrackingStore) -> None:
    experiment = _experiment(store)
    keep = _experiment(store, "keep")
    link = TaskLink("dag", "run", "task")
    store.task_link = link
    _record(store, experiment, "a.txt")
    store.task_link = None
    _record(store, keep, "a.txt")
    with store.read() as conn:
        writers = conn.execute(
            sa.select(experiment_tasks.c.task_id).where(experiment_tasks.c.experiment_id == experiment)
        ).all()
    assert [w.task_id for w in writers] == ["task"]
    with store.engine.begin() as conn:
        conn.execute(sa.delete(experiments).where(experiments.c.experiment_id == experiment))
    assert store.list_artifacts(experiment) == []
    assert [a["path"] for a in store.list_artifacts(keep)] == ["a.txt"]


def test_revision_0007_downgrade_and_upgrade(tracking_url: str) -> None:
    engine = get_engine(tracking_url)
    migrations.upgrade(tracking_url)
    assert "artifacts" in sa.inspect(engine).get_table_names()
    migrations.downgrade(tracking_url, "0006")
    assert "artifacts" not in sa.inspect(engine).get_table_names()
    assert migrations.current_revision(tracking_url) == "0006"
    migrations.upgrade(tracking_url, "0007")
    inspector = sa.inspect(engine)
    assert "idx_artifacts_experiment_id" in {ix["name"] for ix in inspector.get_indexes("artifacts")}
    fks = {fk["name"]: fk for fk in inspector.get_foreign_keys("artifacts")}
    assert fks["fk_artifact_experiment"]["options"].get("ondelete", "").upper() == "CASCADE"
    checks = {ck["name"] for ck in inspector.get_check_constraints("artifacts")}
    assert {
        "ck_artifacts_path",
        "ck_artifacts_size_bytes",
        "ck_artifacts_checksum",
        "ck_artifacts_owner",
    } <= checks
    assert fks["fk_artifact_model"]["options"].get("ondelete", "").upper() == "CASCADE"
    assert fks["fk_artifact_model"]["referred_table"] == "models"
    uniques = {uq["name"] for uq in inspector.get_unique_constraints("artifacts")}
    assert {"uq_artifact_experiment_path", "uq_artifact_model_path"} <= uniques
    migrations.upgrade(tracking_url)
    assert [line for line in migrations.check_drift(tracking_url) if "artifact" in line] == []


# -- files of a logged model without a run (model_id instead of experiment_id) ---------------------------


def test_model_owned_files_record_list_get_delete(store: TrackingStore) -> None:
    experiment = _experiment(store)
    model = store.register_model("arts", "logged", "mlflow")
    row = store.record_artifact(None, "MLmodel", 7, SHA, "text/plain", "file:///m/MLmodel", model_id=model)
    assert (row["model_id"], row["experiment_id"], row["path"]) == (model, None, "MLmodel")
    store.record_artifact(None, "code/a.py", 3, SHA, None, "file:///m/code/a.py", model_id=model)
    _record(store, experiment, "MLmodel")  # the same path of an experiment: another row
    other = hashlib.sha256(b"again").hexdigest()
    again = store.record_artifact(None, "MLmodel", 9, other, None, "file:///m/MLmodel", model_id=model)
    assert again["artifact_id"] == row["artifact_id"] and again["size_bytes"] == 9  # replaced
    assert _count(store) == 3
    assert [a["path"] for a in store.list_artifacts(None, model_id=model)] == ["MLmodel", "code/a.py"]
    assert [a["path"] for a in store.list_artifacts(None, "code", model_id=model)] == ["code/a.py"]
    assert store.get_artifact(None, "MLmodel", model_id=model)["checksum"] == other
    assert store.get_artifact(experiment, "MLmodel")["checksum"] == SHA
    with pytest.raises(NotFoundError, match=f"model {model} has no artifact") as caught:
        store.get_artifact(None, "nothing", model_id=model)
    assert (caught.value.field, caught.value.value) == ("path", "nothing")
    assert [a["path"] for a in store.delete_artifacts(None, "code", model_id=model)] == ["code/a.py"]
    assert [a["path"] for a in store.list_artifacts(None, model_id=model)] == ["MLmodel"]
    assert [a["path"] for a in store.list_artifacts(experiment)] == ["MLmodel"]  # untouched


def test_exactly_one_owner(store: TrackingStore) -> None:
    experiment = _experiment(store)
    model = store.register_model("arts", "logged", "mlflow")
    with pytest.raises(MLTrackError, match="exactly one") as caught:
        store.record_artifact(experiment, "a", 1, SHA, None, "file:///a", model_id=model)
    assert (caught.value.field, caught.value.value) == ("model_id", model)
    with pytest.raises(MLTrackError, match="exactly one"):
        store.list_artifacts(None)
    with pytest.raises(NotFoundError) as caught:
        store.record_artifact(None, "a", 1, SHA, None, "file:///a", model_id=999)
    assert (caught.value.field, caught.value.value) == ("model_id", 999)
    with pytest.raises(MLTrackError) as caught:
        store.list_artifacts(None, model_id="m-1")  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.value) == ("model_id", "m-1")
    assert _count(store) == 0
    base = {"path": "a.txt", "size_bytes": 1, "checksum": SHA, "storage_uri": "file:///a"}
    for owners in ({}, {"experiment_id": experiment, "model_id": model}):  # the CHECK, below validation
        with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
            conn.execute(sa.insert(artifacts).values(base | owners))
    assert _count(store) == 0


def test_cascade_on_model_delete(store: TrackingStore) -> None:
    model = store.register_model("arts", "logged", "mlflow")
    keep = store.register_model("arts", "kept", "mlflow")
    for owner in (model, keep):
        store.record_artifact(None, "MLmodel", 1, SHA, None, "file:///a", model_id=owner)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(models).where(models.c.model_id == model))
    assert [a["model_id"] for a in store.list_artifacts(None, model_id=keep)] == [keep]
    assert _count(store) == 1
