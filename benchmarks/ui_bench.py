"""UI benchmark: server time of every ML Tracking page and main API route on a large tracking store.

Starts a throwaway PostgreSQL (tests/support/pgserver.py, on disk, not tmpfs), migrates it, seeds it
server-side (``INSERT ... SELECT generate_series``, metrics with their indexes and constraints dropped and
rebuilt afterwards, all in one transaction so ``wal_level=minimal`` skips the WAL), ANALYZEs, then builds
the plugin's FastAPI app as tests/plugins/test_api.py does (SimpleAuthManager, a real JWT, a migrated Airflow
metadata DB in a temp AIRFLOW_HOME, connection ``mltrack_default`` pointing at the seeded DB) and times
each page / API route / store call with TestClient (in process: the time is the server's time plus a few
tenths of a ms of ASGI plumbing).

Seeded by ``benchmarks._common.seed_at_scale``: N experiments over 4 projects, 8 DAGs, 20 datasets,
40 models, statuses mixed, JSONB hyperparameters; M metric rows = 5 metrics x 2 splits (train, validation)
x M/(10 N) steps per experiment.

Usage: python -m benchmarks.ui_bench [--experiments 100000] [--metrics 10000000] [--repeat 5] [--growth]
       [--explain] [--json benchmarks/results/ui.json]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from rich.console import Console

from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.reads.experiment_list import ExperimentFilter, experiment_page, metric_keys
from benchmarks._common import (
    arguments,
    captured_sql,
    explain_analyze,
    loadavg,
    machine_info,
    migrated_database,
    print_table,
    repeat_ms,
    seed_at_scale,
    temp_postgres,
    write_results,
)
from tests.plugins.conftest import auth_env
from tests.support.airflow_db import migrate

#: The runs explorer's targets (issue 13): a 2-clause metric filter, sorted by another metric, with 5 metric
#: and 5 param columns; the experiment page and compare of experiments with a 10,000-step curve.
EXPLORER_FILTER = "metrics.validation.accuracy > 0.9 and metrics.validation.loss < 0.25"
EXPLORER_ORDER = "metrics.validation.f1 DESC"
EXPLORER_COLUMNS = ",".join(
    [f"metrics.validation.{m}" for m in ("accuracy", "loss", "f1", "precision", "recall")]
    + [f"params.{p}" for p in ("learning_rate", "optimizer", "batch_size", "epochs", "dropout")]
)
LONG_CURVE_STEPS = 10_000


def long_curve_ids(n: int) -> list[int]:
    """The experiments given a 10,000-step curve (``add_long_curves``)."""
    return [n // 3 + i for i in range(3)]


def add_long_curves(url: str, n: int) -> None:
    """A 10,000-step ``curve`` on train (a NaN every 1,000 steps) for each of ``long_curve_ids``: with the
    seed's 5 metrics x 2 splits, "a 10k-step curve and 5 other metrics"."""
    import math

    store = TrackingStore.from_url(url)
    for experiment_id in long_curve_ids(n):
        values = [math.nan if s % 1000 == 999 else 1.0 / (1 + s / 100) for s in range(LONG_CURVE_STEPS)]
        store.log_metrics(experiment_id, {"curve": values}, evaluation_set="train")


