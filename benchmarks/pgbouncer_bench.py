"""Many tracked tasks at once, straight to PostgreSQL and through PgBouncer in transaction pooling mode.

N task processes start together (64 by default), each doing what one ``@task.mltrack`` task does through
our hook, store and Tracker (``tests/support/task_load.py``: resolve the ``mltrack`` connection, register the
placeholder model and dataset, create the experiment, move it to Running, tag it, log its points in flushes
of 1000 rows, move it to Completed, close its connection as the listener's ``before_stopping`` does). They
are forked worker-like processes, not scheduled Airflow tasks: the scheduler's own cost is not measured.

Two runs on fresh databases of one throwaway PostgreSQL server (on disk): "direct" (session mode: a pool
of one connection per task process) and "PgBouncer" (Debian's ``pgbouncer``, ``pool_mode = transaction``,
``default_pool_size`` = --pool-size; the connection's ``pool_mode`` extra is ``transaction``: NullPool, no
prepared statements). During each run ``pg_stat_activity`` is sampled every 100 ms for the database's
server connections (all, and ours: ``application_name = 'mltrack'``). Reported: the most seen, the errors,
the rows (checked against ``metrics``) and rows/s (all rows over the wall time from the common start to the
last task's end).

Usage: python -m benchmarks.pgbouncer_bench [--tasks 64] [--points 10000] [--pool-size 10]
       [--json benchmarks/results/pgbouncer.json]
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Any

from rich.console import Console

from airflow_mltrack.store.engine import dispose_engines
from airflow_mltrack.store.migrations import upgrade
from benchmarks._common import arguments, loadavg, machine_info, print_table, temp_postgres, write_results
from tests.support.pgbouncer import ConnectionSampler, PgBouncerServer
from tests.support.pgserver import TempPostgres
from tests.support.task_load import run_tasks

CONN_ID = "mltrack_bench"


def one_run(
    pg: TempPostgres, db: str, url: str, extra: dict[str, Any], tasks: int, points: int
) -> dict[str, Any]:
    """``tasks`` task processes on connection ``extra`` (database ``db``); the figures of the run."""
    pg.create_database(db)
    upgrade(url)
    dispose_engines()  # this process's migration connection is not one of the tasks'
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps({"conn_type": "mltrack", "extra": extra})
    load_before = loadavg()
    with ConnectionSampler(pg, db, interval=0.1) as sampler:
        result = run_tasks(CONN_ID, tasks, points, project="bench")
    stored = pg.psql("SELECT count(*) FROM metrics", dbname=db)[0][0]
    seconds = sorted(t.seconds for t in result.tasks)
    return {
        "tasks": tasks,
        "points_per_task": points,
        "errors": len(result.errors),
        "error_samples": result.errors[:3],
        "rows_logged": result.rows,
        "rows_stored": stored,
        "wall_seconds": round(result.wall_seconds, 3),
        "first_start_to_last_end_seconds": round(result.span_seconds, 3),
        "rows_per_second": round(stored / result.wall_seconds) if result.wall_seconds else None,
        "task_seconds_median": round(statistics.median(seconds), 3),
        "task_seconds_max": round(seconds[-1], 3),
        "max_server_connections": sampler.max_total,
        "max_server_connections_ours": sampler.max_ours,
        "samples": len(sampler.samples),
        "max_checked_out_per_process": max(t.checkouts_max for t in result.tasks),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


def main() -> int:
    parser = arguments(__doc__, "pgbouncer_bench")
    parser.add_argument("--tasks", type=int, default=64, help="task processes at once (default 64)")
    parser.add_argument("--points", type=int, default=10_000, help="metric points per task (default 10000)")
    parser.add_argument(
        "--pool-size", type=int, default=10, help="PgBouncer's default_pool_size (default 10)"
    )
    args = parser.parse_args()
    console = Console()
    results: dict[str, dict[str, Any]] = {}
    with temp_postgres() as pg:
        machine = machine_info(pg)
        with PgBouncerServer(
            pg,
            pool_mode="transaction",
            default_pool_size=args.pool_size,
            max_client_conn=max(100, 4 * args.tasks),
        ) as bouncer:
            runs = {
                "direct": ("bench_direct", pg.url("bench_direct"), {"url": pg.url("bench_direct")}),
                "PgBouncer": (
                    "bench_bouncer",
                    bouncer.url("bench_bouncer"),
                    {"url": bouncer.url("bench_bouncer", pool_mode_arg=False), "pool_mode": "transaction"},
                ),
            }
            for label, (db, url, extra) in runs.items():
                console.print(f"{label}: {args.tasks} tasks x {args.points} points ...")
                results[label] = one_run(pg, db, url, extra, args.tasks, args.points)
    print_table(
        console,
        f"{args.tasks} tracked tasks at once, {args.points} points each ({machine['node']}, "
        f"{machine['cpus']} CPUs; PgBouncer default_pool_size={args.pool_size})",
        (
            "path",
            "max server conns (ours)",
            "errors",
            "rows stored",
            "wall s",
            "rows/s",
            "task s median / max",
        ),
        (
            (
                label,
                f"{r['max_server_connections']} ({r['max_server_connections_ours']})",
                str(r["errors"]),
                f"{r['rows_stored']:,}",
                f"{r['wall_seconds']:.1f}",
                f"{r['rows_per_second']:,}",
                f"{r['task_seconds_median']:.1f} / {r['task_seconds_max']:.1f}",
            )
            for label, r in results.items()
        ),
    )
    payload = {
        "machine": machine,
        "settings": {
            "tasks": args.tasks,
            "points_per_task": args.points,
            "pgbouncer_pool_mode": "transaction",
            "pgbouncer_default_pool_size": args.pool_size,
            "sample_interval_seconds": 0.1,
            "how": "forked worker-like processes through MLTrackHook + TrackingStore + Tracker "
            "(tests/support/task_load.py), not a scheduler run",
        },
        "results": results,
    }
    write_results(args.json, payload, console)
    failed = any(r["errors"] or r["rows_stored"] != args.tasks * args.points for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
