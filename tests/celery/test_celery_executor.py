"""CeleryExecutor for real: scheduler, dag-processor, api-server and ``airflow celery worker`` (concurrency 8)
with Redis as the broker, PostgreSQL for Airflow's metadata (and the Celery result backend) and for the
tracking store.

The mapped DAG of ``tests/celery/dags`` (16 ``@task.mltrack`` tasks x 2,000 points, retries=2) runs while
the UI lists its experiments as Running; the worker is SIGKILLed with every process under it while tasks
are half-written and a fresh worker takes over: the killed tries fail on their missed heartbeats and their
retries converge to exactly the rows one clean run writes. The example DAGs (train_evaluate_deploy,
failing_training) run on the fresh worker meanwhile, their experiments finished by the plugin's listener
inside the Celery workers.
"""

from __future__ import annotations

import time

from tests.celery.dags.mltrack_celery_dags import POINTS, TASKS
from tests.celery.scenario import (
    EXAMPLES,
    RECOVERY_ENV,
    connect,
    dag_run_states,
    dags_folder,
    examples_finished,
    row_checks,
    run_mapped,
    trigger,
)
from tests.support.airflow_cluster import AirflowCluster


def test_celery_workers_survive_a_killed_worker(tracking_pg, airflow_metadata_url, redis_broker, tmp_path):
    from airflow_mltrack.store import TrackingStore

    cluster = AirflowCluster(
        tmp_path,
        dags_folder(tmp_path / "dags"),
        tracking_pg,
        secret="mltrack-celery-test-secret",
        executor="CeleryExecutor",
        metadata_url=airflow_metadata_url,
        broker_url=redis_broker.url(),
        worker_concurrency=8,
        extra_env=RECOVERY_ENV,
    )
    started = time.monotonic()
    with cluster:
        deadline = time.monotonic() + 540
        outcome = run_mapped(
            cluster,
            tracking_pg,
            airflow_metadata_url,
            tasks=TASKS,
            points=POINTS,
            kill=True,
            deadline=deadline,
            after_kill=lambda: trigger(cluster, EXAMPLES, deadline),
        )
        cluster.wait(
            "the example DAG runs to finish", lambda: examples_finished(airflow_metadata_url), deadline
        )
        logs = cluster.log_tails()
    print(f"celery scenario: {time.monotonic() - started:.0f}s in all, {outcome}")
    assert outcome.dag_run_state == "success", logs

    # The UI showed the run while it was going.
    assert outcome.ui_running and outcome.ui_page_running, outcome

    # The worker died mid-run: some task had written part of its points, and its retry finished it.
    partial = {m: n for m, n in outcome.rows_at_kill.items() if 0 < n < POINTS}
    assert partial, outcome.rows_at_kill
    assert outcome.rows_after_kill == outcome.rows_at_kill  # the killed tasks wrote nothing more
    assert all(outcome.tries[m] >= 2 for m in partial), (partial, outcome.tries)
    assert set(outcome.tries) == set(range(TASKS))

    with connect(tracking_pg) as conn:
        checks = row_checks(conn, outcome.run_id, TASKS, POINTS)
    assert checks == {
        "experiments": TASKS,
        "completed": TASKS,
        "map_indexes_ok": 1,
        "rows": TASKS * POINTS,
        "expected_rows": TASKS * POINTS,
        "lost": 0,
        "duplicated": 0,
        "wrong_values": 0,
        "experiments_short": 0,
        "metric_latest_missing_or_wrong": 0,
        "metric_latest_extra_or_wrong": 0,
    }

    # The example DAGs on the Celery workers: the listener finished their experiments there.
    with connect(airflow_metadata_url) as conn:
        assert dag_run_states(conn, EXAMPLES) == {
            "train_evaluate_deploy": "success",
            "failing_training": "failed",
        }
    store = TrackingStore.from_url(tracking_pg)
    trained = [e["status"] for e in store.find_experiments(dag_id="train_evaluate_deploy")]
    assert sorted(trained) == ["Completed"] * 4
    (failing,) = store.find_experiments(dag_id="failing_training")
    assert (
        failing["status"] == "Failed"
        and "diverged" in store.get_experiment(failing["experiment_id"])["error"]
    )
