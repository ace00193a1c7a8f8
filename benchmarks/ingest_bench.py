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

Usage: python -m benchmarks.ingest_bench [--rows 1000000] [--rounds 2] [--batch-rows 100000]
       [--json benchmarks/results/ingest.json]
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from airflow_mltrack.store import TrackingStore
from benchmarks._common import (
    arguments,
    batch_stats,
    copy_into_metrics,
    copy_raw_shape,
    fresh_store,
    loadavg,
    log_in_batches,
    machine_info,
    make_rows,
    new_experiment,
    print_table,
    temp_postgres,
    temp_sqlite,
    timed,
    write_results,
)

RAW_SAME = "raw COPY into metrics (same table)"
RAW_SHAPE = "raw COPY, unique key + 3 indexes, no FK"
NEW = "log_metrics, one call, new rows"
UPDATES = "log_metrics, one call, all updates"
BATCH = 1000


def main() -> int:
    parser = arguments(__doc__, "ingest_bench")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the big cases (best one reported)")
    parser.add_argument("--batch-rows", type=int, default=100_000, help="rows logged in 1k-row batches")
    args = parser.parse_args()
    n = args.rows
    rows = make_rows(n)
    small = rows[: args.batch_rows]
    best: dict[str, float] = {}

    def keep(case: str, seconds: float) -> None:
        best[case] = min(seconds, best.get(case, seconds))

    with temp_postgres() as pg:
        machine = machine_info(pg)
        for round_ in range(args.rounds):
            store, exp = fresh_store(pg, f"raw{round_}")
            keep(RAW_SAME, copy_into_metrics(pg, f"raw{round_}", rows, exp))
            keep(RAW_SHAPE, copy_raw_shape(pg, f"raw{round_}", rows, exp))
            store, exp = fresh_store(pg, f"ours{round_}")
            keep(NEW, timed(lambda store=store, exp=exp: store.log_metrics(exp, rows)))
            keep(UPDATES, timed(lambda store=store, exp=exp: store.log_metrics(exp, rows)))
        results: dict[str, dict[str, Any]] = {
            case: {"rows": n, "seconds": seconds, "rows_per_second": n / seconds}
            for case, seconds in best.items()
        }
        store, exp = fresh_store(pg, "batched")
        results["log_metrics, 1k-row batches (PostgreSQL)"] = batch_stats(
            len(small), log_in_batches(store, exp, small, BATCH)
        )
    with temp_sqlite("bench") as (url,):
        lite = TrackingStore.from_url(url)
        exp = new_experiment(lite, "sqlite")
        results["log_metrics, 1k-row batches (SQLite)"] = batch_stats(
            len(small), log_in_batches(lite, exp, small, BATCH)
        )

    ratio = results[NEW]["rows_per_second"] / results[RAW_SAME]["rows_per_second"]
    ratio_shape = results[NEW]["rows_per_second"] / results[RAW_SHAPE]["rows_per_second"]
    console = Console()
    print_table(
        console,
        f"Metric ingest ({machine['node']}, {machine['cpu']})",
        ("case", "rows", "seconds", "rows/s", "ms/batch"),
        (
            (
                name,
                f"{entry['rows']:,}",
                f"{entry['seconds']:.2f}",
                f"{entry['rows_per_second']:,.0f}",
                f"{entry['ms_per_batch_median']:.1f}" if "ms_per_batch_median" in entry else "",
            )
            for name, entry in results.items()
        ),
    )
    console.print(
        f"log_metrics / raw COPY into metrics = {ratio:.0%}; / raw COPY into the plain shape = {ratio_shape:.0%}"
    )
    write_results(
        args.json,
        {
            "machine": machine,
            "load_average": loadavg(),
            "results": results,
            "ratio_to_raw_copy": ratio,
            "ratio_to_raw_copy_plain_shape": ratio_shape,
        },
        console,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
