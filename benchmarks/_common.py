"""The one copy of what the benchmarks share.

- command line: :func:`arguments` (``--json`` defaulting to ``benchmarks/results/<name>.json``);
- timing and statistics: :func:`timed`, :func:`timed_ms`, :func:`stats_ms`, :func:`repeat_ms`,
  :func:`batch_stats`;
- reporting: :func:`print_table` (rich), :func:`machine_info`, :func:`loadavg`, :func:`write_results`;
- databases: :func:`temp_postgres` (``tests.support.pgserver.TempPostgres`` on disk), :func:`migrated_database`,
  :func:`temp_sqlite`, :func:`captured_sql`, :func:`explain_analyze`;
- store seeding: :func:`make_rows`, :func:`new_experiment`, :func:`fresh_store`, :func:`log_in_batches`,
  raw binary COPY (:func:`copy_into_metrics`, :func:`copy_raw_shape`) and the server-side bulk seeding of a
  large store (:func:`seed_at_scale`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, event

from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.engine import dispose_engines
from airflow_mltrack.store.migrations import migrations_dir, upgrade
from tests.support.pgserver import TempPostgres

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# ---------------------------------------------------------------------------------------------- command line


def arguments(doc: str | None, module: str) -> argparse.ArgumentParser:
    """The parser of benchmark ``module`` (e.g. ``ingest_bench``): its docstring as help, and ``--json``,
    by default ``benchmarks/results/<module without _bench>.json``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default = RESULTS / f"{module.removesuffix('_bench')}.json"
    parser.add_argument(
        "--json",
        default=str(default),
        help=f"where to write the results (default {default.relative_to(ROOT)})",
    )
    return parser


# ---------------------------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(milliseconds, result)`` of ``fn()``."""
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def stats_ms(times_ms: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and every sample of ``times_ms`` (milliseconds)."""
    return {
        "median_ms": statistics.median(times_ms),
        "min_ms": min(times_ms),
        "max_ms": max(times_ms),
        "runs_ms": [round(t, 3) for t in times_ms],
    }


def repeat_ms(fn: Callable[[], Any], repeat: int) -> dict[str, Any]:
    """One warm-up call (plan caches, connection pool, template compile), then :func:`stats_ms` of
    ``repeat`` timed calls."""
    fn()
    return stats_ms([timed(fn) * 1000 for _ in range(repeat)])


def batch_stats(rows: int, times: Sequence[float]) -> dict[str, Any]:
    """``rows`` written in batches that took ``times`` seconds each: total seconds, rows/s, median ms."""
    seconds = sum(times)
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_second": rows / seconds,
        "ms_per_batch_median": statistics.median(times) * 1000,
    }


# ---------------------------------------------------------------------------------------------- reporting


def print_table(
    console: Console,
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    left: Collection[str] = (),
) -> None:
    """A rich table: the first column and the ``left`` ones left-aligned, the others right-aligned."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] or column in left else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages (the machine is shared), or [] where unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _proc_field(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


PG_SETTINGS_SHOWN = ("shared_buffers", "work_mem", "max_parallel_workers_per_gather", "fsync", "wal_level")


def machine_info(pg: TempPostgres | None = None) -> dict[str, Any]:
    """What the figures were measured on: machine, Python and drivers, and (with ``pg``) the server's
    version and settings as it reports them."""
    memory = _proc_field("/proc/meminfo", "MemTotal")
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "node": platform.node(),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(int(memory.split()[0]) / 2**20, 1) if memory else None,
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
    }
    if pg is not None:
        info["postgresql"] = pg.psql("SHOW server_version")[0][0]
        info["postgresql_settings"] = {name: pg.psql(f"SHOW {name}")[0][0] for name in PG_SETTINGS_SHOWN}
        info["postgresql_parent_dir"] = None if pg.is_external else pg.parent_dir
    return info


