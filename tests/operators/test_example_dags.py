"""The example DAGs (dags/) run for real: dag.test() with a PostgreSQL tracking store."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from airflow_mltrack import operators
from tests.operators.conftest import EXAMPLE_DAGS, load_dag

MAIN = "train_evaluate_deploy"
FAILING = "failing_training"
PROJECT = "digits-demo"
ENDPOINT = "digits-classifier"


def test_example_dags_import_without_a_tracking_database(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_CONN_MLTRACK_DEFAULT", raising=False)
    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert bag.import_errors == {}
    assert {MAIN, FAILING} <= set(bag.dag_ids)
    assert not (tmp_path / "mltrack.db").exists()


def test_examples_use_every_operator():
    used = {type(t).__name__ for dag_id in (MAIN, FAILING) for t in load_dag(dag_id, EXAMPLE_DAGS).tasks}
    used |= {
        getattr(t, "operator_class", type(t)).__name__
        for dag_id in (MAIN, FAILING)
        for t in load_dag(dag_id, EXAMPLE_DAGS).tasks
    }
    expected = {
        name for name in operators.__all__ if name.endswith("Operator") and name != "MLTrackBaseOperator"
    }
    expected.discard("BackfillMetricsOperator")  # taught by the metric_backfill example
    assert expected <= used, expected - used
    assert load_dag(FAILING, EXAMPLE_DAGS).default_args["retries"] == 0


def _final(store, experiment_id: int) -> dict[tuple[str, str], float]:
    return {(r["evaluation_set"], r["name"]): r["value"] for r in store.latest_metrics(experiment_id)}


def test_train_evaluate_deploy_tracks_data_experiments_model_and_rollout(run_dag, store):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    result = run_dag(MAIN)
    assert result.state == "success", result.tis
    assert result.state_of("rollback_canary") == "skipped"

    # data: the raw dataset, the derived one, the job between them
    datasets = {d["name"]: d for d in store.list_datasets(PROJECT)}
    raw, scaled = datasets["digits"], datasets["digits-scaled"]
    assert (raw["num_records"], raw["data_type"]) == (1797, "Image")
    [job] = store.list_preprocessing_jobs(PROJECT)
    assert (job["input_dataset_id"], job["output_dataset_id"], job["status"]) == (
        raw["dataset_id"],
        scaled["dataset_id"],
        "Completed",
    )
    assert job["parameters"]["scaler"] == "StandardScaler"

    # three mapped training experiments with their hyperparameters and curves per split
    grid = sorted(
        (e for e in store.list_experiments(PROJECT) if e["task_id"] == "train_candidate"),
        key=lambda e: e["map_index"],
    )
    assert [(e["map_index"], e["name"]) for e in grid] == [
        (0, "sgd-grid-0"),
        (1, "sgd-grid-1"),
        (2, "sgd-grid-2"),
    ]
    module_grid = [{"alpha": 1e-4, "eta0": 0.01}, {"alpha": 1e-3, "eta0": 0.05}, {"alpha": 1e-2, "eta0": 0.2}]
    for experiment, params in zip(grid, module_grid, strict=True):
        assert experiment["status"] == "Completed"
        assert experiment["dataset_id"] == scaled["dataset_id"]
        assert {k: experiment["hyperparameters"][k] for k in params} == params
        assert experiment["hyperparameters"]["epochs"] == 20
        eid = experiment["experiment_id"]
        for name, split in (("loss", "train"), ("loss", "validation"), ("accuracy", "validation")):
            steps = [r["step"] for r in store.metric_history(eid, name, split) if r["step"] is not None]
            assert steps == list(range(20)), (name, split)
        final = _final(store, eid)
        for split in ("train", "validation", "test"):
            assert 0.5 < final[(split, "accuracy")] <= 1.0
            assert math.isfinite(final[(split, "loss")])
    train_loss = [r["value"] for r in store.metric_history(grid[0]["experiment_id"], "loss", "train")]
    assert train_loss[-1] < train_loss[1]  # it learned

    # the champion: best validation accuracy, registered with its artifact, evaluated on test
    board = store.leaderboard(PROJECT, "accuracy", evaluation_set="validation", mode="max")
    choice = result.xcom("pick_best")
    assert choice["experiment_id"] == board[0]["experiment_id"]
    champion = store.get_model(result.xcom("register_champion"))
    assert champion["version"] == choice["version"] and champion["name"] == "digits-sgd"
    assert Path(champion["model_path"]).is_file()
    [evaluation] = [e for e in store.list_experiments(PROJECT) if e["name"] == "champion-evaluation"]
    assert (evaluation["status"], evaluation["model_id"]) == ("Completed", champion["model_id"])
    assert evaluation["hyperparameters"] == choice["hyperparameters"]
    assert set(_final(store, evaluation["experiment_id"])) == {
        ("test", "accuracy"),
        ("test", "f1_macro"),
        ("test", "loss"),
    }
    assert result.xcom("start_champion_evaluation", key="_link_ExperimentLink").endswith(
        f"/tasks/start_champion_evaluation/plugin/mltrack-task?mltrack=experiments/{evaluation['experiment_id']}"
    )

    # the rollout: a 10% canary, then all traffic (no incumbent to beat)
    history = store.endpoint_history(PROJECT, ENDPOINT)
    assert [(r["model_id"], r["traffic_percentage"]) for r in history] == [
        (champion["model_id"], 10.0),
        (champion["model_id"], 100.0),
    ]
    [serving] = store.endpoint_state(PROJECT, ENDPOINT)
    assert (serving["model_id"], serving["traffic_percentage"]) == (champion["model_id"], 100.0)

    with create_session() as session:
        [extra] = session.scalars(
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(
                AssetModel.uri == "x-mltrack://digits-demo/digits", AssetEvent.source_run_id == result.run_id
            )
        ).all()
    assert (extra["dataset_id"], extra["version"]) == (raw["dataset_id"], "1.0")


def test_canary_rolls_back_when_the_incumbent_is_better(run_dag, store):
    legacy_data = store.register_dataset(PROJECT, "legacy-digits", "Image")
    legacy = store.register_model(PROJECT, "digits-legacy", "scikit-learn")
    experiment = store.create_experiment(PROJECT, "champion-evaluation", legacy, legacy_data)
    store.log_metrics(experiment, {"accuracy": 0.999}, evaluation_set="test")
    store.deploy_model(PROJECT, ENDPOINT, legacy, 100)

    result = run_dag(MAIN)
    assert result.state == "success", result.tis
    assert (result.state_of("promote"), result.state_of("rollback_canary")) == ("skipped", "success")
    champion = result.xcom("register_champion")
    history = [
        (r["model_id"], r["traffic_percentage"], "retired" if r["retired_at"] else "active")
        for r in store.endpoint_history(PROJECT, ENDPOINT)
    ]
    assert history == [
        (legacy, 100.0, "retired"),  # the canary took 10%
        (legacy, 90.0, "retired"),  # the rollback gave it all back
        (champion, 10.0, "retired"),
        (legacy, 100.0, "active"),
    ]
    assert [(r["model_id"], r["traffic_percentage"]) for r in store.endpoint_state(PROJECT, ENDPOINT)] == [
        (legacy, 100.0)
    ]


def test_failing_training_leaves_a_failed_experiment_with_its_error(run_dag, store):
    result = run_dag(FAILING)
    assert result.state == "failed"
    assert result.tis[("train", -1)] == ("failed", 1)
    [experiment] = store.list_experiments("diabetes-demo")
    assert experiment["status"] == "Failed"
    assert "loss diverged" in experiment["error"]
    curve = store.metric_history(experiment["experiment_id"], "mse", "train")
    assert len(curve) > 10 and curve[-1]["value"] > curve[0]["value"] * 1e6


@pytest.mark.parametrize("dag_id", [MAIN, FAILING])
def test_example_dags_have_docs_and_no_schedule(dag_id):
    dag = load_dag(dag_id, EXAMPLE_DAGS)
    assert dag.doc_md and "mltrack" in dag.tags
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None