def explorer_routes(url: str, n: int) -> list[tuple[str, str]]:
    """The issue-13 routes. The last page is the pager's "Last" link: past the count cap it reads from the
    end (``from_end``), else it is the offset of the last 50."""
    from urllib.parse import urlencode

    store = TrackingStore.from_url(url)
    counted = experiment_page(store, ExperimentFilter(search=EXPLORER_FILTER, limit=1))
    query = {"filter": EXPLORER_FILTER, "order_by": EXPLORER_ORDER, "columns": EXPLORER_COLUMNS}
    if counted["total_exact"]:
        last = {**query, "offset": max((counted["total"] - 1) // 50 * 50, 0)}
    else:
        last = {**query, "from_end": "1"}
    long_ids = long_curve_ids(n)
    hundred = ",".join(str(1 + i * (n // 100)) for i in range(100))
    return [
        ("13: explorer filter+sort+10 columns (page)", f"/mltrack/experiments?{urlencode(query)}"),
        ("13: explorer filter+sort+10 columns (api)", f"/mltrack/api/experiments?{urlencode(query)}"),
        ("13: explorer ... last page (page)", f"/mltrack/experiments?{urlencode(last)}"),
        ("13: explorer ... last page (api)", f"/mltrack/api/experiments?{urlencode(last)}"),
        ("13: experiment with 10k-step curve (page)", f"/mltrack/experiments/{long_ids[0]}"),
        ("13: compare 3 with 10k-step curves (page)", f"/mltrack/compare?ids={','.join(map(str, long_ids))}"),
        (
            "13: compare 3: curves the page fetches (api)",
            f"/mltrack/api/curves?ids={','.join(map(str, long_ids))}&key=train/curve&points=1000",
        ),
        ("13: compare 100 (page)", f"/mltrack/compare?ids={hundred}"),
        (
            "13: compare 100: curves the page fetches (api)",
            f"/mltrack/api/curves?ids={hundred}&key=validation/loss&points=200",
        ),
    ]


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


def bench_ui(url: str, n: int, repeat: int, console: Console) -> dict[str, dict[str, Any]]:
    from airflow.api_fastapi.app import get_auth_manager, init_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_mltrack.plugins import auth
    from airflow_mltrack.plugins.app import create_app

    os.environ["AIRFLOW_CONN_MLTRACK_DEFAULT"] = json.dumps({"conn_type": "mltrack", "extra": {"url": url}})
    auth.clear_store_cache()
    purge_cached_app()
    parent = FastAPI()
    manager = init_auth_manager(parent)
    manager.init()
    parent.mount("/mltrack", create_app())
    results: dict[str, dict[str, Any]] = {}
    with TestClient(parent) as client:
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
        headers = {"Authorization": f"Bearer {token}"}
        for label, path in explorer_routes(url, n) + routes(n):

            def call(path: str = path) -> Any:
                response = client.get(path, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:500]}")
                return response

            size = len(call().content)
            results[label] = {**repeat_ms(call, repeat), "path": path, "bytes": size}
            console.print(
                f"  {label:48s} {results[label]['median_ms']:9.1f} ms  (max {results[label]['max_ms']:.1f})"
            )

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
        results[label] = {**repeat_ms(fn, repeat), "path": "", "bytes": 0}
        console.print(
            f"  {label:48s} {results[label]['median_ms']:9.1f} ms  (max {results[label]['max_ms']:.1f})"
        )
    auth.clear_store_cache()
    purge_cached_app()
    return results


def explain_queries(url: str) -> dict[str, list[str]]:
    """EXPLAIN ANALYZE the SQL the store sends for the heavier experiment-list and leaderboard calls
    (statements and parameters captured at the cursor, replayed on the store's own engine)."""
    store = TrackingStore.from_url(url)
    cases = {
        "experiments sort validation/accuracy": lambda: experiment_page(
            store, ExperimentFilter(sort=("validation", "accuracy"))
        ),
        "experiments hyperparam filter": lambda: experiment_page(
            store, ExperimentFilter(hyperparameters={"optimizer": "adam", "batch_size": 64})
        ),
        "experiments project+status filter, sort validation/accuracy": lambda: experiment_page(
            store, ExperimentFilter(project="proj_1", status="Completed", sort=("validation", "accuracy"))
        ),
        "experiments explorer filter+sort+columns": lambda: experiment_page(
            store,
            ExperimentFilter(
                search=EXPLORER_FILTER, order_by=(EXPLORER_ORDER,), columns=tuple(EXPLORER_COLUMNS.split(","))
            ),
        ),
        "metric history": lambda: store.metric_history(12345, "loss", "train"),
        "experiments page 50": lambda: experiment_page(store, ExperimentFilter(offset=49 * 50)),
        "metric-keys": lambda: metric_keys(store, None, None),
        "leaderboard": lambda: store.leaderboard("proj_0", "accuracy", "validation", "max", 10),
    }
    captured: dict[str, tuple[str, Any]] = {}
    for label, fn in cases.items():
        with captured_sql(store.engine) as statements:
            fn()
        found = [s for s in statements if s[0].lstrip().upper().startswith(("SELECT", "WITH"))]
        if label.startswith("experiments"):
            captured[f"{label} [count]"] = found[0]
            captured[f"{label} [rows]"] = found[1]
        else:
            captured[label] = max(found, key=lambda s: len(s[0]))
    return {label: explain_analyze(store.engine, *statement) for label, statement in captured.items()}


def run_size(n: int, m: int, repeat: int, explain: bool, console: Console) -> dict[str, Any]:
    """Seed n experiments / m metric rows into a fresh server and time every route (and EXPLAIN)."""
    with temp_postgres() as pg:
        machine = machine_info(pg)
        url = migrated_database(pg, "uibench")
        seeding = seed_at_scale(pg, "uibench", n, m, console)
        add_long_curves(url, n)
        results = bench_ui(url, n, repeat, console)
        plans = {}
        if explain:
            plans = explain_queries(url)
            for label, plan in plans.items():
                print(f"== EXPLAIN ANALYZE {label}", "\n".join(plan), sep="\n", flush=True)
    return {"machine": machine, "seeding": seeding, "results": results, "plans": plans}


def main() -> int:
    parser = arguments(__doc__, "ui_bench")
    parser.add_argument("--experiments", type=int, default=100_000)
    parser.add_argument(
        "--metrics", type=int, default=10_000_000, help="metric rows (10 per step per experiment)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the experiment list queries")
    parser.add_argument(
        "--growth", action="store_true", help="also run at a tenth of the size first and report the growth"
    )
    args = parser.parse_args()
    console = Console()
    # A private AIRFLOW_HOME (and metadata DB), set before anything imports airflow.
    home = tempfile.mkdtemp(prefix="mltrack-ui-bench-airflow-")
    os.environ.update(AIRFLOW_HOME=home, AIRFLOW__CORE__LOAD_EXAMPLES="False")
    os.environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    os.environ.update(auth_env(home))
    try:
        console.print(f"airflow db migrate: {migrate(timeout=600):.1f}s")
        sizes = [(args.experiments, args.metrics)]
        if args.growth:
            sizes.insert(0, (args.experiments // 10, args.metrics // 10))
        runs = [run_size(n, m, args.repeat, args.explain, console) for n, m in sizes]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    full = runs[-1]
    seeding, results, machine = full["seeding"], full["results"], full["machine"]

    small = runs[0]["results"] if args.growth else None
    columns = ["page / call", "median ms", "max ms", "KiB"]
    if small is not None:
        columns[1:1] = [f"median ms at {runs[0]['seeding']['metrics']:,} rows", "growth"]
    rows = []
    for label, entry in results.items():
        cells = [
            f"{entry['median_ms']:.1f}",
            f"{entry['max_ms']:.1f}",
            f"{entry['bytes'] / 1024:.0f}" if entry["bytes"] else "",
        ]
        if small is not None:
            before = small[label]["median_ms"]
            cells[0:0] = [f"{before:.1f}", f"{entry['median_ms'] / before:.1f}x"]
        rows.append((label, *cells))
    print_table(
        console,
        f"UI server time, {seeding['experiments']:,} experiments / {seeding['metrics']:,} metric rows "
        f"({machine['node']}, {machine['cpu']}), {args.repeat} runs",
        columns,
        rows,
    )
    console.print(
        "seeding: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in seeding["seconds"].items())
        + f"; database {seeding['db_size']}"
    )
    write_results(
        args.json,
        {
            "machine": machine,
            "load_average": loadavg(),
            "seeding": seeding,
            "results": results,
            "plans": full["plans"],
            "growth": [{"seeding": r["seeding"], "results": r["results"]} for r in runs] if small else None,
        },
        console,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
