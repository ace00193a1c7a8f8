"""TrackingStore on both backends: catalog, experiments, status rules, tags, reads."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, text

from airflow_mltrack import MLTrackError
from airflow_mltrack.errors import NotFoundError, SchemaOutOfDateError
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.models import Dataset, Experiment, Metric, Project


def count(store: TrackingStore, model) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model.__table__)).scalar_one()


@pytest.fixture
def seeded(store: TrackingStore):
    dataset_id = store.register_dataset("vision", "cifar", "Image", num_records=60000)
    model_id = store.register_model("vision", "resnet", "PyTorch", architecture="ResNet-50")
    return store, dataset_id, model_id


def test_project_get_or_create(store: TrackingStore):
    first = store.ensure_project("alpha", description="first")
    assert store.ensure_project("alpha") == first
    assert store.ensure_project("beta") != first
    assert store.get_project("alpha")["description"] == "first"
    store.ensure_project("alpha", description="second", status="Completed")
    project = store.get_project(first)
    assert (project["description"], project["status"]) == ("second", "Completed")
    assert project["start_date"] is not None


def test_register_is_idempotent_on_unique_keys(seeded):
    store, dataset_id, model_id = seeded
    assert store.register_dataset("vision", "cifar", "Image") == dataset_id
    assert store.register_dataset("vision", "cifar", "image", version="1.0") == dataset_id
    assert store.register_dataset("vision", "cifar", "Image", version="2.0") != dataset_id
    assert store.register_model("vision", "resnet", "PyTorch") == model_id
    assert store.get_dataset(dataset_id)["num_records"] == 60000  # not wiped by a bare re-register
    assert count(store, Project) == 1
    assert count(store, Dataset) == 2


def test_reregister_updates_given_fields(seeded):
    store, dataset_id, _ = seeded
    store.register_dataset("vision", "cifar", "Image", description="now described")
    assert store.get_dataset(dataset_id)["description"] == "now described"


def test_model_artifact_fields(store: TrackingStore):
    model_id = store.register_model(
        "p",
        "m",
        "scikit-learn",
        model_path="/models/m.pkl",
        model_type="classification",
        input_schema={"features": 4},
        output_schema={"classes": 3},
    )
    model = store.get_model(model_id)
    assert model["model_path"] == "/models/m.pkl"
    assert model["input_schema"] == {"features": 4}


def test_experiment_idempotent_on_airflow_link(seeded):
    store, dataset_id, model_id = seeded
    link = {"dag_id": "train", "run_id": "manual__1", "task_id": "create"}
    first = store.create_experiment("vision", "exp", model_id, dataset_id, {"lr": 0.1}, try_number=1, **link)
    again = store.create_experiment(
        "vision", "exp", model_id, dataset_id, {"epochs": 3}, try_number=2, **link
    )
    assert again == first
    experiment = store.get_experiment(first)
    assert experiment["try_number"] == 2
    assert experiment["hyperparameters"] == {"lr": 0.1, "epochs": 3}
    # Each mapped instance gets its own experiment.
    mapped = [
        store.create_experiment("vision", "exp", model_id, dataset_id, map_index=i, **link) for i in range(3)
    ]
    assert len(set(mapped)) == 3 and first not in mapped
    # Without a link, every call is a new experiment (plain Python use).
    assert store.create_experiment("vision", "adhoc", model_id, dataset_id) != store.create_experiment(
        "vision", "adhoc", model_id, dataset_id
    )
    assert count(store, Experiment) == 6


def test_experiment_refuses_foreign_ids(seeded):
    store, dataset_id, model_id = seeded
    with pytest.raises(NotFoundError, match="model_id=999"):
        store.create_experiment("vision", "e", 999, dataset_id)
    with pytest.raises(MLTrackError, match="dataset_id='abc'"):
        store.create_experiment("vision", "e", model_id, "abc")
    other_model = store.register_model("other", "m", "sklearn")
    with pytest.raises(MLTrackError, match=r"model_id=\d+: belongs to project 'other', not to 'vision'"):
        store.create_experiment("vision", "e", other_model, dataset_id)
    assert count(store, Experiment) == 0


def test_template_strings_are_coerced(seeded):
    store, dataset_id, model_id = seeded
    experiment_id = store.create_experiment("vision", "e", str(model_id), f" {dataset_id} ")
    assert store.get_experiment(experiment_id)["model_id"] == model_id


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (["Running", "Completed"], True),
        (["Running", "Failed", "Running", "Completed"], True),
        (["Cancelled"], True),
        (["Running", "Cancelled"], True),
        (["Completed"], False),
        (["Running", "Completed", "Running"], False),
        (["Cancelled", "Running"], False),
        (["Running", "Pending"], False),
    ],
)
def test_status_transitions(seeded, path, allowed):
    store, dataset_id, model_id = seeded
    experiment_id = store.create_experiment("vision", "e", model_id, dataset_id)
    if allowed:
        for status in path:
            store.set_status(experiment_id, status, error="boom" if status == "Failed" else None)
        assert store.get_experiment(experiment_id)["status"] == path[-1]
    else:
        with pytest.raises(MLTrackError, match="status="):
            for status in path:
                store.set_status(experiment_id, status)
        assert store.get_experiment(experiment_id)["status"] == (path[-2] if len(path) > 1 else "Pending")


def test_status_fields(seeded):
    store, dataset_id, model_id = seeded
    experiment_id = store.create_experiment("vision", "e", model_id, dataset_id)
    store.set_status(experiment_id, "Running")
    store.set_status(experiment_id, "Running")  # a retry: no-op
    store.set_status(experiment_id, "Failed", error="ValueError: diverged")
    failed = store.get_experiment(experiment_id)
    assert failed["error"] == "ValueError: diverged" and failed["end_time"] is not None
    store.set_status(experiment_id, "Running")  # cleared and re-run
    running = store.get_experiment(experiment_id)
    assert running["error"] is None and running["end_time"] is None
    with pytest.raises(MLTrackError, match="status='Done'"):
        store.set_status(experiment_id, "Done")
    with pytest.raises(NotFoundError):
        store.set_status(12345, "Running")


def test_updated_at_moves(seeded):
    store, dataset_id, model_id = seeded
    experiment_id = store.create_experiment("vision", "e", model_id, dataset_id)
    before = store.get_experiment(experiment_id)["updated_at"]
    time.sleep(1.1)  # SQLite's CURRENT_TIMESTAMP has one-second resolution
    store.set_status(experiment_id, "Running")
    after = store.get_experiment(experiment_id)["updated_at"]
    assert after.replace(tzinfo=None) > before.replace(tzinfo=None)


def test_hyperparameters_merge_and_validation(seeded):
    store, dataset_id, model_id = seeded
    experiment_id = store.create_experiment("vision", "e", model_id, dataset_id, '{"lr": 0.1, "opt": "sgd"}')
    store.log_hyperparameters(experiment_id, {"lr": 0.01, "layers": [64, 32]})
    assert store.get_experiment(experiment_id)["hyperparameters"] == {
        "lr": 0.01,
        "opt": "sgd",
        "layers": [64, 32],
    }
    with pytest.raises(MLTrackError, match="hyperparameters="):
        store.log_hyperparameters(experiment_id, "{not json")
    with pytest.raises(MLTrackError, match=r"hyperparameters\.lr=nan"):
        store.log_hyperparameters(experiment_id, {"lr": float("nan")})


def test_list_filters(seeded):
    store, dataset_id, model_id = seeded
    ids = [
        store.create_experiment(
            "vision", f"e{i}", model_id, dataset_id, {"lr": lr, "opt": "adam"}, tags=["sweep"] if i else None
        )
        for i, lr in enumerate([0.1, 0.01, 0.1])
    ]
    store.set_status(ids[0], "Running")
    assert {e["experiment_id"] for e in store.list_experiments("vision")} == set(ids)
    assert [e["experiment_id"] for e in store.list_experiments(status="Running")] == [ids[0]]
    assert {e["experiment_id"] for e in store.list_experiments(tag="sweep")} == {ids[1], ids[2]}
    assert {e["experiment_id"] for e in store.list_experiments(hyperparameters={"lr": 0.1})} == {
        ids[0],
        ids[2],
    }
    assert {
        e["experiment_id"] for e in store.list_experiments(hyperparameters={"lr": 0.1, "opt": "adam"})
    } == {ids[0], ids[2]}
    assert store.list_experiments(hyperparameters={"opt": "sgd"}) == []
    assert store.list_experiments("nope") == []
    assert len(store.list_experiments(limit=2)) == 2
    with pytest.raises(MLTrackError, match="status='Weird'"):
        store.list_experiments(status="Weird")


def test_tags_on_any_entity(seeded):
    store, dataset_id, model_id = seeded
    assert store.tag("dataset", dataset_id, ["gold", "raw"]) == ["gold", "raw"]
    assert store.tag("dataset", dataset_id, "gold") == ["gold", "raw"]
    store.untag("dataset", dataset_id, "raw")
    assert store.tags_of("dataset", dataset_id) == ["gold"]
    with pytest.raises(NotFoundError, match="entity_id=999"):
        store.tag("model", 999, "x")
    with pytest.raises(MLTrackError, match="entity_type='planet'"):
        store.tag("planet", 1, "x")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.register_dataset("p", "x" * 300, "Tabular"), "name"),
        (lambda s: s.register_dataset("p", "d", "Spreadsheet"), "data_type"),
        (lambda s: s.register_dataset("p", "d", "Tabular", size_bytes=float("nan")), "size_bytes"),
        (lambda s: s.register_dataset("p", "d", "Tabular", num_records=-1), "num_records"),
        (lambda s: s.register_dataset("p", "", "Tabular"), "name"),
        (lambda s: s.register_dataset("", "d", "Tabular"), "project"),
        (lambda s: s.register_model("p", "m", None), "framework"),
        (lambda s: s.register_model("p", "m", "sk", colour="red"), "model field"),
        (lambda s: s.ensure_project("p", status="Dormant"), "status"),
    ],
)
def test_bad_input_names_field_and_writes_nothing(store: TrackingStore, call, field):
    with pytest.raises(MLTrackError) as info:
        call(store)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}=")
    assert count(store, Project) == 0 and count(store, Dataset) == 0


def test_refuses_to_write_when_revision_is_behind(tracking_url: str):
    from airflow_mltrack.store import migrations
    from airflow_mltrack.store.base import _CHECKED_REVISIONS

    migrations.downgrade(tracking_url, "base")
    _CHECKED_REVISIONS.clear()
    store = TrackingStore.from_url(tracking_url)
    with pytest.raises(SchemaOutOfDateError, match="mltrack db upgrade"):
        store.ensure_project("p")
    migrations.upgrade(tracking_url)
    assert store.ensure_project("p") > 0


def test_metrics_cascade_with_experiment(seeded):
    store, dataset_id, model_id = seeded
    experiment_id = store.create_experiment("vision", "e", model_id, dataset_id)
    store.log_metrics(experiment_id, {"loss": [1.0, 0.5]})
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM experiments WHERE experiment_id = :i"), {"i": experiment_id})
    assert count(store, Metric) == 0
