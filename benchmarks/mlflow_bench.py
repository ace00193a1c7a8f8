"""airflow-mltrack against MLflow's SqlAlchemyStore, both on ONE throwaway PostgreSQL server.

MLflow is never a dependency of this package: the bench makes its own venv (``benchmarks/.mlflow-venv``,
git-ignored; created and filled with ``MLFLOW_REQUIREMENTS`` from PyPI on first use, reused after) and
drives MLflow there through ``benchmarks/mlflow_worker.py``, run as a plain script by that venv's python
(JSON lines over a pipe; MLflow calls are
timed inside the worker, ours in this process). SQLAlchemy 2.1, which MLflow pulls in, maps
``postgresql://`` to psycopg 3, hence ``psycopg[binary]`` in that venv.

One run, one server (tests/support/pgserver.py ``TempPostgres``, on disk), four databases: ours and MLflow's
for ingest, ours and MLflow's for search. MLflow's own ``SqlAlchemyStore`` creates its schema (its
Alembic migrations).

1. Ingest, N rows (``--rows``, default 200k; the rows of ``_common.make_rows``: 20 metric names x
   N/20 steps, like a training loop): MLflow ``SqlAlchemyStore.log_batch`` of 1000 metrics a call
   (MLflow's per-call limit) into one run; our ``TrackingStore.log_metrics`` of the same rows in 1k-row
   batches and in one call; raw binary COPY into a table shaped like our ``metrics``
   (``_common.copy_raw_shape``) and into our real ``metrics`` table (``_common.copy_into_metrics``). Each
   case in a fresh database, one round each. rows/s and the ratios ours/MLflow and ours/raw.
2. Search at scale (``--runs``, default 100k runs; ``--metric-rows``, default 10M): our side is seeded by
   ``_common.seed_at_scale`` (as ui_bench): 100k experiments over 4 projects, 5 metrics x 2 splits x 10 steps each, then
   VACUUM ANALYZE. MLflow's side holds exactly the same data in MLflow's shape: one MLflow experiment per
   project, one run per experiment, metric key ``<split>_<name>`` (e.g. ``validation_accuracy``), the
   hyperparameters as params. What MLflow writes per run was learned first from 50 sample runs logged
   through MLflow itself (fluent API: start_run, log_params, log_metrics per step, end_run, in the ingest
   database): the ``runs`` row (source/user columns), the 6 tags (mlflow.user, mlflow.source.*,
   mlflow.runName), params, one ``metrics`` row per point and one ``latest_metrics`` row per key. The 100k
   runs and 10M points were NOT logged through MLflow (log_batch at the ~4k rows/s measured in part 1
   would take 40 min, and its per-row cost is what part 1 measures anyway): they are bulk-loaded with
   binary COPY from our seeded tables (``COPY (SELECT ...) TO STDOUT`` on our database into
   ``COPY ... FROM STDIN`` on MLflow's,
   one transaction after a TRUNCATE, the child tables' indexes and keys dropped and rebuilt as MLflow's
   migrations define them, then VACUUM ANALYZE). Copied rather than regenerated with generate_series
   because the seeded metric values use random(): a copy gives both systems the same values, so both
   must return the same top-10, which the bench checks. ``latest_metrics`` is loaded from our
   ``metric_latest`` (the same definition: the value at the highest step). The bench compares one
   bulk-loaded run with the sample runs (same columns set, same tag and param keys, one latest row per
   key) and records both shapes in the JSON.
   Then, interleaved in one loop (``--repeat`` times, median; one warm-up each): MLflow
   ``search_runs(experiment_ids=[proj_0], order_by=["metrics.validation_accuracy DESC"],
   max_results=10)`` against our ``TrackingStore.leaderboard("proj_0", "accuracy", "validation")``
   top-10, and MLflow ``get_metric_history`` against our ``metric_history`` for one run / experiment.
   EXPLAIN (ANALYZE, BUFFERS) of both sides' SQL goes into the JSON.
3. Growth: the same timings first at ``--grow-from`` metric rows (default a tenth: 1M, one step per
   metric), then at ``--metric-rows`` (10M): both sides are reloaded at the larger size (our tables
   truncated and seeded again by ``seed_at_scale``, MLflow's copied again).

The machine's load average is sampled at every phase (other people's tests share the 2 cores).
Prints rich tables and writes benchmarks/results/mlflow.json (machine, versions, row counts, timings).
The full run takes 7-8 minutes on 2 shared cores (load average 3-5), the first one plus ~1.5 min for the
venv. Our databases are ~1.9 GB at 10M rows, MLflow's ~3.5 GB: the server needs ~6 GB of free disk.

Usage: python -m benchmarks.mlflow_bench [--rows 200000] [--runs 100000] [--metric-rows 10000000]
       [--grow-from 1000000] [--repeat 5] [--json benchmarks/results/mlflow.json]
       python -m benchmarks.mlflow_bench --quick    # 20k rows, 10k runs, 100k -> 1M metric rows
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from rich.console import Console
from sqlalchemy.engine import make_url

from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.engine import dispose_engines
from benchmarks._common import (
    METRIC_NAMES,
    ROOT,
    SPLITS,
    arguments,
    batch_stats,
    captured_sql,
    copy_into_metrics,
    copy_raw_shape,
    explain_analyze,
    fresh_store,
    loadavg,
    log_in_batches,
    machine_info,
    make_rows,
    migrated_database,
    print_table,
    seed_at_scale,
    stats_ms,
    temp_postgres,
    timed,
    timed_ms,
    write_results,
)
from tests.support.pgserver import TempPostgres

MLFLOW_VERSION = "3.17.2"
MLFLOW_REQUIREMENTS = (f"mlflow=={MLFLOW_VERSION}", "psycopg[binary]==3.3.9")
VENV = ROOT / "benchmarks" / ".mlflow-venv"
WORKER = ROOT / "benchmarks" / "mlflow_worker.py"
ARTIFACT_ROOT = "/tmp/mlflow-bench-artifacts"  # never written to; runs.artifact_uri is varchar(200)

BATCH = 1000  # MLflow's log_batch limit is 1000 metrics a call
INGEST_NAMES = 20
SAMPLE_RUNS = 50
SAMPLE_STEPS = 10
SAMPLE_PARAMS = {
    "learning_rate": "0.01",
    "optimizer": "adam",
    "batch_size": "64",
    "epochs": "15",
    "dropout": "0.25",
    "seed": "7",
}
PROJECT = "proj_0"
METRIC, SPLIT = "accuracy", "validation"
HISTORY_METRIC = "loss"
MLFLOW_KEYS = [f"{split}_{name}" for split in SPLITS for name in METRIC_NAMES]

RUN_COLUMNS = (
    "run_uuid",
    "name",
    "source_type",
    "source_name",
    "entry_point_name",
    "user_id",
    "status",
    "start_time",
    "end_time",
    "deleted_time",
    "source_version",
    "lifecycle_stage",
    "artifact_uri",
    "experiment_id",
)
# Each is a SELECT on OUR seeded database whose rows are COPYed into MLflow's table (binary COPY: the
# column types match MLflow's: varchar <- text, bigint, integer, double precision, boolean).
# run_uuid = md5(our experiment_id): 32 hex characters like MLflow's uuid4().hex, and derivable.
RUNS_SOURCE = """
SELECT md5(e.experiment_id::text), e.name, %(source_type)s::text, %(source_name)s::text,
       %(entry_point_name)s::text, %(user_id)s::text,
       CASE e.status WHEN 'Completed' THEN 'FINISHED' WHEN 'Failed' THEN 'FAILED'
                     WHEN 'Running' THEN 'RUNNING' WHEN 'Cancelled' THEN 'KILLED' ELSE 'SCHEDULED' END,
       (extract(epoch FROM e.start_time) * 1000)::bigint,
       (extract(epoch FROM e.end_time) * 1000)::bigint,
       NULL::bigint,
       %(source_version)s::text,
       'active',
       x.artifact_location || '/' || md5(e.experiment_id::text) || '/artifacts',
       x.experiment_id
