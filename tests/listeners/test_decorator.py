"""@task.mltrack on real Airflow (dag.test) with a real PostgreSQL tracking store."""

from __future__ import annotations

import logging

from airflow_mltrack.vocabulary import XCOM_EXPERIMENT_ID, XCOM_UNSAVED
from tests.support.pgserver import free_port


def _history(store, experiment_id, name, split):
    return [(r["step"], r["value"]) for r in store.metric_history(experiment_id, name, split)]


def test_task_mltrack_resolves_to_our_decorator():
    from airflow.sdk import task

    from airflow_mltrack.decorators.mltrack_task import mltrack_task

    assert task.mltrack is mltrack_task


def test_curves_params_and_returned_metrics(run_dag, status_store):
    result = run_dag("mltrack_status_curves")
    print(f"dag.test mltrack_status_curves: {result.seconds:.1f}s")
    assert result.state == "success", result.tis
    (exp,) = status_store.find_experiments(dag_id="mltrack_status_curves")
    assert exp["name"] == "curves" and exp["task_id"] == "train" and exp["run_id"] == result.run_id
    assert result.xcom("train", XCOM_EXPERIMENT_ID) == exp["experiment_id"]
    assert result.xcom("train", XCOM_UNSAVED) is None
    # the return value is a metric payload (default split: validation) and goes to XCom unchanged
    assert result.xcom("train") == {"accuracy": 0.9, "f1": 0.8}
    eid = exp["experiment_id"]
    assert _history(status_store, eid, "loss", "train") == [(i, 1.0 / (i + 1)) for i in range(5)]
    assert _history(status_store, eid, "val_loss", "validation") == [(i, 2.0 / (i + 1)) for i in range(5)]
    assert _history(status_store, eid, "accuracy", "validation") == [(None, 0.9)]
    params = status_store.get_experiment(eid)["hyperparameters"]
    assert params == {"optimizer": "sgd", "lr": 0.05, "epochs": 5, "batch_size": 32}
    # Running while its downstream (tracked) task ran; Completed once that succeeded.
    assert result.xcom("report")["status_during_report"] == "Completed"  # report is not one of its tasks
    assert status_store.get_experiment(eid)["status"] == "Completed"


def test_mapped_task_gets_one_experiment_per_map_index(run_dag, status_store):
    result = run_dag("mltrack_status_mapped")
    print(f"dag.test mltrack_status_mapped: {result.seconds:.1f}s")
    assert result.state == "success", result.tis
    exps = status_store.find_experiments(dag_id="mltrack_status_mapped", run_id=result.run_id)
    assert sorted(e["map_index"] for e in exps) == [0, 1, 2]
    for exp in exps:
        lr = [0.1, 0.01, 0.001][exp["map_index"]]
        assert exp["status"] == "Completed"
        assert status_store.get_experiment(exp["experiment_id"])["hyperparameters"] == {"lr": lr}
        assert _history(status_store, exp["experiment_id"], "loss", "validation") == [(0, lr * 10)]
        assert result.xcom("train", XCOM_EXPERIMENT_ID, map_index=exp["map_index"]) == exp["experiment_id"]


def test_tracking_db_down_does_not_fail_training(run_dag, status_airflow_db, monkeypatch, caplog):
    import json

    url = f"postgresql://nobody@127.0.0.1:{free_port()}/mltrack"
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLTRACK_DEFAULT", json.dumps({"conn_type": "mltrack", "extra": {"url": url}})
    )
    with caplog.at_level(logging.WARNING):
        result = run_dag("mltrack_status_offline")
    print(f"dag.test mltrack_status_offline (store down): {result.seconds:.1f}s")
    assert result.state == "success", result.tis
    assert result.state_of("train") == "success"
    assert result.xcom("train") == {"accuracy": 0.66}
    assert result.xcom("train", XCOM_EXPERIMENT_ID) is None
    unsaved = result.xcom("train", XCOM_UNSAVED)
    assert unsaved["experiment_id"] is None and unsaved["project"] == "status_tests"
    rows = {(r["name"], r["step"]): r["value"] for r in unsaved["metrics"]}
    assert rows == {**{("loss", i): 1.0 / (i + 1) for i in range(4)}, ("accuracy", None): 0.66}
    assert "tracking store is unavailable" in caplog.text
