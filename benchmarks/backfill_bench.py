"""Metric backfill benchmark: reconcile a 365-day range (one run per day) into the tracking store.

Measures the Reconciler's own cost (store reads that find what is present, experiment creation, metric
upserts), with an in-memory run source that serves the runs and their XCom payloads instantly, so the
numbers exclude Airflow's side (one Execution-API or REST round trip per run and per XCom on a real
deployment). Per backend (a throwaway PostgreSQL on disk from tests/support/pgserver.py, and SQLite), three passes:

- first import: every run's experiment created (placeholder model/dataset) and its metrics upserted;
- resume: everything already present (the cheap path of a re-run or an interrupted CLI);
- verify: the XCom re-read and compared with stored values (``--verify``).

Reports intervals/s and peak Python memory (tracemalloc) per pass, prints a table and writes JSON.

Usage: python -m benchmarks.backfill_bench [--days 365] [--metrics 20] [--skip-postgres]
       [--json benchmarks/results/backfill.json]
"""

from __future__ import annotations

import datetime as dt
import resource
import time
import tracemalloc
from typing import Any

from rich.console import Console

from airflow_mltrack.reconcile import MISSING, Reconciler, SourceRun, SourceSpec
from airflow_mltrack.store import TrackingStore
from benchmarks._common import (
    arguments,
    machine_info,
    migrated_database,
    print_table,
    temp_postgres,
    temp_sqlite,
    write_results,
)

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


class MemoryRunSource:
    """``days`` daily runs, each with a payload of ``metrics`` scalars plus a 10-step loss curve."""

    name = "memory"

    def __init__(self, days: int, metrics: int) -> None:
        self.runs = [
            SourceRun(
                "bench_source",
                f"scheduled__{(START + dt.timedelta(days=d)).isoformat()}",
                START + dt.timedelta(days=d),
                START + dt.timedelta(days=d + 1),
                "success",
            )
            for d in range(days)
        ]
        self.payloads = {
            run.run_id: {
                **{f"metric_{m}": 0.5 + 0.001 * d + 0.0001 * m for m in range(metrics)},
                "loss": [1.0 / (d + s + 1) for s in range(10)],
            }
            for d, run in enumerate(self.runs)
        }

    def list_runs(self, dag_id, start, end):
        return [r for r in self.runs if start <= r.logical_date < end]

    def get_xcom(self, dag_id, run_id, task_id, key, map_index=-1):
        return self.payloads.get(run_id, MISSING)


def run_pass(
    store: TrackingStore, source: MemoryRunSource, days: int, *, verify: bool = False, traced: bool = False
) -> dict:
    """One reconcile over ``days``; ``traced`` measures peak Python memory (tracemalloc slows it down, so
    the timing of a traced pass is not reported)."""
    spec = SourceSpec(dag_id="bench_source", task_id="evaluate", project="bench")
    if traced:
        tracemalloc.start()
    began = time.perf_counter()
    report = Reconciler(source, store, verify=verify).reconcile(
        [spec], START, START + dt.timedelta(days=days)
    )
    seconds = time.perf_counter() - began
    peak = 0
    if traced:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {
        "intervals": days,
        "seconds": round(seconds, 3),
        "intervals_per_second": round(days / seconds, 1),
        "imported": report.imported,
        "already_present": report.present,
        "skipped": report.skipped,
        "metric_rows": report.rows,
        "peak_python_mib": round(peak / 2**20, 2),
    }


def bench_backend(label: str, urls: list[str], days: int, metrics: int, results: dict[str, Any]) -> None:
    """Timed passes on migrated ``urls[0]``; the same passes under tracemalloc on ``urls[1]`` for peak
    memory."""
    source = MemoryRunSource(days, metrics)
    passes = (("first import", False), ("resume (all present)", False), ("verify (re-read, compare)", True))
    timed, traced = TrackingStore.from_url(urls[0]), TrackingStore.from_url(urls[1])
    for name, verify in passes:
        entry = run_pass(timed, source, days, verify=verify)
        entry["peak_python_mib"] = run_pass(traced, source, days, verify=verify, traced=True)[
            "peak_python_mib"
        ]
        results[f"{label}: {name}"] = entry
    first = results[f"{label}: first import"]
    assert first["imported"] == days, first
    assert results[f"{label}: resume (all present)"]["already_present"] == days


def main() -> int:
    parser = arguments(__doc__, "backfill_bench")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument(
        "--metrics", type=int, default=20, help="scalar metrics per run (plus a 10-step curve)"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    results: dict[str, dict[str, Any]] = {}
    machine = machine_info()
    if not args.skip_postgres:
        with temp_postgres() as pg:
            machine = machine_info(pg)
            urls = [migrated_database(pg, "backfill_bench"), migrated_database(pg, "backfill_bench_traced")]
            bench_backend("PostgreSQL", urls, args.days, args.metrics, results)
    with temp_sqlite("bench", "traced") as urls:
        bench_backend("SQLite", urls, args.days, args.metrics, results)

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    console = Console(width=140)
    print_table(
        console,
        f"Backfill reconcile: {args.days} daily intervals, {args.metrics + 10} metric rows each",
        ("Pass", "Intervals/s", "Seconds", "Imported", "Present", "Rows", "Peak Python MiB"),
        (
            (
                name,
                f"{r['intervals_per_second']:,}",
                f"{r['seconds']}",
                str(r["imported"]),
                str(r["already_present"]),
                f"{r['metric_rows']:,}",
                f"{r['peak_python_mib']}",
            )
            for name, r in results.items()
        ),
    )
    console.print(f"process peak RSS: {peak_rss:.0f} MiB")
    write_results(
        args.json,
        {
            "machine": machine,
            "days": args.days,
            "metrics_per_run": args.metrics + 10,
            "run_source": "in-memory (Airflow round trips excluded)",
            "peak_rss_mib": round(peak_rss),
            "results": results,
        },
        console,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
