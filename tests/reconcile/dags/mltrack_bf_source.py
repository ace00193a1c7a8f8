"""A DAG that never used airflow-mltrack: its ``evaluate`` task only returns metrics (XCom)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MALFORMED_DAY = 3  # 2026-01-04 returns a payload the store refuses


def metrics_for(day: int) -> dict:
    """The metrics returned on the ``day``-th day after START (deterministic, checked by the tests)."""
    if day == MALFORMED_DAY:
        return {"accuracy": "not-a-number"}
    return {"accuracy": round(0.9 - 0.01 * day, 4), "loss": [1.0 / (day + 1), 0.5 / (day + 1)]}


@dag(dag_id="mltrack_bf_source", schedule="@daily", start_date=START, catchup=False)
def mltrack_bf_source():
    @task
    def evaluate(logical_date=None) -> dict:
        return metrics_for((logical_date - START).days)

    evaluate()


mltrack_bf_source()