FROM experiments e
JOIN projects p ON p.project_id = e.project_id
JOIN unnest(%(names)s::text[], %(ids)s::int[], %(locations)s::text[])
     AS x(name, experiment_id, artifact_location) ON x.name = p.name
"""
TAGS_SOURCE = """
SELECT t.key, CASE WHEN t.key = 'mlflow.runName' THEN e.name ELSE t.value END, md5(e.experiment_id::text)
FROM experiments e CROSS JOIN unnest(%(keys)s::text[], %(values)s::text[]) AS t(key, value)
"""
PARAMS_SOURCE = """
SELECT h.key, h.value #>> '{}', md5(e.experiment_id::text)
FROM experiments e CROSS JOIN jsonb_each(e.hyperparameters) AS h
"""
METRICS_SOURCE = """
SELECT m.evaluation_set || '_' || m.name, m.value, (extract(epoch FROM m.recorded_at) * 1000)::bigint,
       md5(m.experiment_id::text), m.step::bigint, false
FROM metrics m
"""
LATEST_SOURCE = """
SELECT l.evaluation_set || '_' || l.name, l.value, (extract(epoch FROM l.recorded_at) * 1000)::bigint,
       l.step::bigint, false, md5(l.experiment_id::text)
FROM metric_latest l
"""
# (MLflow table, its columns, source SELECT); runs first (children reference it).
MLFLOW_LOADS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("runs", RUN_COLUMNS, RUNS_SOURCE),
    ("tags", ("key", "value", "run_uuid"), TAGS_SOURCE),
    ("params", ("key", "value", "run_uuid"), PARAMS_SOURCE),
    ("metrics", ("key", "value", "timestamp", "run_uuid", "step", "is_nan"), METRICS_SOURCE),
    ("latest_metrics", ("key", "value", "timestamp", "step", "is_nan", "run_uuid"), LATEST_SOURCE),
)
# Loaded without their indexes and keys, rebuilt afterwards (runs keeps its: 1 row per experiment).
REBUILT_TABLES = ("tags", "params", "metrics", "latest_metrics")


# --------------------------------------------------------------------------- MLflow venv and worker


def ensure_mlflow_venv(venv: Path, console: Console) -> Path:
    """The venv's python, with ``MLFLOW_REQUIREMENTS`` installed (created on first use)."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import mlflow, psycopg; print(mlflow.__version__)"]

    def installed() -> bool:
        if not python.exists():
            return False
        found = subprocess.run(probe, capture_output=True, text=True, check=False)
        return found.returncode == 0 and found.stdout.strip() == MLFLOW_VERSION

    if installed():
        return python
    start = time.perf_counter()
    console.print(f"creating {venv} with {' '.join(MLFLOW_REQUIREMENTS)} ...")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *MLFLOW_REQUIREMENTS],
        check=True,
    )
    if not installed():
        raise RuntimeError(f"{venv}: mlflow {MLFLOW_VERSION} still not importable after pip install")
    console.print(f"MLflow venv ready in {time.perf_counter() - start:.0f}s")
    return python


