"""Reconciles mltrack_bf_source's XCom metrics into the tracking store (range from the run's conf)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_mltrack.operators.backfill import BackfillMetricsOperator

with DAG(
    dag_id="mltrack_bf_reconcile",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    params={"start": "2026-01-01", "end": "2026-02-01"},
):
    BackfillMetricsOperator(
        task_id="reconcile",
        sources=[{"dag_id": "mltrack_bf_source", "task_id": "evaluate", "project": "bf-test"}],
        start="{{ params.start }}",
        end="{{ params.end }}",
    )
