"""Metric ingest benchmark: TrackingStore.log_metrics against raw COPY on the same PostgreSQL server.

Starts a throwaway PostgreSQL (tests/support/pgserver.py, on disk, not tmpfs), then measures in one run,
each case in a fresh migrated database so no case writes into a table another one grew:
- raw binary COPY of N rows straight into our ``metrics`` table (the same table: its unique key, partial
  unique index, 3 indexes, CHECK and the foreign key to experiments): the database's COPY speed;
- raw binary COPY into a plain table with the unique key and 3 indexes but no foreign key (issue 6's
  reference shape);
- ``TrackingStore.log_metrics`` of the same N rows (a list of row dicts, parsed and checked) in one call;
- the same N rows logged again (every row an update);
- 1k-row batches (the common case in a task): rows/s and ms per batch, PostgreSQL and SQLite.
The big cases run ``--rounds`` times, alternating, and report the best round of each.

Usage: python benchmarks/ingest_bench.py [--rows 1000000] [--rounds 2] [--json benchmarks/results/ingest.json]
"""

from __future__ import annotations

import argparse
import json
import os
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


RAW_SAME = "raw COPY into metrics (same table)"
RAW_SHAPE = "raw COPY, unique key + 3 indexes, no FK"
NEW = "log_metrics, one call, new rows"
UPDATES = "log_metrics, one call, all updates"


def make_rows(n: int, names: int = 20) -> list[dict]:
    return [
        {"name": f"metric_{i % names}", "value": i * 0.001, "step": i // names, "evaluation_set": "train"}
        for i in range(n)
    ]


def new_experiment(store: TrackingStore, name: str) -> int:
    dataset_id = store.register_dataset("bench", "data", "Tabular")
    model_id = store.register_model("bench", "model", "none")
    return store.create_experiment("bench", name, model_id, dataset_id)


def _timed_copy(pg: TempPostgres, db: str, table: str, rows: list[dict], experiment_id: int) -> float:
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


def bench_raw_copy(pg: TempPostgres, db: str, rows: list[dict], experiment_id: int) -> float:
    """Raw binary COPY into a plain table with our unique key and 3 indexes, no foreign key."""
    with pg.connect(db) as conn:
        conn.execute(RAW_DDL)
        conn.commit()
    return _timed_copy(pg, db, "raw_metrics", rows, experiment_id)


def bench_copy_into_metrics(pg: TempPostgres, db: str, rows: list[dict], experiment_id: int) -> float:
    """Raw binary COPY into the real ``metrics`` table (what our append path costs the server)."""
    return _timed_copy(pg, db, "metrics", rows, experiment_id)


def fresh_store(pg: TempPostgres, name: str) -> tuple[TrackingStore, int]:
    url = pg.create_database(name)
    upgrade(url)
    store = TrackingStore.from_url(url)
    return store, new_experiment(store, name)


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
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the big cases (best one reported)")
    parser.add_argument("--batch-rows", type=int, default=100_000, help="rows logged in 1k-row batches")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "ingest.json"))
    args = parser.parse_args()
    n = args.rows
    rows = make_rows(n)
    best: dict[str, float] = {}

    def keep(case: str, seconds: float) -> None:
        best[case] = min(seconds, best.get(case, seconds))

    with TempPostgres(parent_dir=tempfile.gettempdir()) as pg:
        for round_ in range(args.rounds):
            store, exp = fresh_store(pg, f"raw{round_}")
            keep(RAW_SAME, bench_copy_into_metrics(pg, f"raw{round_}", rows, exp))
            keep(RAW_SHAPE, bench_raw_copy(pg, f"raw{round_}", rows, exp))
            store, exp = fresh_store(pg, f"ours{round_}")
            keep(NEW, timed(lambda store=store, exp=exp: store.log_metrics(exp, rows)))
            keep(UPDATES, timed(lambda store=store, exp=exp: store.log_metrics(exp, rows)))
        results: dict[str, dict] = {case: {"rows": n, "seconds": seconds} for case, seconds in best.items()}
        store, exp = fresh_store(pg, "batched")
        small = rows[: args.batch_rows]
        times = batches(store, exp, small, 1000)
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
    ratio = results[NEW]["rows_per_second"] / results[RAW_SAME]["rows_per_second"]
    ratio_shape = results[NEW]["rows_per_second"] / results[RAW_SHAPE]["rows_per_second"]

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
    console.print(
        f"log_metrics / raw COPY into metrics = {ratio:.0%}; / raw COPY into the plain shape = {ratio_shape:.0%}"
    )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "load_average": os.getloadavg(),
                "results": results,
                "ratio_to_raw_copy": ratio,
                "ratio_to_raw_copy_plain_shape": ratio_shape,
            },
            indent=2,
        )
    )
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
