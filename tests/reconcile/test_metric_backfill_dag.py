"""dags/metric_backfill.py over 10 daily intervals: one step per interval, idempotent when re-run."""

from __future__ import annotations

import datetime as dt
import importlib.util

import pytest

from airflow_mltrack.store.reads import metric_curves as q
from tests.reconcile.conftest import REPO, load_dag

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

DAYS = 10


def _module():
    spec = importlib.util.spec_from_file_location(
        "metric_backfill_example", REPO / "dags" / "metric_backfill.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synthetic_data_is_deterministic_and_drifts():
    mod = _module()
    x1, y1 = mod.make_data(5)
    x2, y2 = mod.make_data(5)
    assert (x1 == x2).all() and (y1 == y2).all()
    model = mod.train_baseline()
    early = model.score(*mod.make_data(1))
    late = model.score(*mod.make_data(90))
    assert early > late + 0.1, (early, late)


def _state(store, mod):
    [experiment] = [
        e for e in store.find_experiments(dag_id="metric_backfill", run_id="monitoring", task_id="evaluate")
    ]
    curves = store.metric_curves([experiment["experiment_id"]])
    return experiment["experiment_id"], sorted(
        (r["name"], r["evaluation_set"], r["step"], r["value"]) for r in curves
    )


def test_ten_intervals_give_ten_steps_and_rerun_changes_nothing(airflow_db, tracking):
    mod = _module()
    dag = load_dag(airflow_db, "metric_backfill")
    dates = [mod.START + dt.timedelta(days=d) for d in range(DAYS)]
    for date in dates:
        assert dag.test(logical_date=date).state == "success"

    experiment_id, rows = _state(tracking, mod)
    assert q.metric_steps(tracking, experiment_id, "inference") == {
        "accuracy": DAYS,
        "f1": DAYS,
        "roc_auc": DAYS,
        "positive_rate": DAYS,
    }
    assert sorted({r[2] for r in rows}) == list(range(DAYS))
    assert all(r[1] == "inference" for r in rows)
    # The baseline was deployed once, and every step was evaluated with it.
    [active] = tracking.endpoint_state(mod.PROJECT, mod.ENDPOINT)
    assert active["model_name"] == mod.BASELINE_MODEL and active["traffic_percentage"] == 100
    assert len(tracking.endpoint_history(mod.PROJECT, mod.ENDPOINT)) == 1
    # Values are the deterministic evaluation of that interval's data.
    model = mod.train_baseline()
    accuracy = {r[2]: r[3] for r in rows if r[0] == "accuracy"}
    assert accuracy[7] == pytest.approx(model.score(*mod.make_data(7)))

    # The same intervals again (a re-run / `airflow backfill create` over the range): exactly the same rows.
    for date in reversed(dates):
        assert dag.test(logical_date=date).state == "success"
    assert _state(tracking, mod) == (experiment_id, rows)
    assert len(tracking.endpoint_history(mod.PROJECT, mod.ENDPOINT)) == 1
