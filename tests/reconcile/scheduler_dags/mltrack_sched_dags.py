"""DAGs for the real-scheduler test: a ``@daily`` source whose tasks only return metrics (one task per
reconcile DAG, so each reconcile's imports are its own) and publishes an asset, and one reconcile DAG per
kind of schedule, each the operator with its defaults. ``MLTRACK_SCHED_START`` is the catchup start."""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import Asset, CronDataIntervalTimetable, dag, task

from airflow_mltrack.operators import BackfillMetricsOperator

START = dt.datetime.fromisoformat(os.environ.get("MLTRACK_SCHED_START", "2026-01-01")).replace(tzinfo=dt.UTC)
SOURCE_READY = Asset("x-mltrack://bf-sched/source-ready")
KINDS = {
    "cron_trigger": "@daily",
    "cron_interval": CronDataIntervalTimetable("@daily", timezone="UTC"),
    "timedelta": dt.timedelta(days=1),
    "asset": [SOURCE_READY],
}


# One run at a time: the runs finish (and emit their asset events) in date order.
@dag(dag_id="mltrack_sched_source", schedule="@daily", start_date=START, catchup=True, max_active_runs=1)
def mltrack_sched_source():
    @task
    def evaluate(logical_date=None) -> dict:
        return {"accuracy": 0.5 + (logical_date - START).days / 100}

    @task(outlets=[SOURCE_READY])
    def publish() -> None:
        pass

    [evaluate.override(task_id=f"for_{kind}")() for kind in KINDS] >> publish()


mltrack_sched_source()


def reconcile_dag(kind: str, schedule):
    @dag(dag_id=f"mltrack_sched_{kind}", schedule=schedule, start_date=START, catchup=True, max_active_runs=1)
    def reconcile():
        BackfillMetricsOperator(
            task_id="reconcile",
            sources=[{"dag_id": "mltrack_sched_source", "task_id": f"for_{kind}", "project": "bf-sched"}],
        )

    return reconcile()


for _kind, _schedule in KINDS.items():
    reconcile_dag(_kind, _schedule)
