"""Revision 0008 and the store API under MLflow 3's logged models, datasets and deleted runs, on SQLite and
PostgreSQL: logged models, an experiment's model/dataset links, soft deletes, 250-character tag names."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import TrackingStore, migrations
from airflow_mltrack.store.engine import get_engine
from airflow_mltrack.store.reads.experiment_list import ExperimentFilter, experiment_page


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mltrack.db'}"
    return request.getfixturevalue("pg_database")


def _catalog(store: TrackingStore, project: str = "churn") -> tuple[int, int, int]:
    dataset = store.register_dataset(project, "customers", "Tabular")
    model = store.register_model(project, "mlp", "torch")
    return dataset, model, store.create_experiment(project, "run", model, dataset, status="Running")


def test_revision_0008_both_ways(empty_db_url: str):
    """Rows written at 0007 read as ready, active; the downgrade drops what 0008 added (long tag names go
    with their assignments) and keeps every other constraint; upgrading again is clean."""
    migrations.upgrade(empty_db_url, "0007")
    old = TrackingStore(get_engine(empty_db_url), check_revision=False)
    dataset, model, experiment = _catalog(old)
    old.set_tag("experiment", experiment, "short", "kept")

    migrations.upgrade(empty_db_url)
    assert migrations.check_drift(empty_db_url) == []
    new = TrackingStore.from_url(empty_db_url)
    assert new.get_model(model)["status"] == "Ready" and new.get_experiment(experiment)["deleted_at"] is None
    long_name = "t" * 250
    new.set_tag("experiment", experiment, long_name, "long")
    logged = new.create_logged_model("churn", "model", "sklearn", source_experiment_id=experiment)
    new.set_experiment_deleted(experiment, True)
    new.set_project_deleted(new.get_project("churn")["project_id"], True)

    migrations.downgrade(empty_db_url, "0007")
    inspector = sa.inspect(get_engine(empty_db_url))
    model_columns = {c["name"] for c in inspector.get_columns("models")}
    assert not {"status", "source_experiment_id", "params", "deleted_at"} & model_columns
    assert "deleted_at" not in {c["name"] for c in inspector.get_columns("experiments")}
    assert "deleted_at" not in {c["name"] for c in inspector.get_columns("projects")}
    assert {fk["name"] for fk in inspector.get_foreign_keys("models")} == {"fk_model_project"}
    assert "uq_model_project_name_version" in {u["name"] for u in inspector.get_unique_constraints("models")}
    assert old.tag_values("experiment", experiment) == {"short": "kept"}  # the long name is gone
    with get_engine(empty_db_url).connect() as conn:  # the row stays, as a plain model
        version = conn.execute(
            sa.text("SELECT version FROM models WHERE model_id = :i"), {"i": logged}
        ).scalar()
    assert version == f"m-{logged}"

    migrations.upgrade(empty_db_url)
    assert migrations.check_drift(empty_db_url) == []
    assert TrackingStore.from_url(empty_db_url).get_model(logged)["status"] == "Ready"


def test_logged_models(store: TrackingStore):
    dataset, model, experiment = _catalog(store)
    first = store.create_logged_model(
        "churn", "model", "sklearn", source_experiment_id=experiment, params={"C": 1}, tags={"team": "ml"}
    )
    second = store.create_logged_model("churn", "model", "sklearn")  # same name: another version
    rows = {r["model_id"]: r for r in store.find_models([store.get_project("churn")["project_id"]])}
    assert rows[first]["version"] == f"m-{first}" and rows[second]["version"] == f"m-{second}"
    assert rows[first]["params"] == {"C": "1"} and rows[first]["status"] == "Pending"
    assert store.tag_values("model", first) == {"team": "ml"}

    store.set_model_status(first, "Ready")
    store.log_model_params(first, {"solver": "lbfgs"})
    store.set_model_tags(first, {"team": "ds", "k" * 250: "v"})
    row = store.get_model(first)
    assert row["status"] == "Ready" and row["params"] == {"C": "1", "solver": "lbfgs"}
    project_id = row["project_id"]
    assert [r["model_id"] for r in store.find_models([project_id], statuses=["Ready"])] == [first, model]
    assert [r["model_id"] for r in store.find_models([project_id], source_experiment_id=experiment)] == [
        first
    ]
    names = [r["name"] for r in store.find_models([project_id], exclude_framework="sklearn")]
    assert names == ["mlp"]

    store.delete_model(second)
    assert second not in {r["model_id"] for r in store.find_models([project_id])}
    assert second in {r["model_id"] for r in store.find_models([project_id], include_deleted=True)}
    with pytest.raises(NotFoundError):
        store.delete_model(second)
    with pytest.raises(NotFoundError):
        store.set_model_status(second, "Ready")


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda s, e, o: s.set_model_status(1, "Done"), "status"),
        (lambda s, e, o: s.create_logged_model("churn", "", "sklearn"), "name"),
        (
            lambda s, e, o: s.create_logged_model("churn", "m", "sklearn", source_experiment_id=o),
            "source_experiment_id",
        ),
        (
            lambda s, e, o: s.create_logged_model("churn", "m", "sklearn", source_experiment_id=999),
            "source_experiment_id",
        ),
        (lambda s, e, o: s.create_logged_model("churn", "m", "x", params={"p": "v" * 6001}), "params.p"),
        (lambda s, e, o: s.create_logged_model("churn", "m", "x", tags={"k" * 251: "v"}), "tags"),
        (lambda s, e, o: s.link_experiment(e, dataset_id=s.get_experiment(o)["dataset_id"]), "dataset_id"),
        (lambda s, e, o: s.link_experiment(e, model_id=999), "model_id"),
        (lambda s, e, o: s.set_experiment_deleted(999, True), "experiment_id"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(store: TrackingStore, call, field):
    _, model, experiment = _catalog(store)
    _, _, other = _catalog(store, "other-project")
    before = len(store.list_models())
    with pytest.raises(MLTrackError) as caught:
        call(store, experiment, other)
    assert caught.value.field == field
    assert len(store.list_models()) == before
    assert store.get_experiment(experiment)["model_id"] == model


def test_link_experiment_and_soft_delete(store: TrackingStore):
    dataset, model, experiment = _catalog(store)
    logged = store.create_logged_model("churn", "model", "sklearn", source_experiment_id=experiment)
    real = store.register_dataset("churn", "train", "Tabular", version="abc123")
    store.link_experiment(experiment, model_id=logged, dataset_id=real)
    row = store.get_experiment(experiment)
    assert (row["model_id"], row["dataset_id"], row["dataset_version"]) == (logged, real, "abc123")

    store.set_experiment_deleted(experiment, True)
    deleted_at = store.get_experiment(experiment)["deleted_at"]
    store.set_experiment_deleted(experiment, True)  # again: the first time is kept
    assert store.get_experiment(experiment)["deleted_at"] == deleted_at is not None
    assert experiment_page(store, ExperimentFilter())["total"] == 0
    assert experiment_page(store, ExperimentFilter(lifecycle="deleted"))["total"] == 1
    with pytest.raises(MLTrackError) as caught:
        experiment_page(store, ExperimentFilter(lifecycle="gone"))
    assert caught.value.field == "lifecycle"
    store.set_experiment_deleted(experiment, False)
    assert [i["experiment_id"] for i in experiment_page(store, ExperimentFilter())["items"]] == [experiment]


def test_projects_deleted_renamed_and_client_times(store: TrackingStore):
    """MLflow's experiment lifecycle on projects, client start/end times, model visibility by source DAG."""
    import datetime as dt

    dataset, model, experiment = _catalog(store)
    project = store.get_project("churn")["project_id"]
    alone = store.create_experiment("churn", "alone", model, dataset, status="Running")
    store.set_experiment_deleted(alone, True)
    store.set_project_deleted(project, True)
    assert store.get_project(project)["deleted_at"] is not None
    assert store.get_experiment(experiment)["deleted_at"] is not None
    store.set_project_deleted(project, False)
    assert store.get_project(project)["deleted_at"] is None
    assert store.get_experiment(experiment)["deleted_at"] is None
    assert store.get_experiment(alone)["deleted_at"] is not None  # deleted on its own before: stays

    store.ensure_project("other")
    with pytest.raises(MLTrackError, match="has this name"):
        store.rename_project(project, "other")
    store.rename_project(project, "churn-v2")
    assert store.get_project(project)["name"] == "churn-v2"

    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    timed = store.create_experiment(project, "timed", model, dataset, status="Running", start_time=start)
    with pytest.raises(MLTrackError, match="end_time"):
        store.set_status(timed, "Completed", end_time=start - dt.timedelta(seconds=1))
    assert store.get_experiment(timed)["status"] == "Running"  # nothing written
    store.set_status(timed, "Completed", end_time=start + dt.timedelta(hours=1))
    store.set_status(timed, "Completed", end_time=start + dt.timedelta(hours=2))  # the client's word again
    row = store.get_experiment(timed)
    ends = [row["start_time"], row["end_time"]]
    assert [x.replace(tzinfo=dt.UTC) if x.tzinfo is None else x for x in ends] == [
        start,
        start + dt.timedelta(hours=2),
    ]

    linked = store.create_experiment(
        project, "dag", model, dataset, dag_id="dag_b", run_id="r", task_id="t", status="Running"
    )
    theirs = store.create_logged_model(project, "theirs", "sklearn", source_experiment_id=linked)
    free = store.create_logged_model(project, "free", "sklearn")
    found = lambda visible: [r["model_id"] for r in store.find_models([project], visible_dag_ids=visible)]  # noqa: E731
    assert theirs in found(None) and free in found(None)
    assert theirs not in found({"dag_a"}) and free in found({"dag_a"})
