"""MLflow side of benchmarks/mlflow_bench.py: runs INSIDE the bench's own MLflow venv, never in ours.

Started by ``python -m benchmarks.mlflow_bench`` as ``benchmarks/.mlflow-venv/bin/python
benchmarks/mlflow_worker.py`` (by path, in a temp working directory). It stays a plain script, not a
module of the ``benchmarks`` package, and imports nothing of ours (not even ``benchmarks._common``): it
runs under the MLflow venv's interpreter, which has MLflow but neither this project nor its
dependencies (rich, our store). It reads one JSON command per line on stdin and answers one JSON line
on stdout (anything MLflow prints goes to stderr). Times are taken here, around the MLflow call alone,
with ``time.perf_counter``.

Commands (``{"cmd": NAME, ...}``):
- ``open``: ``uri``, ``artifact_root``: an ``SqlAlchemyStore`` (creates MLflow's schema on first use).
- ``create_experiments``: ``names``: one MLflow experiment per name; answers their ids.
- ``sample``: ``experiment``, ``runs``, ``steps``, ``keys``, ``params``: that many runs logged the way a
  training script does with the fluent API (start_run, log_params, log_metrics per step, end_run), so the
  bench can read back exactly which rows MLflow writes per run.
- ``ingest``: ``rows``, ``names``, ``batch``: one run, ``SqlAlchemyStore.log_batch`` of ``batch`` metrics
  at a time (``names`` metric keys x steps, like a training loop); answers the time of every batch.
- ``search``: ``experiment_ids``, ``order_by``, ``max_results``: one ``search_runs`` call.
- ``history``: ``run_id``, ``key``: one ``get_metric_history`` call.
- ``explain_search``: the SQL that ``search_runs`` sends, each statement run again under
  ``EXPLAIN (ANALYZE, BUFFERS)``.
- ``quit``.

Usage (normally only through ``python -m benchmarks.mlflow_bench``):
    benchmarks/.mlflow-venv/bin/python benchmarks/mlflow_worker.py < commands.jsonl
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any, TextIO

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
from mlflow.entities import Metric, ViewType  # noqa: E402
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # noqa: E402


class Worker:
    def __init__(self) -> None:
        self.store: SqlAlchemyStore | None = None
        self.uri: str | None = None

    def _store(self) -> SqlAlchemyStore:
        if self.store is None:
            raise RuntimeError("send 'open' first")
        return self.store

    def open(self, uri: str, artifact_root: str) -> dict[str, Any]:
        start = time.perf_counter()
        self.store = SqlAlchemyStore(uri, artifact_root)
        self.uri = uri
        import psycopg
        import sqlalchemy

        return {
            "seconds": time.perf_counter() - start,
            "versions": {
                "mlflow": mlflow.__version__,
                "sqlalchemy": sqlalchemy.__version__,
                "psycopg": psycopg.__version__,
                "driver": self.store.engine.dialect.driver,
                "python": sys.version.split()[0],
            },
        }

    def create_experiments(self, names: list[str]) -> dict[str, Any]:
        store = self._store()
        return {"ids": {name: store.create_experiment(name) for name in names}}

    def sample(
        self, experiment: str, runs: int, steps: int, keys: list[str], params: dict[str, str]
    ) -> dict[str, Any]:
        """``runs`` runs through the fluent API, as a training script would log them."""
        mlflow.set_tracking_uri(self.uri)
        experiment_id = mlflow.set_experiment(experiment).experiment_id
        run_ids = []
        for i in range(runs):
            with mlflow.start_run(run_name=f"sample_{i}") as run:
                mlflow.log_params(params)
                for step in range(1, steps + 1):
                    mlflow.log_metrics({key: 0.5 + 0.01 * step + 0.001 * i for key in keys}, step=step)
                run_ids.append(run.info.run_id)
        return {"experiment_id": experiment_id, "run_ids": run_ids}

    def ingest(self, rows: int, names: int, batch: int) -> dict[str, Any]:
        """``rows`` metrics in one run, ``batch`` per ``log_batch`` (the rows of ingest_bench.make_rows)."""
        store = self._store()
        experiment_id = store.create_experiment(f"ingest_{time.time_ns()}")
        run = store.create_run(experiment_id, "bench", int(time.time() * 1000), [], "ingest")
        run_id = run.info.run_id
        times = []
        for offset in range(0, rows, batch):
            now = int(time.time() * 1000)
            metrics = [
                Metric(f"metric_{i % names}", i * 0.001, now, i // names)
                for i in range(offset, min(offset + batch, rows))
            ]
            start = time.perf_counter()
            store.log_batch(run_id, metrics=metrics, params=[], tags=[])
            times.append(time.perf_counter() - start)
        return {"run_id": run_id, "batch_seconds": times}

    def search(self, experiment_ids: list[str], order_by: list[str], max_results: int) -> dict[str, Any]:
        store = self._store()
        key = order_by[0].split(" ")[0].removeprefix("metrics.")
        start = time.perf_counter()
        found = store.search_runs(
            experiment_ids=experiment_ids,
            filter_string="",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=max_results,
            order_by=order_by,
        )
        ms = (time.perf_counter() - start) * 1000
        return {
            "ms": ms,
            "runs": [[r.info.run_name, r.data.metrics.get(key)] for r in found],
            "params_per_run": len(found[0].data.params) if found else 0,
            "tags_per_run": len(found[0].data.tags) if found else 0,
        }

    def history(self, run_id: str, key: str) -> dict[str, Any]:
        store = self._store()
        start = time.perf_counter()
        points = store.get_metric_history(run_id, key)
        ms = (time.perf_counter() - start) * 1000
        return {
            "ms": ms,
            "points": len(points),
            "last": [points[-1].step, points[-1].value] if points else None,
        }

    def explain_search(
        self, experiment_ids: list[str], order_by: list[str], max_results: int
    ) -> dict[str, Any]:
        from sqlalchemy import event

        store = self._store()
        captured: list[tuple[str, Any]] = []

        def before(conn, cursor, statement, parameters, context, executemany):
            captured.append((statement, parameters))

        event.listen(store.engine, "before_cursor_execute", before)
        try:
            self.search(experiment_ids, order_by, max_results)
        finally:
            event.remove(store.engine, "before_cursor_execute", before)
        plans = []
        with store.engine.connect() as conn:
            for statement, parameters in captured:
                if not statement.lstrip().upper().startswith("SELECT"):
                    continue
                result = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                plans.append({"sql": statement, "plan": [r[0] for r in result]})
        return {"statements": plans}


def serve(stdin: TextIO, out: TextIO) -> None:
    worker = Worker()
    for line in stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        cmd = request.pop("cmd")
        if cmd == "quit":
            out.write(json.dumps({"ok": True}) + "\n")
            out.flush()
            return
        try:
            answer = {"ok": True, **getattr(worker, cmd)(**request)}
        except Exception as exc:  # noqa: BLE001 - reported to the bench, which raises
            answer = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main() -> int:
    # Answers go to the real stdout; everything else anyone prints goes to stderr.
    out = sys.stdout
    sys.stdout = sys.stderr
    serve(sys.stdin, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
