"""Client side of benchmarks/mlflow_rest_bench.py: runs INSIDE the bench's MLflow venv, never in ours.

The stock ``mlflow.MlflowClient`` talking plain HTTP to a tracking server (``MLFLOW_TRACKING_TOKEN``, when
set, goes out as a bearer token; MLflow's own server without auth ignores it), so both servers are driven by
the same client code. A plain script like ``mlflow_worker.py``: it imports nothing of ours. Times are
taken here, around the client call alone, with ``time.perf_counter``.

Three modes, the JSON arguments in ``argv[2]``:

- ``experiment``: ``url``, ``name``: the id of that experiment, created if missing.
- ``load``: ``url``, ``experiment_id``, ``keys``, ``seconds``: creates one run, prints ``{"ready": run_id}``,
  waits for a line on stdin (the bench starts every client together), then logs batches of one metric per
  key (``log_batch``, step 0, 1, ...) for ``seconds``; prints the batches, metrics, failures, its own CPU
  seconds in that loop and the latency of every batch in ms.
- ``search``: ``sides`` (``{name: {"url", "experiment_id"}}``), ``filter``, ``order_by``, ``max_results``,
  ``repeat``: one warm-up call per side, then ``repeat`` rounds of one timed ``search_runs`` per side
  (interleaved), each followed by the same request sent with ``requests`` alone (the server's answer
  without the client's parsing); prints the times, the answer's size and each side's results as
  ``[run name, value of the ordered metric]``.

Usage (normally only through ``python -m benchmarks.mlflow_rest_bench``):
    benchmarks/.mlflow-venv/bin/python benchmarks/mlflow_rest_client.py load '{"url": ..., ...}'
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import requests  # noqa: E402 - MLflow's own HTTP library, in its venv
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, ViewType  # noqa: E402

# Answers go to the real stdout; anything else printed goes to stderr.
OUT = sys.stdout
sys.stdout = sys.stderr


def answer(payload: dict[str, Any]) -> None:
    OUT.write(json.dumps(payload) + "\n")
    OUT.flush()


def experiment(url: str, name: str) -> dict[str, Any]:
    """The id of experiment ``name``, created if missing."""
    client = MlflowClient(tracking_uri=url)
    found = client.get_experiment_by_name(name)
    return {"experiment_id": found.experiment_id if found else client.create_experiment(name)}


def load(url: str, experiment_id: str, keys: list[str], seconds: float) -> dict[str, Any]:
    client = MlflowClient(tracking_uri=url)
    run_id = client.create_run(experiment_id).info.run_id
    answer({"ready": run_id})
    sys.stdin.readline()  # "go"
    latencies: list[float] = []
    failures: list[str] = []
    step = 0
    cpu = time.process_time()
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, 0.5 + 0.001 * (step % 500) + 0.01 * i, now, step) for i, key in enumerate(keys)
        ]
        t0 = time.perf_counter()
        try:
            client.log_batch(run_id, metrics=metrics)
        except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
            failures.append(f"{type(exc).__name__}: {exc}"[:300])
        else:
            latencies.append((time.perf_counter() - t0) * 1000)
        step += 1
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return {
        "run_id": run_id,
        "batches": len(latencies),
        "metrics": len(latencies) * len(keys),
        "failures": len(failures),
        "first_failures": failures[:3],
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "latencies_ms": [round(x, 3) for x in latencies],
    }


def search(
    sides: dict[str, dict[str, str]], filter: str, order_by: list[str], max_results: int, repeat: int
) -> dict[str, Any]:
    key = order_by[0].split(" ")[0].removeprefix("metrics.")
    clients = {name: MlflowClient(tracking_uri=side["url"]) for name, side in sides.items()}

    def call(name: str) -> tuple[float, list[Any]]:
        t0 = time.perf_counter()
        found = clients[name].search_runs(
            experiment_ids=[sides[name]["experiment_id"]],
            filter_string=filter,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=max_results,
            order_by=order_by,
        )
        ms = (time.perf_counter() - t0) * 1000
        return ms, [[r.info.run_name, r.data.metrics.get(key)] for r in found]

    # The same request as the client's, sent with requests alone: the server's answer (and its transfer)
    # without the client turning the JSON into protobuf messages and Run entities.
    session = requests.Session()
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def raw(name: str) -> tuple[float, int]:
        body = {
            "experiment_ids": [sides[name]["experiment_id"]],
            "filter": filter,
            "run_view_type": "ACTIVE_ONLY",
            "max_results": max_results,
            "order_by": order_by,
        }
        t0 = time.perf_counter()
        answer = session.post(f"{sides[name]['url']}/api/2.0/mlflow/runs/search", json=body, headers=headers)
        answer.raise_for_status()
        size = len(answer.content)
        return (time.perf_counter() - t0) * 1000, size

    results = {name: call(name)[1] for name in sides}  # warm-up, and the answers compared
    sizes = {name: raw(name)[1] for name in sides}
    times: dict[str, list[float]] = {name: [] for name in sides}
    raw_times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeat):
        for name in sides:
            times[name].append(call(name)[0])
            raw_times[name].append(raw(name)[0])
    return {"times_ms": times, "http_ms": raw_times, "bytes": sizes, "results": results}


def main() -> int:
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    answer({"experiment": experiment, "load": load, "search": search}[mode](**args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
