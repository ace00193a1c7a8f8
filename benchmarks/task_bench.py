"""Per-task tracking cost: what one tracked Airflow task costs the tracking database, call site by call site.

A tracked task (``@task.mltrack`` or our operators plus the status listener) makes these calls:
create (or find, on a retry) its experiment, log its metrics (50 here) and, through the listener, look up the
experiments the task instance belongs to and move the experiment's status. This runs N such tasks against a
throwaway PostgreSQL on the same machine (tests/support/pgserver.py) and against the embedded SQLite default,
and reports per call site the median wall time, the SQL statements the store sent (SQLAlchemy's
``before_cursor_execute``) and the network round trips to the server (the messages the server logged with
``log_statement = 'all'``: these also count ``BEGIN``, ``COMMIT`` and the pool's liveness ping,
``SELECT 1``, which the statements column leaves out).

Usage: python -m benchmarks.task_bench [--tasks 200] [--json benchmarks/results/task.json]
"""

from __future__ import annotations

import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import event

from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.migrations import upgrade
from airflow_mltrack.store.reads.status import experiments_of_task
from benchmarks._common import (
    arguments,
    machine_info,
    print_table,
    temp_postgres,
    temp_sqlite,
    write_results,
)

METRICS = 50
CALL_SITES = ("create experiment", "log 50 metrics", "listener: find the task's experiments", "status move")


class Meter:
    """Counts, around each call, the SQL statements the store sent (SQLAlchemy events) and the round trips
    the server answered: every message the server logged with ``log_statement = 'all'`` (psycopg sends
    one per exchange: ``BEGIN``, each statement, the pool's ping, ``COMMIT``)."""

    _LOGGED = re.compile(r"LOG:  (statement|execute [^:]*): ")

    def __init__(self, store: TrackingStore, server_log: Path | None = None) -> None:
        self.statements = 0
        self.server_log = server_log
        self._offset = server_log.stat().st_size if server_log else 0
        event.listen(store.engine, "before_cursor_execute", self._statement)

    def _statement(self, *_args: Any) -> None:
        self.statements += 1

    def _logged(self) -> int:
        if self.server_log is None:
            return 0
        with self.server_log.open("rb") as log:
            log.seek(self._offset)
            text = log.read().decode(errors="replace")
            self._offset = log.tell()
        return len(self._LOGGED.findall(text))

    def measure(self, fn: Callable[[], Any]) -> tuple[Any, float, int, int]:
        self._logged()
        statements = self.statements
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        time.sleep(0.002)  # let the server finish writing its log lines
        return result, elapsed, self.statements - statements, self._logged()


def one_task(store: TrackingStore, meter: Meter, i: int, model_id: int, dataset_id: int) -> dict[str, tuple]:
    """The calls of one tracked task, each measured: {call site: (seconds, statements, round trips)}."""
    link = {"dag_id": "train", "run_id": f"run_{i}", "task_id": "fit", "map_index": -1, "try_number": 1}
    params = {"alpha": 0.001, "epochs": 20}
    out: dict[str, tuple] = {}
    experiment_id, *out["create experiment"] = meter.measure(
        lambda: store.create_experiment(
            "bench", "fit", model_id, dataset_id, params, status="Running", **link
        )
    )
    metrics = {f"m{k}": 0.5 + k * 0.001 + i * 1e-6 for k in range(METRICS)}
    _, *out["log 50 metrics"] = meter.measure(
        lambda: store.log_metrics(experiment_id, metrics, evaluation_set="validation")
    )
    _, *out["listener: find the task's experiments"] = meter.measure(
        lambda: experiments_of_task(store, link["dag_id"], link["run_id"], link["task_id"], link["map_index"])
    )
    _, *out["status move"] = meter.measure(lambda: store.set_status(experiment_id, "Completed"))
    return out


def run_tasks(store: TrackingStore, tasks: int, server_log: Path | None = None) -> dict[str, dict[str, Any]]:
    dataset_id = store.register_dataset("bench", "digits", "Tabular")
    model_id = store.register_model("bench", "sgd", "sklearn")
    meter = Meter(store, server_log)
    samples: dict[str, list[tuple]] = {site: [] for site in CALL_SITES}
    totals: list[float] = []
    for i in range(tasks):
        task = one_task(store, meter, i, model_id, dataset_id)
        for site, sample in task.items():
            samples[site].append(sample)
        totals.append(sum(sample[0] for sample in task.values()))
    out: dict[str, dict[str, Any]] = {}
    counted = server_log is not None  # round trips: only in a private server's log
    for site, values in samples.items():
        out[site] = {
            "median_ms": statistics.median(v[0] for v in values) * 1000,
            "statements": Counter(v[1] for v in values).most_common(1)[0][0],
            "round_trips": Counter(v[2] for v in values).most_common(1)[0][0] if counted else None,
        }
    out["whole task"] = {
        "median_ms": statistics.median(totals) * 1000,
        "p95_ms": sorted(totals)[int(len(totals) * 0.95)] * 1000,
        "statements": sum(out[s]["statements"] for s in CALL_SITES),
        "round_trips": sum(out[s]["round_trips"] for s in CALL_SITES) if counted else None,
    }
    return out


def main() -> int:
    parser = arguments(__doc__, "task_bench")
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with temp_postgres() as pg:
        machine = machine_info(pg)
        url = pg.create_database("taskbench")
        pg.psql("ALTER DATABASE taskbench SET log_statement = 'all'")  # for the sessions opened from now on
        upgrade(url)
        server_log = pg.data_dir / "server.log" if pg.data_dir is not None else None  # None: external server
        results["PostgreSQL"] = run_tasks(TrackingStore.from_url(url), args.tasks, server_log)
    with temp_sqlite("task") as (url,):
        results["SQLite"] = run_tasks(TrackingStore.from_url(url), args.tasks)

    console = Console()
    print_table(
        console,
        f"Tracking cost per task, median of {args.tasks} tasks ({machine['node']})",
        ("backend", "call site", "median ms", "SQL statements", "round trips"),
        (
            (
                backend,
                site,
                f"{entry['median_ms']:.2f}",
                f"{entry['statements']}",
                "(in process)" if backend == "SQLite" else f"{entry['round_trips'] or '(not counted)'}",
            )
            for backend, sites in results.items()
            for site, entry in sites.items()
        ),
        left=("call site",),
    )
    write_results(args.json, {"machine": machine, "tasks": args.tasks, "results": results}, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