class MlflowWorker:
    """benchmarks/mlflow_worker.py in the MLflow venv: one JSON command a line, one JSON answer a line."""

    def __init__(self, python: Path, workdir: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
        env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
        self.process = subprocess.Popen(
            [str(python), str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=workdir,
            env=env,
        )

    def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"MLflow worker died (exit {self.process.wait()}) during {cmd}")
        answer = json.loads(line)
        if not answer.pop("ok"):
            raise RuntimeError(f"MLflow worker, {cmd}: {answer['error']}\n{answer['traceback']}")
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask("quit")
                self.process.wait(timeout=30)
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                self.process.kill()


def mlflow_uri(pg: TempPostgres, db: str) -> str:
    """The plain ``postgresql://`` URI an MLflow user would configure (SQLAlchemy 2.1: psycopg 3)."""
    return make_url(pg.url(db)).set(drivername="postgresql").render_as_string(hide_password=False)


# --------------------------------------------------------------------------- helpers


LOAD_SAMPLES: list[dict[str, Any]] = []


def note_load(phase: str) -> None:
    """Record the machine's load average (the bench shares 2 cores with other people's tests)."""
    LOAD_SAMPLES.append({"phase": phase, "at": time.strftime("%H:%M:%S"), "loadavg": loadavg()})


def code_version() -> dict[str, Any]:
    """The commit measured, and which files of the store differ from it in the work tree."""

    def git(*argv: str) -> str:
        found = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
        return found.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "subject": git("log", "-1", "--format=%s"),
        "uncommitted_store_files": git("diff", "--name-only", "HEAD", "--", "airflow_mltrack/store").split(),
    }


def run_uuid(experiment_id: int) -> str:
    """The MLflow run_uuid the bulk load gives our experiment ``experiment_id`` (md5 of its id)."""
    return hashlib.md5(str(experiment_id).encode(), usedforsecurity=False).hexdigest()


# --------------------------------------------------------------------------- 1. ingest


INGEST_DATABASES = ("ingest_raw", "ingest_copy", "ingest_one", "ingest_batched", "mlflow_ingest")
RAW = "raw COPY (table shaped like our metrics)"
RAW_METRICS = "raw COPY into our metrics table"


