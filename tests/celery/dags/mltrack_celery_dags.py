"""Test DAG for tests/celery (and benchmarks/celery_bench.py): ``TASKS`` mapped ``@task.mltrack`` tasks on
Celery workers, each logging ``POINTS`` metric points in ``CHUNKS`` flushed chunks, with retries.

Point ``i`` of task ``index`` is metric ``m{i % NAMES}`` at step ``i // NAMES`` with value
``index * 1_000_000 + i``, so every stored row can be checked against what was logged. The sizes come
from the environment at parse time (``MLTRACK_CELERY_TASKS``, ``MLTRACK_CELERY_POINTS``,
``MLTRACK_CELERY_PAUSE``: seconds between chunks, so a worker killed mid-run finds tasks half-written).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

from airflow.sdk import dag, task

DAG_ID = "mltrack_celery_mapped"
PROJECT = "celery"
TASKS = int(os.environ.get("MLTRACK_CELERY_TASKS", "16"))
POINTS = int(os.environ.get("MLTRACK_CELERY_POINTS", "2000"))
PAUSE = float(os.environ.get("MLTRACK_CELERY_PAUSE", "1.0"))
CHUNKS = 4
NAMES = 10


def value_of(index: int, i: int) -> float:
    """The value point ``i`` of task ``index`` logs (tests recompute it from name and step)."""
    return float(index * 1_000_000 + i)


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_tasks=TASKS,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=2)},
)
def mapped():
    @task.mltrack(project=PROJECT, log_return=False)
    def train(index: int, tracker=None):
        per_chunk = -(-POINTS // CHUNKS)
        for start in range(0, POINTS, per_chunk):
            for i in range(start, min(start + per_chunk, POINTS)):
                tracker.log_metric(
                    f"m{i % NAMES}", value_of(index, i), step=i // NAMES, evaluation_set="train"
                )
            tracker.flush()
            time.sleep(PAUSE)

    train.expand(index=list(range(TASKS)))


mapped()