def write_results(path: str | Path, payload: dict[str, Any], console: Console) -> Path:
    """Write ``payload`` as indented JSON to ``path`` (parents created) and say so."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    console.print(f"wrote {out}")
    return out


# ---------------------------------------------------------------------------------------------- databases


@contextmanager
def temp_postgres() -> Iterator[TempPostgres]:
    """A throwaway PostgreSQL server on disk (the system temp dir, not tmpfs: the figures are for a disk);
    the store's cached engines are disposed before it stops."""
    with TempPostgres(parent_dir=tempfile.gettempdir()) as pg:
        try:
            yield pg
        finally:
            dispose_engines()


def migrated_database(pg: TempPostgres, name: str) -> str:
    """Create database ``name`` on ``pg``, migrate it to our head revision; its URL."""
    url = pg.create_database(name)
    upgrade(url)
    return url


@contextmanager
def temp_sqlite(*names: str) -> Iterator[list[str]]:
    """Migrated SQLite stores ``<name>.db`` in a temp dir (removed afterwards): their URLs."""
    with tempfile.TemporaryDirectory() as tmp:
        urls = [f"sqlite:///{tmp}/{name}.db" for name in names]
        for url in urls:
            upgrade(url)
        try:
            yield urls
        finally:
            dispose_engines()


@contextmanager
def captured_sql(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every ``(statement, parameters)`` ``engine`` sends to the database inside the block."""
    statements: list[tuple[str, Any]] = []

    def before(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def explain_analyze(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The lines of ``EXPLAIN (ANALYZE, BUFFERS)`` of a captured statement, run again on ``engine``."""
    with engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)]


# ---------------------------------------------------------------------------------------------- seeding