def bench_ingest(pg: TempPostgres, worker: MlflowWorker, n: int, console: Console) -> dict[str, Any]:
    """Raw COPY, our log_metrics (one call, 1k batches) and MLflow log_batch (1k) of the same n rows,
    each case in a fresh database (``fresh_store``) so none writes into a table another grew."""
    pg.create_database("mlflow_ingest")
    opened = worker.ask("open", uri=mlflow_uri(pg, "mlflow_ingest"), artifact_root=ARTIFACT_ROOT)
    console.print(f"MLflow {opened['versions']['mlflow']} schema created in {opened['seconds']:.1f}s")
    rows = make_rows(n, INGEST_NAMES)
    results: dict[str, dict[str, Any]] = {}

    note_load("ingest start")
    _, exp = fresh_store(pg, "ingest_raw")
    results[RAW] = {"rows": n, "seconds": copy_raw_shape(pg, "ingest_raw", rows, exp)}
    _, exp = fresh_store(pg, "ingest_copy")
    results[RAW_METRICS] = {"rows": n, "seconds": copy_into_metrics(pg, "ingest_copy", rows, exp)}
    store, exp = fresh_store(pg, "ingest_one")
    results["ours: log_metrics, one call"] = {
        "rows": n,
        "seconds": timed(lambda: store.log_metrics(exp, rows)),
    }
    store, exp = fresh_store(pg, "ingest_batched")
    results["ours: log_metrics, 1k-row batches"] = batch_stats(n, log_in_batches(store, exp, rows, BATCH))
    mlflow_times = worker.ask("ingest", rows=n, names=INGEST_NAMES, batch=BATCH)["batch_seconds"]
    results["MLflow: log_batch, 1k metrics a call"] = batch_stats(n, mlflow_times)
    note_load("ingest end")
    for label, entry in results.items():
        entry["rows_per_second"] = entry["rows"] / entry["seconds"]
        console.print(f"  {label:40s} {entry['rows_per_second']:>10,.0f} rows/s")

    def rate(case: str) -> float:
        return results[case]["rows_per_second"]

    ours_batched, ours_one = rate("ours: log_metrics, 1k-row batches"), rate("ours: log_metrics, one call")
    mlflow, raw_rate = rate("MLflow: log_batch, 1k metrics a call"), rate(RAW)
    ratios = {
        "ours 1k batches / MLflow log_batch": ours_batched / mlflow,
        "ours one call / MLflow log_batch": ours_one / mlflow,
        "ours 1k batches / raw COPY": ours_batched / raw_rate,
        "ours one call / raw COPY": ours_one / raw_rate,
        "MLflow log_batch / raw COPY": mlflow / raw_rate,
        "ours 1k batches / raw COPY into our metrics": ours_batched / rate(RAW_METRICS),
        "ours one call / raw COPY into our metrics": ours_one / rate(RAW_METRICS),
    }

    # What MLflow writes per run, from runs logged through MLflow itself (used to shape the bulk load).
    start = time.perf_counter()
    sampled = worker.ask(
        "sample",
        experiment="sample",
        runs=SAMPLE_RUNS,
        steps=SAMPLE_STEPS,
        keys=MLFLOW_KEYS,
        params=SAMPLE_PARAMS,
    )
    console.print(f"logged {SAMPLE_RUNS} sample runs through MLflow in {time.perf_counter() - start:.1f}s")
    with pg.connect("mlflow_ingest") as conn:
        shapes = [run_shape(conn, r) for r in sampled["run_ids"]]
    template = shapes[0]
    if any(shape_signature(s) != shape_signature(template) for s in shapes):
        raise RuntimeError("MLflow wrote differently shaped sample runs; the bulk load assumes one shape")
    dispose_engines()
    return {
        "rows": n,
        "results": results,
        "ratios": ratios,
        "sample": {"runs": SAMPLE_RUNS, "steps": SAMPLE_STEPS, "shape": template},
        "mlflow_versions": opened["versions"],
    }


