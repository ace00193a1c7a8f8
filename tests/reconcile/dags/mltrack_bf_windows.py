"""Reconcile DAGs as users write them: the operator with its defaults, under each kind of schedule.

Each reconciles ``mltrack_bf_source.evaluate`` (a ``schedule="@daily"`` DAG) over the range the run's
schedule gives it (see ``airflow_mltrack.reconcile.window.run_window``).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, dag

from airflow_mltrack.operators import BackfillMetricsOperator

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SOURCES = [{"dag_id": "mltrack_bf_source", "task_id": "evaluate", "project": "bf-test"}]
SCHEDULES = {
    "mltrack_bf_cron_trigger": "@daily",  # Airflow 3: CronTriggerTimetable, empty data intervals
    "mltrack_bf_cron_interval": CronDataIntervalTimetable("@daily", timezone="UTC"),
    "mltrack_bf_timedelta": dt.timedelta(days=1),
    "mltrack_bf_unscheduled": None,
}


def _reconcile_dag(dag_id: str, schedule):
    @dag(dag_id=dag_id, schedule=schedule, start_date=START, catchup=True, max_active_runs=1)
    def reconcile_dag():
        BackfillMetricsOperator(task_id="reconcile", sources=SOURCES)

    return reconcile_dag()


for _dag_id, _schedule in SCHEDULES.items():
    _reconcile_dag(_dag_id, _schedule)
