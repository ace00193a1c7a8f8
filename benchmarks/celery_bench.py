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

Then "PgBouncer" (skipped with ``--pgbouncer off``; ``--pgbouncer only`` runs it alone): the clean run
again on a fresh cluster whose tracking connection (``AIRFLOW_CONN_MLTRACK_DEFAULT``, extra ``"pool_mode":
"transaction"``) goes through a throwaway PgBouncer (``tests/support/pgbouncer.py``, ``pool_mode =
transaction``, ``default_pool_size`` = --pool-size) to a tracking database of its own; Airflow's metadata
stays direct. During the clean runs ``pg_stat_activity`` is sampled every 100 ms for the tracking
database's server connections (all, and ours: ``application_name = 'mltrack'``); errors are the task
instances not ``success`` or tried more than once, plus the error lines of the task and worker logs (and of
PgBouncer's log).

Every run is checked from the database: every experiment Completed (the plugin's listener runs in the
Celery workers), the rows exactly tasks x points with the logged values, 0 lost, 0 duplicated, and
``metric_latest`` equal to a recomputation from ``metrics``; and the UI (``/mltrack/api/experiments`` and
the DAG-run page, token from ``POST /auth/token``) listed the run's experiments as Running while it went.

Usage: python -m benchmarks.celery_bench [--tasks 64] [--points 10000] [--concurrency 8] [--no-kill]
       [--pgbouncer both|only|off] [--pool-size 10] [--json benchmarks/results/celery.json]
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tempfile
import time
from contextlib import ExitStack, nullcontext
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
from tests.celery.dags.mltrack_celery_dags import DAG_ID
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
from tests.support.pgbouncer import ConnectionSampler, PgBouncerServer
from tests.support.pgserver import TempPostgres
from tests.support.redis import TempRedis

CLEAN_CHECKS = ("lost", "duplicated", "wrong_values", "experiments_short")
LATEST_CHECKS = ("metric_latest_missing_or_wrong", "metric_latest_extra_or_wrong")
EXAMPLES_EXPECTED = {"train_evaluate_deploy": "success", "failing_training": "failed"}
SAMPLE_INTERVAL = 0.1  # seconds between two pg_stat_activity samples
# An error line of a worker's or PgBouncer's text log, or of a task's JSON log.
_TEXT_ERROR = re.compile(r"\bERROR\b|\[error\s*\]|\bCRITICAL\b|^Traceback", re.MULTILINE)
_JSON_LEVELS = ('"level": "error"', '"level":"error"', '"level": "critical"', '"level":"critical"')


def passed(checks: dict[str, Any], tasks: int, points: int) -> bool:
    """Every check of :func:`tests.celery.scenario.row_checks` as it must be."""
    return (
        checks["experiments"] == checks["completed"] == tasks
        and checks["rows"] == tasks * points
        and checks["map_indexes_ok"] == 1
        and all(checks[k] == 0 for k in (*CLEAN_CHECKS, *LATEST_CHECKS))
    )


def log_error_lines(cluster: AirflowCluster, bouncer: PgBouncerServer | None) -> dict[str, list[str]]:
    """The error lines so far of the Celery workers' logs, the mapped DAG's task logs and PgBouncer's log."""
    found: dict[str, list[str]] = {"worker": [], "task": [], "pgbouncer": []}
    for log in sorted(cluster.tmp_path.glob("celery-worker-*.log")):
        text = log.read_text(errors="replace")
        found["worker"] += [m.group(0) for m in _line_matches(text)]
    for log in sorted((cluster.home / "logs").glob(f"dag_id={DAG_ID}/**/*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if any(level in line for level in _JSON_LEVELS) or (
                not line.startswith("{") and _TEXT_ERROR.search(line)
            ):
                found["task"].append(f"{log.parent.name}/{log.name}: {line[:300]}")
    if bouncer is not None and bouncer.base_dir is not None:
        text = (bouncer.base_dir / "pgbouncer.log").read_text(errors="replace")
        found["pgbouncer"] += [m.group(0) for m in _line_matches(text)]
    return found


def _line_matches(text: str) -> list[re.Match[str]]:
    """Whole lines of ``text`` that hold an error marker."""
    return [m for m in re.finditer(r"^.*$", text, re.MULTILINE) if _TEXT_ERROR.search(m.group(0))]


def sampler_db(sampler: ConnectionSampler | None) -> str:
    """The tracking database's name (the sampler's)."""
    if sampler is None:
        raise ValueError("a run through PgBouncer needs the pg_stat_activity sampler")
    return sampler.dbname


def task_failures(metadata_url: str, run_id: str) -> dict[str, int]:
    """Task instances of the run not ``success``, and those tried more than once."""
    with connect(metadata_url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE state IS DISTINCT FROM 'success'), "
            "count(*) FILTER (WHERE try_number > 1) FROM task_instance WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, run_id),
        ).fetchone()
    assert row is not None
    return {"not_success": int(row[0]), "retried": int(row[1])}


def one_run(
    cluster: AirflowCluster,
    tracking: str,
    metadata: str,
    args: Any,
    kill: bool,
    deadline: float,
    sampler: ConnectionSampler | None = None,
    bouncer: PgBouncerServer | None = None,
) -> dict[str, Any]:
    """One triggered run of the mapped DAG; its figures and checks (with ``sampler``: the connections seen
    and the errors; the sampler runs from the trigger to the DAG run's end)."""
    load_before = loadavg()
    errors_before = log_error_lines(cluster, bouncer)
    after = (lambda: trigger(cluster, EXAMPLES, deadline)) if kill else None
    with sampler if sampler is not None else nullcontext():
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
    result = {
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
    if sampler is not None:
        failures = task_failures(metadata, outcome.run_id)
        errors_after = log_error_lines(cluster, bouncer)
        new = {k: errors_after[k][len(errors_before[k]) :] for k in errors_after}
        errors = failures["not_success"] + failures["retried"] + sum(len(v) for v in new.values())
        result["connections"] = {
            "max_server_connections_ours": sampler.max_ours,
            "max_server_connections_total": sampler.max_total,
            "samples": len(sampler.samples),
            "sample_interval_seconds": sampler.interval,
            "application_name": sampler.application_name,
            "database": sampler.dbname,
        }
        result["errors"] = errors
        result["error_detail"] = {
            "tasks_not_success": failures["not_success"],
            "tasks_retried": failures["retried"],
            **{f"{k}_log_error_lines": len(v) for k, v in new.items()},
            "samples": [line for lines in new.values() for line in lines][:5],
        }
        result["error_detail"]["task_logs_scanned"] = len(
            list((cluster.home / "logs").glob(f"dag_id={DAG_ID}/**/*.log"))
        )
        result["passed"] = result["passed"] and errors == 0
    if bouncer is not None:  # proof the tracking traffic went through it, and how long clients queued
        stats = next(r for r in bouncer.admin("SHOW STATS") if r["database"] == sampler_db(sampler))
        result["pgbouncer_stats"] = {
            "transactions": int(stats["total_xact_count"]),  # type: ignore[call-overload]
            "queries": int(stats["total_query_count"]),  # type: ignore[call-overload]
            "client_wait_seconds": round(int(stats["total_wait_time"]) / 1e6, 1),  # type: ignore[call-overload]
        }
    return result


def cluster_runs(
    pg: TempPostgres,
    broker: TempRedis,
    work: Path,
    args: Any,
    console: Console,
    bouncer: PgBouncerServer | None,
) -> dict[str, Any]:
    """A fresh cluster on fresh databases: the clean run, and (direct, unless --no-kill) the worker-killed
    run and the examples. With ``bouncer`` the tracking connection goes through it."""
    suffix = "_pgbouncer" if bouncer else ""
    db = f"bench_tracking{suffix}"
    tracking = migrated_database(pg, db)
    dispose_engines()
    metadata = pg.create_database(f"bench_airflow{suffix}")
    env = {
        **RECOVERY_ENV,
        "MLTRACK_CELERY_TASKS": str(args.tasks),
        "MLTRACK_CELERY_POINTS": str(args.points),
        "MLTRACK_CELERY_PAUSE": str(args.pause),
    }
    if bouncer is not None:  # the hook's pool_mode extra: NullPool, no prepared statements
        extra = {"url": bouncer.url(db, pool_mode_arg=False), "pool_mode": "transaction"}
        env["AIRFLOW_CONN_MLTRACK_DEFAULT"] = json.dumps({"conn_type": "mltrack", "extra": extra})
    home = work / f"cluster{suffix or '_direct'}"
    home.mkdir()
    cluster = AirflowCluster(
        home,
        dags_folder(home / "dags"),
        tracking,
        secret=secrets.token_urlsafe(24),  # JWT signing key of this throwaway cluster
        executor="CeleryExecutor",
        metadata_url=metadata,
        broker_url=broker.url(),
        worker_concurrency=args.concurrency,
        extra_env=env,
    )
    results: dict[str, Any] = {}
    with cluster:
        deadline = time.monotonic() + 3600
        label = "PgBouncer" if bouncer else "clean"
        console.print(f"{label}: {args.tasks} tasks x {args.points} points, concurrency {args.concurrency}")
        sampler = ConnectionSampler(pg, db, interval=SAMPLE_INTERVAL)
        results[label] = one_run(cluster, tracking, metadata, args, False, deadline, sampler, bouncer)
        if bouncer is None and not args.no_kill:
            console.print("worker killed: the same, SIGKILL of the worker mid-run ...")
            results["worker killed"] = one_run(cluster, tracking, metadata, args, True, deadline)
            cluster.wait("the example DAG runs", lambda: examples_finished(metadata), deadline)
            with connect(metadata) as conn:
                results["examples"] = dag_run_states(conn, EXAMPLES)
    return results


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
    parser.add_argument(
        "--pgbouncer",
        choices=("both", "only", "off"),
        default="both",
        help="the clean run through PgBouncer too (both, default), alone (only) or not (off)",
    )
    parser.add_argument(
        "--pool-size", type=int, default=10, help="PgBouncer's default_pool_size (default 10)"
    )
    args = parser.parse_args()
    for name in ("tasks", "points", "concurrency", "pool_size"):
        if getattr(args, name) < 1:
            flag = name.replace("_", "-")
            parser.error(f"--{flag} must be at least 1, not {getattr(args, name)}")
    console = Console(width=160)  # the table's columns, also when not a terminal
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="mltrack-celery-bench-"))
    started = time.monotonic()
    try:
        with temp_postgres() as pg, TempRedis() as broker, ExitStack() as stack:
            machine = machine_info(pg)
            if args.pgbouncer != "only":
                results.update(cluster_runs(pg, broker, work, args, console, None))
            if args.pgbouncer != "off":
                bouncer = stack.enter_context(
                    PgBouncerServer(pg, pool_mode="transaction", default_pool_size=args.pool_size)
                )
                results.update(cluster_runs(pg, broker, work, args, console, bouncer))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - started
    runs = {label: r for label, r in results.items() if label != "examples"}
    print_table(
        console,
        f"{args.tasks} mapped @task.mltrack tasks x {args.points} points on CeleryExecutor (Redis), worker "
        f"concurrency {args.concurrency} ({machine['node']}, {machine['cpus']} CPUs; PgBouncer "
        f"default_pool_size={args.pool_size})",
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
            "errors",
            "max conns ours (all)",
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
                str(r.get("errors", "-")),
                (
                    f"{r['connections']['max_server_connections_ours']} "
                    f"({r['connections']['max_server_connections_total']})"
                    if "connections" in r
                    else "-"
                ),
                "yes" if r["passed"] else "NO",
            )
            for label, r in runs.items()
        ),
    )
    if "examples" in results:
        console.print(f"example DAG runs on the fresh worker: {results['examples']}")
    bounced = runs.get("PgBouncer")
    if bounced is not None:
        within = bounced["connections"]["max_server_connections_ours"] <= args.pool_size
        console.print(
            f"PgBouncer: at most {bounced['connections']['max_server_connections_ours']} server connections "
            f"of ours (pool size {args.pool_size}): {'ok' if within else 'OVER THE POOL SIZE'}"
        )
        bounced["passed"] = bounced["passed"] and within
    ok = all(r["passed"] for r in runs.values()) and results.get("examples", EXAMPLES_EXPECTED) == (
        EXAMPLES_EXPECTED
    )
    payload = {
        "benchmark": "celery",
        "config": {
            "tasks": args.tasks,
            "points": args.points,
            "concurrency": args.concurrency,
            "pause": args.pause,
            "kill": not args.no_kill and args.pgbouncer != "only",
            "pgbouncer": args.pgbouncer,
            "recovery_env": RECOVERY_ENV,
        },
        "machine": machine,
        "total_seconds": round(total, 1),
        "passed": ok,
        "runs": results,
    }
    if bounced is not None:
        direct = runs.get("clean")
        payload["pgbouncer"] = {
            "pool_mode": "transaction",
            "default_pool_size": args.pool_size,
            "connection_extra": {"pool_mode": "transaction"},
            "metadata": "direct (Airflow's own database is not behind PgBouncer)",
            "sample_interval_seconds": SAMPLE_INTERVAL,
            "max_server_connections_ours": bounced["connections"]["max_server_connections_ours"],
            "max_server_connections_total": bounced["connections"]["max_server_connections_total"],
            "within_pool_size": bounced["connections"]["max_server_connections_ours"] <= args.pool_size,
            "errors": bounced["errors"],
            "rows": bounced["rows"],
            "wall_seconds": bounced["wall_seconds"],
            "rows_per_second": bounced["rows_per_second"],
            "direct_rows_per_second": direct["rows_per_second"] if direct else None,
            "pgbouncer_stats": bounced["pgbouncer_stats"],
            "direct_max_server_connections_ours": (
                direct["connections"]["max_server_connections_ours"] if direct else None
            ),
            "checks_passed": bounced["passed"],
            "run": "runs.PgBouncer",
        }
    write_results(args.json, payload, console)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