def run_shape(conn: psycopg.Connection, uuid: str) -> dict[str, Any]:
    """The rows MLflow holds for one run: its ``runs`` row, tags, params and metric row counts."""
    cur = conn.cursor(row_factory=dict_row)
    run = cur.execute("SELECT * FROM runs WHERE run_uuid = %s", (uuid,)).fetchone()
    if run is None:
        raise RuntimeError(f"no MLflow run {uuid}")
    tags = dict(
        conn.execute("SELECT key, value FROM tags WHERE run_uuid = %s ORDER BY key", (uuid,)).fetchall()
    )
    params = dict(
        conn.execute("SELECT key, value FROM params WHERE run_uuid = %s ORDER BY key", (uuid,)).fetchall()
    )
    metric_rows, metric_keys = conn.execute(
        "SELECT count(*), count(DISTINCT key) FROM metrics WHERE run_uuid = %s", (uuid,)
    ).fetchone()
    latest_rows = conn.execute("SELECT count(*) FROM latest_metrics WHERE run_uuid = %s", (uuid,)).fetchone()[
        0
    ]
    return {
        "run": {k: v for k, v in run.items() if k not in ("run_uuid", "start_time", "end_time")},
        "null_columns": sorted(k for k, v in run.items() if v is None),
        "tags": tags,
        "params": params,
        "metric_rows": metric_rows,
        "metric_keys": metric_keys,
        "latest_metrics_rows": latest_rows,
    }


def shape_signature(shape: dict[str, Any]) -> tuple:
    """What must be equal between a sample run and a bulk-loaded one (not names, values or step counts)."""
    return (
        tuple(shape["null_columns"]),
        tuple(sorted(shape["tags"])),
        tuple(sorted(shape["params"])),
        shape["metric_keys"],
        shape["latest_metrics_rows"],
        shape["run"]["source_type"],
        shape["run"]["user_id"],
        shape["run"]["lifecycle_stage"],
    )


# --------------------------------------------------------------------------- 2. load MLflow's schema


def truncate_ours(pg: TempPostgres, db: str) -> None:
    """Empty every table of our schema (``seed_at_scale`` inserts fixed ids), keeping the migration state."""
    with pg.connect(db) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename <> 'mltrack_alembic_version'"
            )
        ]
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(map(sql.Identifier, tables))
            )
        )


def drop_keys(conn: psycopg.Connection, tables: tuple[str, ...]) -> list[sql.Composable]:
    """Drop the indexes, primary/unique keys and foreign keys of ``tables``; return the statements that
    rebuild them (keys, then foreign keys, then plain indexes), from the server's own definitions."""
    constraints = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
        "WHERE conrelid = ANY(%s::regclass[]) AND contype IN ('p', 'u', 'f')",
        (list(tables),),
    ).fetchall()
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = ANY(%s) AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        (list(tables),),
    ).fetchall()
    for table, name, _, _ in sorted(constraints, key=lambda c: c[3] != "f"):  # foreign keys first
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table), sql.Identifier(name))
        )
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    rebuild: list[sql.Composable] = [
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
        )
        for table, name, definition, _ in sorted(constraints, key=lambda c: c[3] == "f")  # keys first
    ]
    rebuild += [sql.SQL(definition) for _, definition in indexes]
    return rebuild


def copy_rows(
    source: psycopg.Connection,
    target: psycopg.Connection,
    query: str,
    params: dict[str, Any] | None,
    table: str,
    columns: tuple[str, ...],
) -> int:
    """Stream ``query``'s rows from ``source`` into ``table`` on ``target`` with binary COPY."""
    copy_out = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(sql.SQL(query.strip()))
    copy_in = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with source.cursor() as out_cur, target.cursor() as in_cur:
        with out_cur.copy(copy_out, params) as out, in_cur.copy(copy_in) as into:
            for block in out:
                into.write(block)
        return in_cur.rowcount


