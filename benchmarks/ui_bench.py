"""UI benchmark: server time of every ML Tracking page and main API route on a large tracking store.

Starts a throwaway PostgreSQL (tests/support/pgserver.py, on disk, not tmpfs), migrates it, seeds it
server-side (``INSERT ... SELECT generate_series``, metrics with their indexes and constraints dropped and
rebuilt afterwards, all in one transaction so ``wal_level=minimal`` skips the WAL), ANALYZEs, then builds
the plugin's FastAPI app as tests/ui/test_api.py does (SimpleAuthManager, a real JWT, a migrated Airflow
metadata DB in a temp AIRFLOW_HOME, connection ``mltrack_default`` pointing at the seeded DB) and times
each page / API route / store call with TestClient (in process: the time is the server's time plus a few
tenths of a ms of ASGI plumbing).

Seeded: N experiments over 4 projects, 8 DAGs, 20 datasets, 40 models, statuses mixed, JSONB
hyperparameters; M metric rows = 5 metrics x 2 splits (train, validation) x M/(10 N) steps per experiment.

Usage: python benchmarks/ui_bench.py [--experiments 100000] [--metrics 10000000] [--repeat 5] [--growth]
       [--explain] [--json benchmarks/results/ui.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Before anything imports airflow: a private AIRFLOW_HOME.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="mltrack-ui-bench-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from airflow_mltrack.store.migrations import migrations_dir, upgrade  # noqa: E402
from tests.support.airflow_db import migrate  # noqa: E402
from tests.support.pgserver import TempPostgres  # noqa: E402
from tests.ui.conftest import auth_env  # noqa: E402

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
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return "TRUNCATE metric_latest;\n" + module.FILL


def seed(pg: TempPostgres, db: str, n: int, m: int, console: Console) -> dict[str, float]:
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
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'metrics' AND indexname NOT IN "
                "(SELECT conname FROM pg_constraint WHERE conrelid = 'metrics'::regclass)"
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
        t0 = time.perf_counter()
        conn.execute(SEED_METRICS.format(**fmt))
        times["metrics insert"] = time.perf_counter() - t0
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
        t0 = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        times["vacuum analyze"] = time.perf_counter() - t0
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    times["total"] = sum(
        times[k] for k in ("catalog + experiments", "metrics total", "metric_latest", "vacuum analyze")
    )
    console.print(f"seeding total {times['total']:.1f}s, database size {size}")
    return {"seconds": times, "experiments": n, "metrics": n * 10 * steps, "steps": steps, "db_size": size}


def airflow_migrate(console: Console) -> None:
    console.print(f"airflow db migrate: {migrate(timeout=600):.1f}s")


def routes(n: int) -> list[tuple[str, str]]:
    mid = n // 2 + 1  # a Completed one? any: all have metrics
    two = f"{mid},{mid + 1}"
    ten = ",".join(str(1 + i * (n // 10)) for i in range(10))
    page50 = 49 * 50
    params = "param=optimizer=adam&param=batch_size=64"
    return [
        ("projects (page)", "/mltrack/projects"),
        ("projects (api)", "/mltrack/api/projects"),
        ("experiments (page)", "/mltrack/experiments"),
        ("experiments (api)", "/mltrack/api/experiments"),
        ("experiments status=Failed (page)", "/mltrack/experiments?status=Failed"),
        ("experiments status=Failed (api)", "/mltrack/api/experiments?status=Failed"),
        ("experiments hyperparam filter (page)", f"/mltrack/experiments?{params}"),
        ("experiments hyperparam filter (api)", f"/mltrack/api/experiments?{params}"),
        ("experiments sort validation/accuracy (page)", "/mltrack/experiments?sort=validation/accuracy"),
        ("experiments sort validation/accuracy (api)", "/mltrack/api/experiments?sort=validation/accuracy"),
        ("experiments page 50 (page)", f"/mltrack/experiments?offset={page50}"),
        ("experiments page 50 (api)", f"/mltrack/api/experiments?offset={page50}"),
        (
            "experiments sort + page 50 (api)",
            f"/mltrack/api/experiments?sort=validation/accuracy&offset={page50}",
        ),
        ("experiments project filter (api)", "/mltrack/api/experiments?project=proj_1"),
        (
            "experiments project+status filter, sort validation/accuracy (page)",
            "/mltrack/experiments?project=proj_1&status=Completed&sort=validation/accuracy",
        ),
        (
            "experiments hyperparam filter, sort validation/accuracy (page)",
            f"/mltrack/experiments?{params}&sort=validation/accuracy",
        ),
        ("experiment detail (page)", f"/mltrack/experiments/{mid}"),
        ("experiment detail (api)", f"/mltrack/api/experiments/{mid}"),
        ("experiment curves (api)", f"/mltrack/api/experiments/{mid}/curves"),
        ("compare 2 (page)", f"/mltrack/compare?ids={two}"),
        ("compare 2 (api)", f"/mltrack/api/compare?ids={two}"),
        ("compare 2 curves (api)", f"/mltrack/api/compare/curves?ids={two}"),
        ("compare 10 (page)", f"/mltrack/compare?ids={ten}"),
        ("compare 10 (api)", f"/mltrack/api/compare?ids={ten}"),
        ("compare 10 curves (api)", f"/mltrack/api/compare/curves?ids={ten}"),
        ("run (page)", "/mltrack/run?dag_id=dag_1&run_id=run_5"),
        (
            "leaderboard (api)",
            "/mltrack/api/leaderboard?project=proj_0&metric=accuracy&evaluation_set=validation",
        ),
        ("metric-keys (api)", "/mltrack/api/metric-keys"),
        ("datasets (page)", "/mltrack/datasets"),
        ("datasets (api)", "/mltrack/api/datasets"),
        ("lineage (page)", "/mltrack/datasets/2/lineage"),
        ("lineage (api)", "/mltrack/api/datasets/2/lineage"),
        ("models (page)", "/mltrack/models"),
        ("models (api)", "/mltrack/api/models"),
        ("preprocessing-jobs (api)", "/mltrack/api/preprocessing-jobs"),
        ("deployments (page)", "/mltrack/deployments"),
        ("deployments (api)", "/mltrack/api/deployments"),
        ("schema (page)", "/mltrack/schema"),
        ("schema (api)", "/mltrack/api/schema"),
    ]


def time_calls(fn, repeat: int) -> dict[str, float]:
    fn()  # warm up (plan caches, connection pool, template compile)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times), "max_ms": max(times), "min_ms": min(times)}


def bench_ui(url: str, n: int, repeat: int, console: Console) -> dict[str, dict]:
    from airflow.api_fastapi.app import get_auth_manager, init_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_mltrack.plugins import auth
    from airflow_mltrack.plugins.app import create_app
    from airflow_mltrack.store import TrackingStore

    os.environ["AIRFLOW_CONN_MLTRACK_DEFAULT"] = json.dumps({"conn_type": "mltrack", "extra": {"url": url}})
    auth.clear_store_cache()
    purge_cached_app()
    parent = FastAPI()
    manager = init_auth_manager(parent)
    manager.init()
    parent.mount("/mltrack", create_app())
    results: dict[str, dict] = {}
    with TestClient(parent) as client:
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
        headers = {"Authorization": f"Bearer {token}"}
        for label, path in routes(n):

            def call(path=path):
                response = client.get(path, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:500]}")
                return response

            size = len(call().content)
            entry = time_calls(call, repeat)
            entry.update({"path": path, "bytes": size})
            results[label] = entry
            console.print(f"  {label:48s} {entry['median_ms']:9.1f} ms  (max {entry['max_ms']:.1f})")

    store = TrackingStore.from_url(url)
    mid = n // 2 + 1
    store_calls = {
        "store.leaderboard top-10 (proj_0, validation/accuracy)": lambda: store.leaderboard(
            "proj_0", "accuracy", "validation", "max", 10
        ),
        "store.metric_history (1 experiment, validation/loss)": lambda: store.metric_history(
            mid, "loss", "validation"
        ),
        "store.latest_metrics (1 experiment)": lambda: store.latest_metrics(mid),
    }
    for label, fn in store_calls.items():
        entry = time_calls(fn, repeat)
        entry.update({"path": "", "bytes": 0})
        results[label] = entry
        console.print(f"  {label:48s} {entry['median_ms']:9.1f} ms  (max {entry['max_ms']:.1f})")
    auth.clear_store_cache()
    purge_cached_app()
    return results


def explain_queries(url: str) -> dict[str, list[str]]:
    """EXPLAIN ANALYZE the SQL the store sends for the heavier experiment-list and leaderboard calls
    (statements and parameters captured at the cursor, replayed on the store's own engine)."""
    from sqlalchemy import event

    from airflow_mltrack.store import TrackingStore, ui_queries

    store = TrackingStore.from_url(url)
    statements: list[tuple[str, object]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    cases = {
        "experiments sort validation/accuracy": lambda: ui_queries.experiment_page(
            store, sort="validation/accuracy"
        ),
        "experiments hyperparam filter": lambda: ui_queries.experiment_page(
            store, hyperparameters={"optimizer": "adam", "batch_size": 64}
        ),
        "experiments project+status filter, sort validation/accuracy": lambda: ui_queries.experiment_page(
            store, project="proj_1", status="Completed", sort="validation/accuracy"
        ),
        "metric history": lambda: store.metric_history(12345, "loss", "train"),
        "experiments page 50": lambda: ui_queries.experiment_page(store, offset=49 * 50),
        "metric-keys": lambda: ui_queries.metric_keys(store, None, None),
        "leaderboard": lambda: store.leaderboard("proj_0", "accuracy", "validation", "max", 10),
    }
    captured: dict[str, tuple[str, object]] = {}
    event.listen(store.engine, "before_cursor_execute", before)
    try:
        for label, fn in cases.items():
            statements.clear()
            fn()
            found = [s for s in statements if s[0].lstrip().upper().startswith(("SELECT", "WITH"))]
            if label.startswith("experiments"):
                captured[f"{label} [count]"] = found[0]
                captured[f"{label} [rows]"] = found[1]
            else:
                captured[label] = max(found, key=lambda s: len(s[0]))
    finally:
        event.remove(store.engine, "before_cursor_execute", before)
    plans: dict[str, list[str]] = {}
    with store.engine.connect() as conn:
        for label, (statement, parameters) in captured.items():
            result = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plans[label] = [r[0] for r in result]
    return plans


def run_size(n: int, m: int, repeat: int, explain: bool, console: Console) -> dict[str, Any]:
    """Seed n experiments / m metric rows into a fresh server and time every route (and EXPLAIN)."""
    with TempPostgres(parent_dir=tempfile.gettempdir()) as pg:
        url = pg.create_database("uibench")
        upgrade(url)
        seeding = seed(pg, "uibench", n, m, console)
        results = bench_ui(url, n, repeat, console)
        plans = {}
        if explain:
            plans = explain_queries(url)
            for label, plan in plans.items():
                print(f"== EXPLAIN ANALYZE {label}", "\n".join(plan), sep="\n", flush=True)
        from airflow_mltrack.store.engine import dispose_engines

        dispose_engines()
    return {"seeding": seeding, "results": results, "plans": plans}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", type=int, default=100_000)
    parser.add_argument(
        "--metrics", type=int, default=10_000_000, help="metric rows (10 per step per experiment)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the experiment list queries")
    parser.add_argument(
        "--growth", action="store_true", help="also run at a tenth of the size first and report the growth"
    )
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "ui.json"))
    args = parser.parse_args()
    console = Console()
    os.environ.update(auth_env(_AIRFLOW_HOME))
    airflow_migrate(console)
    sizes = [(args.experiments, args.metrics)]
    if args.growth:
        sizes.insert(0, (args.experiments // 10, args.metrics // 10))
    runs = [run_size(n, m, args.repeat, args.explain, console) for n, m in sizes]
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
    full = runs[-1]
    seeding, results = full["seeding"], full["results"]

    table = Table(
        title=(
            f"UI server time, {seeding['experiments']:,} experiments / {seeding['metrics']:,} metric rows "
            f"({platform.node()}, {platform.processor() or platform.machine()}), {args.repeat} runs"
        )
    )
    small = runs[0]["results"] if args.growth else None
    columns = ["page / call", "median ms", "max ms", "KiB"]
    if small is not None:
        columns[1:1] = [f"median ms at {runs[0]['seeding']['metrics']:,} rows", "growth"]
    for column in columns:
        table.add_column(column, justify="left" if column == "page / call" else "right")
    for label, entry in results.items():
        cells = [
            f"{entry['median_ms']:.1f}",
            f"{entry['max_ms']:.1f}",
            f"{entry['bytes'] / 1024:.0f}" if entry["bytes"] else "",
        ]
        if small is not None:
            before = small[label]["median_ms"]
            cells[0:0] = [f"{before:.1f}", f"{entry['median_ms'] / before:.1f}x"]
        table.add_row(label, *cells)
    console.print(table)
    console.print(
        "seeding: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in seeding["seconds"].items())
        + f"; database {seeding['db_size']}"
    )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "load_average": os.getloadavg(),
                "seeding": seeding,
                "results": results,
                "plans": full["plans"],
                "growth": [{"seeding": r["seeding"], "results": r["results"]} for r in runs]
                if small
                else None,
            },
            indent=2,
        )
    )
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
