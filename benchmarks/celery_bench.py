"""CeleryExecutor at scale: mapped ``@task.mltrack`` tasks on Celery workers, Redis as the broker.

A real Airflow (scheduler, dag-processor, api-server and ``airflow celery worker`` with --concurrency
slots) on a throwaway PostgreSQL server on disk, which holds both Airflow's metadata (and the Celery
result backend) and the tracking store, and a throwaway ``redis-server`` (``tests/support/redis.py``).
The DAG is the one of ``tests/celery/dags``: --tasks mapped tasks, each logging --points metric points
(in 4 flushed chunks), retries=2.

Two runs of it on the same cluster:

- "clean": nothing goes wrong; wall time from the trigger to the DAG run's success, rows/s over it;
- "worker killed" (skipped with --no-kill): while tasks are half-written the worker is SIGKILLed with
  every process under it (pool, supervisors, task runners) and a fresh worker started; the killed tries
  fail on their missed heartbeats (30 s) and are retried. The example DAGs (train_evaluate_deploy,
  failing_training) are triggered on the fresh worker meanwhile.

Both runs are checked from the database: every experiment Completed (the plugin's listener runs in the
Celery workers), the rows exactly tasks x points with the logged values, 0 lost, 0 duplicated, and
``metric_latest`` equal to a recomputation from ``metrics``; and the UI (``/mltrack/api/experiments`` and
the DAG-run page, token from ``POST /auth/token``) listed the run's experiments as Running while it went.

Usage: python -m benchmarks.celery_bench [--tasks 64] [--points 10000] [--concurrency 8] [--no-kill]
       [--json benchmarks/results/celery.json]
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from airflow_mltrack.store.engine import dispose_engines
from benchmarks._common import (
    arguments,
    loadavg,
    machine_info,
    migrated_database,
    print_table,
    temp_postgres,
    write_results,
)
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
from tests.support.redis import TempRedis

CLEAN_CHECKS = ("lost", "duplicated", "wrong_values", "experiments_short")
LATEST_CHECKS = ("metric_latest_missing_or_wrong", "metric_latest_extra_or_wrong")


def passed(checks: dict[str, Any], tasks: int, points: int) -> bool:
    """Every check of :func:`tests.celery.scenario.row_checks` as it must be."""
    return (
        checks["experiments"] == checks["completed"] == tasks
        and checks["rows"] == tasks * points
        and checks["map_indexes_ok"] == 1
        and all(checks[k] == 0 for k in (*CLEAN_CHECKS, *LATEST_CHECKS))
    )


def one_run(
    cluster: AirflowCluster, tracking: str, metadata: str, args: Any, kill: bool, deadline: float
) -> dict[str, Any]:
    """One triggered run of the mapped DAG; its figures and checks."""
    load_before = loadavg()
    after = (lambda: trigger(cluster, EXAMPLES, deadline)) if kill else None
    outcome = run_mapped(
        cluster,
        tracking,
        metadata,
        tasks=args.tasks,
        points=args.points,
        kill=kill,
        deadline=deadline,
        after_kill=after,
    )
    with connect(tracking) as conn:
        checks = row_checks(conn, outcome.run_id, args.tasks, args.points)
    rows = checks["rows"]
    return {
        "dag_run_state": outcome.dag_run_state,
        "wall_seconds": round(outcome.seconds, 1),
        "rows": rows,
        "rows_per_second": round(rows / outcome.seconds) if outcome.seconds else None,
        "ui_running_seen": len(outcome.ui_running),
        "ui_page_running": outcome.ui_page_running,
        "killed_at_seconds": None if outcome.killed_at is None else round(outcome.killed_at, 1),
        "tasks_half_written_at_kill": sum(1 for n in outcome.rows_at_kill.values() if 0 < n < args.points),
        "rows_at_kill": sum(outcome.rows_at_kill.values()),
        "rows_after_kill_settled": sum(outcome.rows_after_kill.values()),
        "retried_tasks": sum(1 for t in outcome.tries.values() if t >= 2),
        "checks": checks,
        "passed": passed(checks, args.tasks, args.points) and outcome.dag_run_state == "success",
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "outcome": {k: v for k, v in asdict(outcome).items() if k in ("run_id", "tries")},
    }


def main() -> int:
    parser = arguments(__doc__, "celery_bench")
    parser.add_argument("--tasks", type=int, default=64, help="mapped tasks (default 64)")
    parser.add_argument("--points", type=int, default=10_000, help="metric points per task (default 10000)")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="the Celery worker's concurrency (default 8)"
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds a task sleeps after each of its 4 flushes (default 0)",
    )
    parser.add_argument("--no-kill", action="store_true", help="skip the run that kills the worker")
    args = parser.parse_args()
    for name in ("tasks", "points", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    console = Console(width=140)  # the table's 11 columns, also when not a terminal
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="mltrack-celery-bench-"))
    started = time.monotonic()
    try:
        with temp_postgres() as pg, TempRedis() as broker:
            machine = machine_info(pg)
            tracking = migrated_database(pg, "bench_tracking")
            dispose_engines()
            metadata = pg.create_database("bench_airflow")
            cluster = AirflowCluster(
                work,
                dags_folder(work / "dags"),
                tracking,
                secret=secrets.token_urlsafe(24),  # JWT signing key of this throwaway cluster
                executor="CeleryExecutor",
                metadata_url=metadata,
                broker_url=broker.url(),
                worker_concurrency=args.concurrency,
                extra_env={
                    **RECOVERY_ENV,
                    "MLTRACK_CELERY_TASKS": str(args.tasks),
                    "MLTRACK_CELERY_POINTS": str(args.points),
                    "MLTRACK_CELERY_PAUSE": str(args.pause),
                },
            )
            with cluster:
                deadline = time.monotonic() + 3600
                console.print(
                    f"clean: {args.tasks} tasks x {args.points} points, concurrency {args.concurrency}"
                )
                results["clean"] = one_run(cluster, tracking, metadata, args, False, deadline)
                if not args.no_kill:
                    console.print("worker killed: the same, SIGKILL of the worker mid-run ...")
                    results["worker killed"] = one_run(cluster, tracking, metadata, args, True, deadline)
                    cluster.wait("the example DAG runs", lambda: examples_finished(metadata), deadline)
                    with connect(metadata) as conn:
                        results["examples"] = dag_run_states(conn, EXAMPLES)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - started
    print_table(
        console,
        f"{args.tasks} mapped @task.mltrack tasks x {args.points} points on CeleryExecutor (Redis), worker "
        f"concurrency {args.concurrency} ({machine['node']}, {machine['cpus']} CPUs)",
        (
            "run",
            "wall s",
            "rows",
            "rows/s",
            "lost",
            "dup",
            "wrong",
            "latest diff",
            "Completed",
            "retried",
            "ok",
        ),
        (
            (
                label,
                f"{r['wall_seconds']:.1f}",
                f"{r['rows']:,}",
                f"{r['rows_per_second']:,}",
                str(r["checks"]["lost"]),
                str(r["checks"]["duplicated"]),
                str(r["checks"]["wrong_values"]),
                str(sum(r["checks"][k] for k in LATEST_CHECKS)),
                f"{r['checks']['completed']}/{r['checks']['experiments']}",
                str(r["retried_tasks"]),
                "yes" if r["passed"] else "NO",
            )
            for label, r in results.items()
            if label != "examples"
        ),
    )
    if "examples" in results:
        console.print(f"example DAG runs on the fresh worker: {results['examples']}")
    ok = all(r["passed"] for label, r in results.items() if label != "examples") and results.get(
        "examples", {"train_evaluate_deploy": "success", "failing_training": "failed"}
    ) == {"train_evaluate_deploy": "success", "failing_training": "failed"}
    payload = {
        "benchmark": "celery",
        "config": {
            "tasks": args.tasks,
            "points": args.points,
            "concurrency": args.concurrency,
            "pause": args.pause,
            "kill": not args.no_kill,
            "recovery_env": RECOVERY_ENV,
        },
        "machine": machine,
        "total_seconds": round(total, 1),
        "passed": ok,
        "runs": results,
    }
    write_results(args.json, payload, console)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