def load_mlflow(
    pg: TempPostgres, ours: str, theirs: str, template: dict[str, Any], console: Console
) -> dict[str, Any]:
    """Replace the runs, tags, params, metrics and latest_metrics of MLflow database ``theirs`` with our
    database ``ours``'s experiments and metrics, in MLflow's shape (``template``: a sample run's)."""
    times: dict[str, float] = {}
    counts: dict[str, int] = {}
    start = time.perf_counter()
    with pg.connect(ours) as source, pg.connect(theirs, autocommit=False) as target:
        projects = [r[0] for r in source.execute("SELECT name FROM projects")]
        experiments = target.execute(
            "SELECT name, experiment_id, artifact_location FROM experiments WHERE name = ANY(%s)", (projects,)
        ).fetchall()
        if len(experiments) != len(projects):
            raise RuntimeError(
                f"MLflow has {len(experiments)} of our {len(projects)} projects as experiments"
            )
        run = template["run"]
        tags = dict(template["tags"])
        params: dict[str, dict[str, Any] | None] = {
            "runs": {
                "source_type": run["source_type"],
                "source_name": run["source_name"],
                "entry_point_name": run["entry_point_name"],
                "user_id": run["user_id"],
                "source_version": run["source_version"],
                "names": [e[0] for e in experiments],
                "ids": [e[1] for e in experiments],
                "locations": [e[2] for e in experiments],
            },
            "tags": {"keys": list(tags), "values": list(tags.values())},
        }
        target.execute("SET maintenance_work_mem = '2GB'")
        target.execute("SET max_parallel_maintenance_workers = 4")
        # TRUNCATE in the loading transaction: with wal_level=minimal the COPYs then skip the WAL.
        target.execute("TRUNCATE runs CASCADE")
        rebuild = drop_keys(target, REBUILT_TABLES)
        for table, columns, query in MLFLOW_LOADS:
            t0 = time.perf_counter()
            counts[table] = copy_rows(source, target, query, params.get(table), table, columns)
            times[f"copy {table}"] = time.perf_counter() - t0
            console.print(f"  MLflow {table}: {counts[table]:,} rows in {times[f'copy {table}']:.1f}s")
        t0 = time.perf_counter()
        for statement in rebuild:
            target.execute(statement)
        target.commit()
        times["indexes + keys"] = time.perf_counter() - t0
        console.print(f"  MLflow indexes + keys rebuilt in {times['indexes + keys']:.1f}s")
        target.autocommit = True
        t0 = time.perf_counter()
        target.execute("VACUUM (ANALYZE)")
        times["vacuum analyze"] = time.perf_counter() - t0
        size = target.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    times["total"] = time.perf_counter() - start
    console.print(f"loaded MLflow's tables in {times['total']:.1f}s, database size {size}")
    return {"seconds": times, "rows": counts, "db_size": size}


# --------------------------------------------------------------------------- 2. search timings


def explain_leaderboard(store: TrackingStore) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the SQL our leaderboard sends (captured at the cursor)."""
    with captured_sql(store.engine) as captured:
        store.leaderboard(PROJECT, METRIC, SPLIT, "max", 10)
    return explain_analyze(store.engine, *max(captured, key=lambda s: len(s[0])))


def execution_ms(plan: list[str]) -> float:
    """The ``Execution Time`` of an EXPLAIN ANALYZE output."""
    line = next(line for line in plan if line.startswith("Execution Time:"))
    return float(line.split()[2])


def bench_search(
    store: TrackingStore, worker: MlflowWorker, experiment_id: str, mid: int, repeat: int
) -> dict[str, Any]:
    """Our leaderboard / metric_history and MLflow's search_runs / get_metric_history, interleaved."""
    search = {
        "experiment_ids": [experiment_id],
        "order_by": [f"metrics.{SPLIT}_{METRIC} DESC"],
        "max_results": 10,
    }
    history = {"run_id": run_uuid(mid), "key": f"{SPLIT}_{HISTORY_METRIC}"}

    def ours_top() -> list[dict[str, Any]]:
        return store.leaderboard(PROJECT, METRIC, SPLIT, "max", 10)

    def ours_history() -> list[dict[str, Any]]:
        return store.metric_history(mid, HISTORY_METRIC, SPLIT)

    ours_rows, theirs = ours_top(), worker.ask("search", **search)  # warm-up, and the answers to compare
    ours_points, their_points = ours_history(), worker.ask("history", **history)
    times: dict[str, list[float]] = {
        k: [] for k in ("ours_top", "mlflow_top", "ours_history", "mlflow_history")
    }
    for _ in range(repeat):
        times["ours_top"].append(timed_ms(ours_top)[0])
        times["mlflow_top"].append(worker.ask("search", **search)["ms"])
        times["ours_history"].append(timed_ms(ours_history)[0])
        times["mlflow_history"].append(worker.ask("history", **history)["ms"])
    ours_top10 = [[r["name"], r["value"]] for r in ours_rows]
    return {
        "timings": {
            "ours: leaderboard top-10": stats_ms(times["ours_top"]),
            "MLflow: search_runs top-10": stats_ms(times["mlflow_top"]),
            "ours: metric_history (1 experiment)": stats_ms(times["ours_history"]),
            "MLflow: get_metric_history (1 run)": stats_ms(times["mlflow_history"]),
        },
        "top10": {
            "same": ours_top10 == theirs["runs"],
            "ours": ours_top10,
            "mlflow": theirs["runs"],
            "mlflow_params_per_run": theirs["params_per_run"],
            "mlflow_tags_per_run": theirs["tags_per_run"],
        },
        "history_points": {"ours": len(ours_points), "mlflow": their_points["points"]},
        "search_args": search,
        "history_args": history,
    }


