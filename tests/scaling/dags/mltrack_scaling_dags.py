"""Test DAG for tests/scaling: mapped ``@task.mltrack`` tasks, each logging ``POINTS`` metric points."""

from __future__ import annotations

import time
from datetime import datetime

from airflow.sdk import dag, task

TASKS = 4
POINTS = 2000
NAMES = 10


@dag(dag_id="mltrack_scaling_mapped", schedule=None, start_date=datetime(2025, 1, 1), catchup=False)
def mapped():
    @task.mltrack(project="scaling", log_return=False)
    def train(index: int, tracker=None):
        for i in range(POINTS):
            tracker.log_metric(
                f"m{i % NAMES}", index * 1_000_000 + i, step=i // NAMES, evaluation_set="train"
            )
        tracker.flush()
        time.sleep(2)  # the task's one connection stays open (idle) until the task ends: sampled meanwhile

    train.expand(index=list(range(TASKS)))


mapped()
