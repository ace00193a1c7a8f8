"""Metric ingest benchmark: TrackingStore.log_metrics against raw COPY on the same PostgreSQL server.

Starts a throwaway PostgreSQL (tests/support/pgserver.py, on disk, not tmpfs), migrates it, then measures
in one run:
- raw binary COPY of N rows into a plain table shaped like ``metrics`` (unique key + 3 indexes);
- ``TrackingStore.log_metrics`` of the same N rows in one call (COPY -> staging -> upsert);
- the same N rows logged again (every row an update);
- 1k-row batches (the common case in a task): rows/s and ms per batch.
Also SQLite (the embedded default) for the 1k-row batches.

Usage: python benchmarks/ingest_bench.py [--rows 1000000] [--json benchmarks/results/ingest.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from airflow_mltrack.store import TrackingStore  # noqa: E402
from airflow_mltrack.store.migrations import upgrade  # noqa: E402
from tests.support.pgserver import TempPostgres  # noqa: E402

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


def make_rows(n: int, names: int = 20) -> list[dict]:
    return [
        {"name": f"metric_{i % names}", "value": i * 0.001, "step": i // names, "evaluation_set": "train"}
        for i in range(n)
    ]


def new_experiment(store: TrackingStore, name: str) -> int:
    dataset_id = store.register_dataset("bench", "data", "Tabular")
    model_id = store.register_model("bench", "model", "none")
    return store.create_experiment("bench", name, model_id, dataset_id)


def bench_raw_copy(pg: TempPostgres, db: str, rows: list[dict], experiment_id: int) -> float:
    with pg.connect(db) as conn:
        conn.execute(RAW_DDL)
        conn.commit()
        start = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY raw_metrics (experiment_id, name, value, step, evaluation_set) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int4", "varchar", "float8", "int4", "varchar"])
            for r in rows:
                copy.write_row((experiment_id, r["name"], r["value"], r["step"], r["evaluation_set"]))
        conn.commit()
        return time.perf_counter() - start


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def batches(store: TrackingStore, experiment_id: int, rows: list[dict], size: int) -> list[float]:
    times = []
    for offset in range(0, len(rows), size):
        chunk = rows[offset : offset + size]
        times.append(timed(lambda chunk=chunk: store.log_metrics(experiment_id, chunk)))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=100_000, help="rows logged in 1k-row batches")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "ingest.json"))
    args = parser.parse_args()
    n = args.rows
    rows = make_rows(n)
    results: dict[str, dict] = {}

    with TempPostgres(parent_dir=tempfile.gettempdir()) as pg:
        url = pg.create_database("bench")
        upgrade(url)
        store = TrackingStore.from_url(url)
        exp = new_experiment(store, "bulk")
        raw = bench_raw_copy(pg, "bench", rows, exp)
        results["raw COPY (same table shape)"] = {"rows": n, "seconds": raw}
        first = timed(lambda: store.log_metrics(exp, rows))
        results["log_metrics, one call, new rows"] = {"rows": n, "seconds": first}
        again = timed(lambda: store.log_metrics(exp, rows))
        results["log_metrics, one call, all updates"] = {"rows": n, "seconds": again}
        exp2 = new_experiment(store, "batched")
        small = rows[: args.batch_rows]
        times = batches(store, exp2, small, 1000)
        results["log_metrics, 1k-row batches (PostgreSQL)"] = {
            "rows": len(small),
            "seconds": sum(times),
            "ms_per_batch_median": statistics.median(times) * 1000,
        }

    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{tmp}/bench.db"
        upgrade(sqlite_url)
        lite = TrackingStore.from_url(sqlite_url)
        exp3 = new_experiment(lite, "sqlite")
        small = rows[: args.batch_rows]
        times = batches(lite, exp3, small, 1000)
        results["log_metrics, 1k-row batches (SQLite)"] = {
            "rows": len(small),
            "seconds": sum(times),
            "ms_per_batch_median": statistics.median(times) * 1000,
        }

    for entry in results.values():
        entry["rows_per_second"] = entry["rows"] / entry["seconds"]
    ratio = (
        results["log_metrics, one call, new rows"]["rows_per_second"]
        / results["raw COPY (same table shape)"]["rows_per_second"]
    )

    table = Table(title=f"Metric ingest ({platform.node()}, {platform.processor() or platform.machine()})")
    for column in ("case", "rows", "seconds", "rows/s", "ms/batch"):
        table.add_column(column, justify="right" if column != "case" else "left")
    for name, entry in results.items():
        table.add_row(
            name,
            f"{entry['rows']:,}",
            f"{entry['seconds']:.2f}",
            f"{entry['rows_per_second']:,.0f}",
            f"{entry['ms_per_batch_median']:.1f}" if "ms_per_batch_median" in entry else "",
        )
    console = Console()
    console.print(table)
    console.print(f"log_metrics / raw COPY = {ratio:.0%}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"machine": platform.platform(), "results": results, "ratio_to_raw_copy": ratio}, indent=2)
    )
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