def bench_scale(
    pg: TempPostgres,
    worker: MlflowWorker,
    runs: int,
    sizes: list[int],
    template: dict[str, Any],
    repeat: int,
    console: Console,
) -> list[dict[str, Any]]:
    url = migrated_database(pg, "search")
    pg.create_database("mlflow_search")
    worker.ask("open", uri=mlflow_uri(pg, "mlflow_search"), artifact_root=ARTIFACT_ROOT)
    store = TrackingStore.from_url(url)
    mid = runs // 2 + 1  # the experiment ui_bench times metric_history on
    out = []
    for i, metric_rows in enumerate(sizes):
        console.rule(f"{runs:,} runs / {metric_rows:,} metric rows")
        note_load(f"seed {metric_rows:,}")
        if i:
            truncate_ours(pg, "search")
        seeding = seed_at_scale(pg, "search", runs, metric_rows, console)
        if i == 0:
            names = [r[0] for r in pg.psql("SELECT name FROM projects ORDER BY project_id", "search")]
            worker.ask("create_experiments", names=names)
        loaded = load_mlflow(pg, "search", "mlflow_search", template, console)
        bulk_shape = run_shape_of(pg, "mlflow_search", run_uuid(mid))
        found = pg.psql("SELECT experiment_id FROM experiments WHERE name = %s", "mlflow_search", (PROJECT,))
        experiment_id = str(found[0][0])
        note_load(f"time {metric_rows:,}")
        timing = bench_search(store, worker, experiment_id, mid, repeat)
        note_load(f"timed {metric_rows:,}")
        for label, entry in timing["timings"].items():
            console.print(
                f"  {label:40s} {entry['median_ms']:9.2f} ms"
                f"  (min {entry['min_ms']:.2f}, max {entry['max_ms']:.2f})"
            )
        console.print(f"  same top-10 on both sides: {timing['top10']['same']}")
        plans = {
            "ours: leaderboard": explain_leaderboard(store),
            "MLflow: search_runs": worker.ask("explain_search", **timing["search_args"])["statements"],
        }
        sql_ms = {
            "ours: leaderboard top-10": execution_ms(plans["ours: leaderboard"]),
            "MLflow: search_runs top-10": sum(execution_ms(s["plan"]) for s in plans["MLflow: search_runs"]),
        }
        console.print(
            "  SQL execution time (EXPLAIN ANALYZE): "
            + ", ".join(f"{label} {ms:.2f} ms" for label, ms in sql_ms.items())
        )
        out.append(
            {
                "runs": runs,
                "metric_rows": seeding["metrics"],
                "steps": seeding["steps"],
                "seeding_ours": seeding,
                "loading_mlflow": loaded,
                "bulk_run_shape": bulk_shape,
                "shape_matches_sample": shape_signature(bulk_shape) == shape_signature(template),
                **timing,
                "sql_execution_ms": sql_ms,
                "plans": plans,
            }
        )
    dispose_engines()
    return out


def run_shape_of(pg: TempPostgres, db: str, uuid: str) -> dict[str, Any]:
    with pg.connect(db) as conn:
        return run_shape(conn, uuid)


