"""Retries: every operator, ``@task.mltrack`` and the status listener, run three times for the same task
instance (each try does its work, then tries 1 and 2 fail), leave the same rows as one clean run.

Real Airflow (``dag.test()``, which retries in process) and a fresh PostgreSQL tracking store. The two DAGs
of ``retry_dags/mltrack_retry_dags.py`` are the same pipeline in two projects; the test compares everything
each project holds, with ids, times, run ids and try numbers left out.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sqlalchemy import select

from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.tables import metric_latest, metrics
from tests.support.airflow_db import add_dag_bundle, migrate_once

DAGS = Path(__file__).resolve().parent / "retry_dags"
add_dag_bundle("mltrack_reliability_retry_tests", str(DAGS))

_VOLATILE = {"created_at", "updated_at", "start_time", "end_time", "run_id", "try_number", "promoted_at"}
_VOLATILE |= {"retired_at", "recorded_at", "registered_at", "deployed_at", "executed_at"}
_VOLATILE |= {"endpoint_id", "endpoint_model_id"}  # serial ids of rows compared by their content


def _run(dag_id: str) -> dict[str, tuple[str, int]]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    migrate_once()
    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    dag_run = bag.dags[dag_id].test()
    assert str(getattr(dag_run.state, "value", dag_run.state)) == "success"
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == dag_run.run_id)
        ).all()
        return {ti.task_id: (str(getattr(ti.state, "value", ti.state)), ti.try_number) for ti in tis}


def _plain(row: dict[str, Any], ids: dict[str, dict[int, str]]) -> dict[str, Any]:
    """A row without volatile columns, its foreign ids replaced by the names they point to."""
    out = {}
    for key, value in row.items():
        if key in _VOLATILE or key.endswith("project_id") or key in ("project", "dag_id"):
            continue
        for kind, names in ids.items():
            if key.endswith(f"{kind}_id") and value is not None:
                value = names.get(value, f"? {value}")
        if isinstance(value, float) and math.isnan(value):
            value = "NaN"
        out[key] = value
    return out


def snapshot(store: TrackingStore, project: str) -> dict[str, Any]:
    """Everything ``project`` holds, comparable across projects."""
    datasets = store.list_datasets(project)
    models = store.list_models(project)
    experiments = store.list_experiments(project)
    jobs = store.list_preprocessing_jobs(project)
    ids = {
        "dataset": {d["dataset_id"]: f"{d['name']}@{d['version']}" for d in datasets},
        "model": {m["model_id"]: f"{m['name']}@{m['version']}" for m in models},
        "experiment": {e["experiment_id"]: e["name"] for e in experiments},
        "job": {j["job_id"]: j["name"] for j in jobs},
    }
    experiment_ids = sorted(ids["experiment"])
    with store.engine.connect() as conn:
        metric_rows = conn.execute(
            select(
                metrics.c.experiment_id,
                metrics.c.name,
                metrics.c.evaluation_set,
                metrics.c.step,
                metrics.c.value,
            )
            .where(metrics.c.experiment_id.in_(experiment_ids))
            .order_by(metrics.c.experiment_id, metrics.c.name, metrics.c.evaluation_set, metrics.c.step)
        ).mappings()
        metric_list = [_plain(dict(r), ids) for r in metric_rows]
        latest = conn.execute(select(metric_latest).where(metric_latest.c.experiment_id.in_(experiment_ids)))
        latest_list = sorted((_plain(dict(r._mapping), ids) for r in latest), key=repr)
    return {
        "datasets": sorted(
            (_plain(d, ids) | {"tags": store.tags_of("dataset", d["dataset_id"])} for d in datasets), key=repr
        ),
        "models": sorted((_plain(m, ids) for m in models), key=repr),
        "jobs": sorted((_plain(j, ids) for j in jobs), key=repr),
        "experiments": sorted((_plain(e, ids) for e in experiments), key=repr),
        "metrics": sorted(metric_list, key=repr),
        "metric_latest": latest_list,
        "endpoints": [
            [_plain(h, ids) for h in store.endpoint_history(project, e["name"])]
            for e in store.list_endpoints(project)
        ],
    }


def test_three_tries_leave_what_one_run_leaves(tracking_pg):
    thrice = _run("mltrack_retry_thrice")
    once = _run("mltrack_retry_once")
    tracked = ["raw", "clean", "model", "create_experiment", "log_metrics", "complete", "deploy", "train"]
    assert {task: thrice[task] for task in tracked} == {task: ("success", 3) for task in tracked}
    assert {task: once[task] for task in tracked} == {task: ("success", 1) for task in tracked}

    store = TrackingStore.from_url(tracking_pg)
    retried, clean = snapshot(store, "retry-thrice"), snapshot(store, "retry-once")
    assert retried == clean
    # and the one run itself is what the pipeline should leave
    assert [(e["name"], e["status"], e["error"]) for e in clean["experiments"]] == [
        ("decorated", "Completed", None),
        ("operators", "Completed", None),
    ]
    assert len(clean["metrics"]) == 4 + 3 + 1  # operators: loss x3 + accuracy; decorated: loss x3 + accuracy
    assert len(clean["datasets"]) == 2 and len(clean["models"]) == 1 and len(clean["jobs"]) == 1
    assert [len(history) for history in clean["endpoints"]] == [1]