def make_rows(n: int, names: int = 20) -> list[dict[str, Any]]:
    """``n`` training-loop rows: ``names`` metrics per step, steps growing."""
    return [
        {"name": f"metric_{i % names}", "value": i * 0.001, "step": i // names, "evaluation_set": "train"}
        for i in range(n)
    ]


def new_experiment(store: TrackingStore, name: str, project: str = "bench") -> int:
    """A new experiment in ``project`` (placeholder dataset and model registered on first use)."""
    dataset_id = store.register_dataset(project, "data", "Tabular")
    model_id = store.register_model(project, "model", "none")
    return store.create_experiment(project, name, model_id, dataset_id)


def fresh_store(pg: TempPostgres, name: str) -> tuple[TrackingStore, int]:
    """A store on a new migrated database ``name`` and a new experiment in it."""
    store = TrackingStore.from_url(migrated_database(pg, name))
    return store, new_experiment(store, name)


def log_in_batches(
    store: TrackingStore, experiment_id: int, rows: list[dict[str, Any]], size: int
) -> list[float]:
    """``rows`` logged ``size`` at a time: the seconds of each ``log_metrics`` call."""
    return [
        timed(lambda chunk=rows[offset : offset + size]: store.log_metrics(experiment_id, chunk))
        for offset in range(0, len(rows), size)
    ]


# A plain table with our metric key and 3 indexes but no foreign key (issue 6's reference shape).
RAW_DDL = """
CREATE TABLE raw_metrics (
    metric_id bigserial PRIMARY KEY,
    experiment_id integer NOT NULL,
    name varchar(100) NOT NULL,
    value double precision NOT NULL,
    step integer,
    evaluation_set varchar(50) NOT NULL,
    recorded_at timestamptz DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (experiment_id, name, step, evaluation_set)
);
CREATE INDEX ON raw_metrics (experiment_id);
CREATE INDEX ON raw_metrics (name);
CREATE INDEX ON raw_metrics (evaluation_set);
"""


def _timed_copy(
    pg: TempPostgres, db: str, table: str, rows: list[dict[str, Any]], experiment_id: int
) -> float:
    """Seconds to binary-COPY ``rows`` into ``table`` and commit."""
    statement = f"COPY {table} (experiment_id, name, value, step, evaluation_set) FROM STDIN (FORMAT BINARY)"
    with pg.connect(db) as conn:
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy(statement) as copy:
            copy.set_types(["int4", "varchar", "float8", "int4", "varchar"])
            for r in rows:
                copy.write_row((experiment_id, r["name"], r["value"], r["step"], r["evaluation_set"]))
        conn.commit()
        return time.perf_counter() - start


def copy_raw_shape(pg: TempPostgres, db: str, rows: list[dict[str, Any]], experiment_id: int) -> float:
    """Seconds of a raw binary COPY into a plain table with our unique key and 3 indexes, no foreign key."""
    with pg.connect(db) as conn:
        conn.execute(RAW_DDL)
        conn.commit()
    return _timed_copy(pg, db, "raw_metrics", rows, experiment_id)


def copy_into_metrics(pg: TempPostgres, db: str, rows: list[dict[str, Any]], experiment_id: int) -> float:
    """Seconds of a raw binary COPY into the real ``metrics`` table (what our append path costs the server)."""
    return _timed_copy(pg, db, "metrics", rows, experiment_id)


# A large store, seeded server-side: N experiments over PROJECTS projects and DAGS DAGs, 20 datasets, 40 models,
# statuses mixed, JSONB hyperparameters; M metric rows = 5 metrics x 2 splits x M/(10 N) steps per experiment.
PROJECTS = 4
DAGS = 8
DATASETS_PER_PROJECT = 5
MODELS_PER_PROJECT = 10
METRIC_NAMES = ("loss", "accuracy", "f1", "precision", "recall")
SPLITS = ("train", "validation")

SEED_CATALOG = """
INSERT INTO projects (project_id, name, description, status)
SELECT p, 'proj_' || (p - 1), 'benchmark project ' || p, 'Active' FROM generate_series(1, {P}) p;
SELECT setval(pg_get_serial_sequence('projects', 'project_id'), {P});

INSERT INTO datasets (dataset_id, project_id, name, version, data_type, size_bytes, num_records)
SELECT (p - 1) * {D} + d, p, 'dataset_' || d, '1.0', 'Tabular', 1000000 * d, 10000 * d
FROM generate_series(1, {P}) p, generate_series(1, {D}) d;
SELECT setval(pg_get_serial_sequence('datasets', 'dataset_id'), {P} * {D});

INSERT INTO models (model_id, project_id, name, version, framework, architecture)
SELECT (p - 1) * {Mo} + m, p, 'model_' || ((m - 1) / 2), ((m - 1) % 2 + 1)::text, 'PyTorch', 'net-' || m
FROM generate_series(1, {P}) p, generate_series(1, {Mo}) m;
SELECT setval(pg_get_serial_sequence('models', 'model_id'), {P} * {Mo});

-- lineage: a chain dataset_1 -> dataset_2 -> ... per project
INSERT INTO preprocessing_jobs (project_id, name, input_dataset_id, output_dataset_id, parameters, status,
                                end_time, dag_id, run_id, task_id, map_index)
SELECT p, 'prep_' || d, (p - 1) * {D} + d, (p - 1) * {D} + d + 1, jsonb_build_object('step', d), 'Completed',
       now(), 'dag_' || ((p - 1) % {G}), 'prep_run', 'prep_' || d, -1
FROM generate_series(1, {P}) p, generate_series(1, {D} - 1) d;

INSERT INTO deployment_endpoints (project_id, name, url, status)
SELECT p, e, 'https://models.example/' || p || '/' || e, 'Active'
FROM generate_series(1, {P}) p, unnest(ARRAY['prod', 'staging']) e;

-- per endpoint: 5 retired promotions and 2 active models (90/10 canary)
INSERT INTO endpoint_models (endpoint_id, model_id, traffic_percentage, promoted_at, retired_at, dag_id, run_id)
SELECT de.endpoint_id, (de.project_id - 1) * {Mo} + k, 100, now() - (10 - k) * interval '1 day',
       now() - (9 - k) * interval '1 day', 'dag_0', 'deploy_' || k
FROM deployment_endpoints de, generate_series(1, 5) k;
INSERT INTO endpoint_models (endpoint_id, model_id, traffic_percentage, dag_id, run_id)
SELECT de.endpoint_id, (de.project_id - 1) * {Mo} + 6 + k, CASE k WHEN 0 THEN 90 ELSE 10 END, 'dag_0', 'deploy_now'
FROM deployment_endpoints de, generate_series(0, 1) k;

INSERT INTO tags (name) VALUES ('baseline'), ('tuned'), ('candidate');
"""

SEED_EXPERIMENTS = """
INSERT INTO experiments (experiment_id, project_id, model_id, dataset_id, name, description, start_time,
                         end_time, status, hyperparameters, code_version, error,
                         dag_id, run_id, task_id, map_index, try_number)
SELECT g,
       g % {P} + 1,
       (g % {P}) * {Mo} + (g / {P}) % {Mo} + 1,
       (g % {P}) * {D} + (g / {P}) % {D} + 1,
       'exp_' || g,
       NULL,
       ts,
       CASE WHEN st IN ('Completed', 'Failed', 'Cancelled') THEN ts + (g % 3600) * interval '1 second' END,
       st,
       jsonb_build_object(
           'learning_rate', (ARRAY[0.1, 0.03, 0.01, 0.003, 0.001])[g % 5 + 1],
           'optimizer', (ARRAY['adam', 'sgd', 'rmsprop'])[g % 3 + 1],
           'batch_size', (ARRAY[32, 64, 128, 256])[(g / 7) % 4 + 1],
           'epochs', 10 + g % 11,
           'dropout', round((g % 50) / 100.0, 2),
           'seed', g
       ),
       'git:' || md5(g::text),
       CASE WHEN st = 'Failed' THEN 'CUDA out of memory' END,
       'dag_' || (g % {G}),
       'run_' || (g / 100),
       'train_' || (g % 100),
       -1,
       1
FROM (
    SELECT g,
           timestamptz '2025-01-01' + g * interval '1 minute' AS ts,
           (ARRAY['Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Completed',
                  'Failed', 'Running', 'Pending'])[g % 10 + 1] AS st
    FROM generate_series(1, {N}) g
) s;
SELECT setval(pg_get_serial_sequence('experiments', 'experiment_id'), {N});

-- the creating task instance of each experiment, as the store records it
INSERT INTO experiment_tasks (experiment_id, dag_id, run_id, task_id, map_index, role, created_at)
SELECT experiment_id, dag_id, run_id, task_id, map_index, 'creator', start_time FROM experiments;

INSERT INTO tag_assignments (tag_id, entity_type, entity_id)
SELECT (g % 3) + 1, 'experiment', g FROM generate_series(1, {N}) g WHERE g % 10 = 0;
"""

# metric_id is computed (no sequence round trip), set to the sequence afterwards.
SEED_METRICS = """
INSERT INTO metrics (metric_id, experiment_id, name, value, step, evaluation_set, recorded_at)
SELECT ((e - 1) * 10 + (m - 1) * 2 + (s - 1))::bigint * {S} + st,
       e,
       (ARRAY['loss', 'accuracy', 'f1', 'precision', 'recall'])[m],
       CASE WHEN m = 1 THEN 2.0 / (st + 1) + random() * 0.1
            ELSE 0.5 + 0.4 * st / {S} + random() * 0.1 - (s - 1) * 0.05 END,
       st,
       (ARRAY['train', 'validation'])[s],
       timestamptz '2025-01-01' + e * interval '1 minute' + st * interval '1 second'
FROM generate_series(1, {N}) e, generate_series(1, 5) m, generate_series(1, 2) s, generate_series(1, {S}) st
"""


def _latest_fill_sql() -> str:
    """The fill of revision 0002 (metric_latest as the store keeps it), loaded from the migration itself."""
    path = migrations_dir() / "versions" / "0002_metric_latest.py"
    spec = importlib.util.spec_from_file_location("mltrack_migration_0002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return "TRUNCATE metric_latest;\n" + module.FILL


def seed_at_scale(pg: Any, db: str, n: int, m: int, console: Console) -> dict[str, Any]:
    """Seed the migrated, empty database ``db`` with ``n`` experiments and about ``m`` metric rows,
    server-side (``INSERT ... SELECT generate_series``; metrics with their indexes and constraints dropped
    and rebuilt afterwards, all in one transaction after a TRUNCATE so ``wal_level=minimal`` skips the WAL),
    then fill metric_latest and VACUUM ANALYZE. ``pg`` is a ``TempPostgres`` or anything with its
    ``connect(db)``. Returns the seconds of each phase, the counts and the database size."""
    steps = max(1, m // (n * len(METRIC_NAMES) * len(SPLITS)))
    fmt = {"P": PROJECTS, "D": DATASETS_PER_PROJECT, "Mo": MODELS_PER_PROJECT, "G": DAGS, "N": n, "S": steps}
    times: dict[str, float] = {}
    with pg.connect(db) as conn:
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SET max_parallel_maintenance_workers = 4")
        start = time.perf_counter()
        conn.execute(SEED_CATALOG.format(**fmt))
        conn.execute(SEED_EXPERIMENTS.format(**fmt))
        conn.commit()
        times["catalog + experiments"] = time.perf_counter() - start
        console.print(f"seeded {n:,} experiments in {times['catalog + experiments']:.1f}s")

        # Metrics: one transaction: TRUNCATE (so wal_level=minimal skips WAL), drop indexes and
        # constraints, bulk insert, rebuild them.
        start = time.perf_counter()
        indexes = [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'metrics' "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'metrics'::regclass)"
            )
        ]
        constraints = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
            "WHERE conrelid = 'metrics'::regclass AND contype IN ('p', 'u', 'f') ORDER BY contype DESC"
        ).fetchall()  # p, then u, then f
        conn.execute("TRUNCATE metrics")
        for name, _, _ in constraints:
            conn.execute(f'ALTER TABLE metrics DROP CONSTRAINT "{name}"')
        for index_name, _ in indexes:
            conn.execute(f'DROP INDEX "{index_name}"')
        times["metrics insert"] = timed(lambda: conn.execute(SEED_METRICS.format(**fmt)))
        console.print(f"inserted {n * 10 * steps:,} metric rows in {times['metrics insert']:.1f}s")
        t0 = time.perf_counter()
        for name, definition, _ in constraints:
            conn.execute(f'ALTER TABLE metrics ADD CONSTRAINT "{name}" {definition}')
        for _, ddl in indexes:
            conn.execute(ddl)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('metrics', 'metric_id'), (SELECT max(metric_id) FROM metrics))"
        )
        conn.commit()
        times["metrics indexes + constraints"] = time.perf_counter() - t0
        times["metrics total"] = time.perf_counter() - start
        console.print(f"rebuilt metrics indexes/constraints in {times['metrics indexes + constraints']:.1f}s")

        t0 = time.perf_counter()
        conn.execute(_latest_fill_sql())
        conn.commit()
        times["metric_latest"] = time.perf_counter() - t0
        console.print(f"filled metric_latest in {times['metric_latest']:.1f}s")

        conn.autocommit = True
        times["vacuum analyze"] = timed(lambda: conn.execute("VACUUM (ANALYZE)"))
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    times["total"] = sum(
        times[k] for k in ("catalog + experiments", "metrics total", "metric_latest", "vacuum analyze")
    )
    console.print(f"seeding total {times['total']:.1f}s, database size {size}")
    return {"seconds": times, "experiments": n, "metrics": n * 10 * steps, "steps": steps, "db_size": size}