# --------------------------------------------------------------------------- report


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def print_report(ingest: dict[str, Any], scale: list[dict[str, Any]], console: Console) -> None:
    results = ingest["results"]
    mlflow_rate = results["MLflow: log_batch, 1k metrics a call"]["rows_per_second"]
    raw_rate = results[RAW]["rows_per_second"]
    print_table(
        console,
        f"Ingest of {ingest['rows']:,} metric rows, one PostgreSQL server",
        ("case", "seconds", "rows/s", "ms/batch", "vs MLflow", "vs raw COPY"),
        (
            (
                name,
                f"{entry['seconds']:.2f}",
                f"{entry['rows_per_second']:,.0f}",
                f"{entry['ms_per_batch_median']:.1f}" if "ms_per_batch_median" in entry else "",
                ratio(entry["rows_per_second"], mlflow_rate),
                f"{entry['rows_per_second'] / raw_rate:.0%}",
            )
            for name, entry in results.items()
        ),
    )

    runs = scale[0]["runs"]
    repeat = len(scale[0]["timings"]["ours: leaderboard top-10"]["runs_ms"])
    grows = len(scale) > 1
    columns = ["call", *(f"{entry['metric_rows']:,} metric rows" for entry in scale)]
    if grows:
        columns.append("growth (median)")
    rows: list[tuple[str, ...]] = []
    for label in scale[0]["timings"]:
        cells = [
            f"{e['timings'][label]['median_ms']:.2f} ({e['timings'][label]['min_ms']:.2f})" for e in scale
        ]
        if grows:
            cells.append(
                ratio(scale[-1]["timings"][label]["median_ms"], scale[0]["timings"][label]["median_ms"])
            )
        rows.append((label, *cells))
    for theirs, ours, label in (
        ("MLflow: search_runs top-10", "ours: leaderboard top-10", "MLflow / ours, top-10"),
        (
            "MLflow: get_metric_history (1 run)",
            "ours: metric_history (1 experiment)",
            "MLflow / ours, history",
        ),
    ):
        cells = [
            f"{e['timings'][theirs]['median_ms'] / e['timings'][ours]['median_ms']:.1f}x "
            f"({e['timings'][theirs]['min_ms'] / e['timings'][ours]['min_ms']:.1f}x)"
            for e in scale
        ]
        rows.append((label, *cells, *([""] if grows else [])))
    for label in scale[0]["sql_execution_ms"]:
        cells = [f"{e['sql_execution_ms'][label]:.2f}" for e in scale]
        if grows:
            cells.append(ratio(scale[-1]["sql_execution_ms"][label], scale[0]["sql_execution_ms"][label]))
        rows.append((f"{label.split(' top-10')[0]}: SQL only (EXPLAIN ANALYZE)", *cells))
    print_table(
        console, f"Search, {runs:,} runs: ms, median (min) of {repeat} interleaved calls", columns, rows
    )
    for entry in scale:
        console.print(
            f"{entry['metric_rows']:,} rows: same top-10 {entry['top10']['same']}, "
            f"bulk-loaded MLflow run shaped like the sample runs {entry['shape_matches_sample']}"
        )


def main() -> int:
    parser = arguments(__doc__, "mlflow_bench")
    parser.add_argument("--rows", type=int, default=200_000, help="rows for the ingest comparison")
    parser.add_argument("--runs", type=int, default=100_000, help="runs (our experiments) for search")
    parser.add_argument("--metric-rows", type=int, default=10_000_000, help="metric rows for search")
    parser.add_argument(
        "--grow-from",
        type=int,
        default=None,
        help="first time search at this many rows (default a tenth; 0: skip)",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20k rows, 10k runs, 100k -> 1M metric rows")
    parser.add_argument("--venv", type=Path, default=VENV)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.runs, args.metric_rows = 20_000, 10_000, 1_000_000
    grow_from = args.metric_rows // 10 if args.grow_from is None else args.grow_from
    sizes = [grow_from, args.metric_rows] if grow_from else [args.metric_rows]
    per_step = args.runs * len(METRIC_NAMES) * len(SPLITS)
    if any(size < per_step for size in sizes):
        parser.error(
            f"metric rows must be at least {per_step:,} (one step per metric and split of every run)"
        )
    console = Console(width=None if sys.stdout.isatty() else 130)
    started = time.perf_counter()
    note_load("start")
    code = code_version()
    python = ensure_mlflow_venv(args.venv, console)
    workdir = tempfile.mkdtemp(prefix="mlflow-bench-")
    worker = MlflowWorker(python, workdir)
    try:
        with temp_postgres() as pg:
            machine = machine_info(pg)
            ingest = bench_ingest(pg, worker, args.rows, console)
            for db in INGEST_DATABASES:
                pg.drop_database(db)
            scale = bench_scale(pg, worker, args.runs, sizes, ingest["sample"]["shape"], args.repeat, console)
    finally:
        worker.close()
        shutil.rmtree(workdir, ignore_errors=True)
    note_load("end")
    total = time.perf_counter() - started

    print_report(ingest, scale, console)
    console.print(
        f"total {total / 60:.1f} min; load average samples: "
        + ", ".join(f"{s['phase']} {s['loadavg'][0]}" for s in LOAD_SAMPLES)
    )
    write_results(
        args.json,
        {
            "machine": machine,
            "code": code,
            "mlflow": {"requirements": list(MLFLOW_REQUIREMENTS), "versions": ingest.pop("mlflow_versions")},
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - total)),
            "total_seconds": total,
            "load": LOAD_SAMPLES,
            "ingest": ingest,
            "search": scale,
        },
        console,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
