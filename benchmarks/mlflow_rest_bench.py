"""MLflow's own ``mlflow server`` against our MLflow REST endpoint, side by side on ONE PostgreSQL server.

Both servers are real processes on the same throwaway PostgreSQL server (``_common.temp_postgres``), each on
its own database, with the same number of worker processes (``--workers``, default 4: ``mlflow server``'s
default; Airflow's ``[api] workers`` default is 1, so ours is given ``--workers`` too):

- MLflow: ``benchmarks/.mlflow-venv/bin/mlflow server --backend-store-uri postgresql://.../mlflow --workers W``
  (mlflow 3.17.2, the venv ``mlflow_bench.ensure_mlflow_venv`` makes), its GenAI job runner off
  (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``: a dozen huey processes with nothing to do for tracking);
- ours: ``airflow api-server --workers W`` on a fresh AIRFLOW_HOME (``tests/support/airflow_cluster.py``'s
  environment: SQLite metadata database, SimpleAuthManager), the tracking store on database ``ours`` as
  connection ``mltrack_default``; the MLflow client's URL is ``http://127.0.0.1:<port>/mltrack/mlflow`` and
  its bearer token (``MLFLOW_TRACKING_TOKEN``) comes from ``POST /auth/token``.

Every client is the stock ``MlflowClient`` of that venv (``benchmarks/mlflow_rest_client.py``, plain HTTP),
the same code on both sides, with ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0`` (an error answer is counted as a
failure instead of hiding in a latency). Each server first gets 8 requests per worker at once, so every
worker has loaded its app before anything is timed.

1. Data (``--runs``, default 100k): ours seeded by ``_common.seed_at_scale`` (4 projects, 5 metrics x 2
   splits, one step each), MLflow's bulk-copied from it by ``mlflow_bench.load_mlflow`` (one MLflow
   experiment per project, metric key ``<split>_<name>``, rows shaped like runs MLflow logged itself).
   A run logged through MLflow's client into ours keeps the key whole as the metric name and takes the
   split from its prefix (``airflow_mltrack/mlflow/mapping.split_of``): ``validation_accuracy`` is stored
   as name ``validation_accuracy``, split ``validation``. So ours is renamed the same way (``name :=
   split || '_' || name`` in ``metrics`` and ``metric_latest``, then VACUUM ANALYZE), and the load phase
   checks that rule on the rows the clients logged.
2. Search: ``search_runs(experiment_ids=[proj_0], filter_string="metrics.validation_accuracy > 0.5",
   order_by=["metrics.validation_accuracy DESC"], max_results=100)`` through each server, one warm-up
   each, then ``--repeat`` interleaved calls (median); both must return the same 100 (run name, value).
   Each call is followed by the same request sent with ``requests`` alone: the server's answer without
   the client's parsing of it into protobuf messages and ``Run`` entities (the same work on both sides).
3. Load: ``--clients`` (20) client processes against one server at a time, each with its own run, calling
   ``log_batch`` with 10 metrics (the 10 keys above, one step a batch) in a loop for ``--seconds``; they
   start together once all have created their run. Metrics/s in total (metrics stored / the longest
   client's seconds), p50/p95/p99 latency of a batch. ``--rounds`` rounds, the side going first
   alternating. Afterwards the rows stored for those runs are counted in each database: nothing lost.
   CPU seconds per 1,000 metrics of the server's process tree, of the PostgreSQL server and of the
   clients (/proc): less sensitive to the machine's other users than the wall times.
4. Where our search's time goes, in this process on the same database: the search SQL alone
   (``experiment_page`` as the adapter asks it: no count) and the adapter's ``search_runs`` without HTTP.

The machine's load average is sampled at every phase (2 shared cores: the 20 clients and the server share
them). Prints rich tables, writes benchmarks/results/mlflow_rest.json. The full run takes 8-10 min.

Usage: python -m benchmarks.mlflow_rest_bench [--runs 100000] [--clients 20] [--seconds 30] [--rounds 2]
       [--repeat 10] [--workers 4] [--json benchmarks/results/mlflow_rest.json]
       python -m benchmarks.mlflow_rest_bench --quick    # 10k runs, 10 s of load, 1 round, 5 searches
       python -m benchmarks.mlflow_rest_bench --mlflow-both   # A/A: MLflow's server on both sides
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from airflow_mltrack.mlflow.mapping import split_of
from airflow_mltrack.store.engine import dispose_engines
from benchmarks._common import (
    ROOT,
    arguments,
    machine_info,
    migrated_database,
    print_table,
    repeat_ms,
    seed_at_scale,
    stats_ms,
    temp_postgres,
    write_results,
)
from benchmarks.mlflow_bench import (
    ARTIFACT_ROOT,
    LOAD_SAMPLES,
    MLFLOW_KEYS,
    MLFLOW_REQUIREMENTS,
    PROJECT,
    SAMPLE_PARAMS,
    VENV,
    MlflowWorker,
    code_version,
    ensure_mlflow_venv,
    load_mlflow,
    mlflow_uri,
    note_load,
    run_shape,
    run_shape_of,
    run_uuid,
    shape_signature,
)
from tests.support.airflow_cluster import AirflowCluster
from tests.support.pgserver import TempPostgres, free_port

CLIENT = ROOT / "benchmarks" / "mlflow_rest_client.py"
OURS_DB, MLFLOW_DB = "ours", "mlflow"
KEY = "validation_accuracy"
SEARCH = {
    "filter": f"metrics.{KEY} > 0.5",
    "order_by": [f"metrics.{KEY} DESC"],
    "max_results": 100,
}
START_TIMEOUT = 300
SECRET = "mltrack-rest-bench-" + "0123456789abcdef" * 4
USER, PASSWORD = "bench", "bench-secret-pw"
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
RENAME = """
UPDATE metrics SET name = evaluation_set || '_' || name;
UPDATE metric_latest SET name = evaluation_set || '_' || name;
"""


@dataclass
class Side:
    """One server under test: how the client reaches it and how many metric rows a run holds there."""

    label: str
    url: str
    database: str
    rows_of: Callable[[TempPostgres, list[str]], int]
    argv: list[str]
    process: subprocess.Popen[Any]
    log: Path
    token: str = ""
    search_experiment_id: str = ""
    started_in: float = 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --------------------------------------------------------------------------- CPU accounting


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (from the parent ids in /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(root: int | None) -> float | None:
    """CPU seconds of ``root``'s tree so far: user + system time of its live processes and of the children
    they have reaped (a PostgreSQL backend that ended is counted in the postmaster's). None: unknown."""
    if root is None:
        return None
    ticks = 0
    for pid in _descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def postmaster_pid(pg: TempPostgres) -> int | None:
    """The PostgreSQL server's pid (None for an external server)."""
    try:
        return None if pg.is_external else int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, AttributeError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------- servers


def _client_env(token: str = "") -> dict[str, str]:
    """The environment of the MLflow venv's processes (as ``MlflowWorker``'s), with the bearer token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    # No client retries: a 5xx answer is counted as a failure, not hidden in a batch's latency.
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    return env


def _wait_up(side: Side, probe: str, what: str) -> None:
    """Poll ``probe`` (a URL) until it answers 200; fail with the server's log if it exits or times out."""
    start = time.monotonic()
    while time.monotonic() < start + START_TIMEOUT:
        if side.process.poll() is not None:
            break
        try:
            if httpx.get(probe, timeout=5).status_code == 200:
                side.started_in = time.monotonic() - start
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    side.stop()
    raise RuntimeError(f"{what} did not come up ({' '.join(side.argv)}):\n{side.log.read_text()[-3000:]}")


def warm_up(side: Side, workers: int) -> None:
    """Requests enough at once to reach every worker process (ours builds its app on a worker's first
    request); any answer but 200 stops the bench."""
    headers = {"Authorization": f"Bearer {side.token}"} if side.token else {}

    def one(_: int) -> int:
        url = f"{side.url}/api/2.0/mlflow/experiments/get-by-name"
        return httpx.get(url, params={"experiment_name": PROJECT}, headers=headers, timeout=120).status_code

    with ThreadPoolExecutor(4 * workers) as pool:
        codes = sorted(set(pool.map(one, range(8 * workers))))
    if codes != [200]:
        side.stop()
        raise RuntimeError(f"{side.label} answered {codes} while warming up:\n{side.log.read_text()[-3000:]}")


def mlflow_rows(pg: TempPostgres, database: str) -> Callable[[TempPostgres, list[str]], int]:
    def rows(pg: TempPostgres, run_ids: list[str]) -> int:
        return pg.psql("SELECT count(*) FROM metrics WHERE run_uuid = ANY(%s)", database, (run_ids,))[0][0]

    return rows


def start_mlflow(python: Path, pg: TempPostgres, database: str, workers: int, workdir: Path) -> Side:
    """``mlflow server`` on ``database`` (it migrates its schema on start), up and answering."""
    port = free_port()
    argv = [
        str(python.parent / "mlflow"),
        "server",
        "--backend-store-uri",
        mlflow_uri(pg, database),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    log = workdir / f"mlflow-server-{port}.log"
    # Its background job runner (GenAI jobs: a huey consumer per job type) has nothing to do with tracking
    # and would share the 2 cores with whichever side is measured: off.
    env = {**_client_env(), **MLFLOW_SERVER_ENV}
    with log.open("w") as out:
        process = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    side = Side(
        "MLflow server", f"http://127.0.0.1:{port}", database, mlflow_rows(pg, database), argv, process, log
    )
    _wait_up(side, f"{side.url}/health", "mlflow server")
    warm_up(side, workers)
    side.argv[3] = "postgresql://.../" + database  # no credentials in the JSON
    return side


def ours_rows(pg: TempPostgres, run_ids: list[str]) -> int:
    ids = [int(r) for r in run_ids]
    return pg.psql("SELECT count(*) FROM metrics WHERE experiment_id = ANY(%s)", OURS_DB, (ids,))[0][0]


def start_ours(pg: TempPostgres, workers: int, workdir: Path) -> Side:
    """``airflow api-server`` with the tracking store on database ``ours``, up, and a bearer token."""
    home = workdir / "airflow"
    home.mkdir()
    (home / "dags").mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    cluster = AirflowCluster(
        home,
        home / "dags",
        pg.url(OURS_DB),
        secret=SECRET,
        extra_env={
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        },
    )
    migrate = cluster.airflow("db", "migrate", timeout=600)
    if migrate.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
    argv = [sys.executable, "-m", "airflow", "api-server", "--workers", str(workers)]
    log = home / "api-server.log"
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=cluster.env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{cluster.port}"
    side = Side(
        "ours: airflow api-server", f"{base}/mltrack/mlflow", OURS_DB, ours_rows, argv[1:], process, log
    )
    _wait_up(side, f"{base}/api/v2/monitor/health", "airflow api-server")
    token = httpx.post(f"{base}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30)
    token.raise_for_status()
    side.token = token.json()["access_token"]
    warm_up(side, workers)
    return side


# --------------------------------------------------------------------------- data


def prepare(pg: TempPostgres, worker: MlflowWorker, runs: int, console: Console) -> dict[str, Any]:
    """Seed ours, bulk-copy it into MLflow's schema, then rename our metrics as MLflow's client logs them."""
    note_load("seed")
    migrated_database(pg, OURS_DB)
    seeding = seed_at_scale(pg, OURS_DB, runs, runs * 10, console)  # one step per metric and split
    pg.create_database(MLFLOW_DB)
    worker.ask("open", uri=mlflow_uri(pg, MLFLOW_DB), artifact_root=ARTIFACT_ROOT)
    sampled = worker.ask(
        "sample", experiment="sample", runs=3, steps=2, keys=MLFLOW_KEYS, params=SAMPLE_PARAMS
    )
    with pg.connect(MLFLOW_DB) as conn:
        template = run_shape(conn, sampled["run_ids"][0])
    projects = [r[0] for r in pg.psql("SELECT name FROM projects ORDER BY project_id", OURS_DB)]
    worker.ask("create_experiments", names=projects)
    note_load("load MLflow")
    loaded = load_mlflow(pg, OURS_DB, MLFLOW_DB, template, console)
    bulk = run_shape_of(pg, MLFLOW_DB, run_uuid(runs // 2 + 1))
    start = time.perf_counter()
    with pg.connect(OURS_DB) as conn:
        conn.execute(RENAME)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM (ANALYZE)")
    renamed = time.perf_counter() - start
    console.print(f"renamed our metrics to MLflow's keys in {renamed:.1f}s")
    return {
        "runs": runs,
        "seeding_ours": seeding,
        "loading_mlflow": loaded,
        "rename_seconds": renamed,
        "bulk_run_shape_matches_sample": shape_signature(bulk) == shape_signature(template),
    }


def client(python: Path, mode: str, args: dict[str, Any], token: str = "") -> dict[str, Any]:
    """One run of ``mlflow_rest_client.py`` to its end: its JSON answer."""
    done = subprocess.run(
        [str(python), str(CLIENT), mode, json.dumps(args)],
        capture_output=True,
        text=True,
        env=_client_env(token),
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mlflow_rest_client {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


# --------------------------------------------------------------------------- search


def bench_search(python: Path, sides: list[Side], repeat: int, console: Console) -> dict[str, Any]:
    note_load("search")
    token = next((s.token for s in sides if s.token), "")  # MLflow's server without auth ignores it
    found = client(
        python,
        "search",
        {
            "sides": {s.label: {"url": s.url, "experiment_id": s.search_experiment_id} for s in sides},
            "repeat": repeat,
            **SEARCH,
        },
        token,
    )
    note_load("searched")
    results = list(found["results"].values())
    timings = {label: stats_ms(times) for label, times in found["times_ms"].items()}
    http = {label: stats_ms(times) for label, times in found["http_ms"].items()}
    for label, entry in timings.items():
        console.print(
            f"  search_runs {label:28s} {entry['median_ms']:9.1f} ms (min {entry['min_ms']:.1f}); the HTTP "
            f"answer alone {http[label]['median_ms']:.1f} ms, {found['bytes'][label]:,} bytes"
        )
    return {
        "args": {**SEARCH, "experiment_ids": {s.label: s.search_experiment_id for s in sides}},
        "timings": timings,
        "http_answer_ms": http,
        "answer_bytes": found["bytes"],
        "results_returned": {label: len(r) for label, r in found["results"].items()},
        "same_results": all(r == results[0] for r in results) and len(results[0]) == SEARCH["max_results"],
        "top10": {label: r[:10] for label, r in found["results"].items()},
    }


def ours_in_process(pg: TempPostgres, project_id: str, repeat: int) -> dict[str, Any]:
    """Where our REST search's time goes, measured in this process on database ``ours`` (no HTTP): the
    search's SQL (``experiment_page``, one page of ids) and the whole adapter call (``search_runs``: the
    page, then the runs it returns)."""
    from mlflow.entities import ViewType

    from airflow_mltrack.mlflow.store import MLTrackMlflowStore
    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.reads.experiment_list import ExperimentFilter, experiment_page

    store = TrackingStore.from_url(pg.url(OURS_DB))
    adapter = MLTrackMlflowStore(store=store)
    where = ExperimentFilter(  # as the adapter asks for one experiment: the project's own filter
        project=PROJECT,
        search=SEARCH["filter"],
        order_by=tuple(SEARCH["order_by"]),
        limit=SEARCH["max_results"],
        order="desc",
        count=False,  # as the adapter asks: no count, no label list
        labels=False,
    )

    def page() -> Any:
        return experiment_page(store, where)

    def runs() -> Any:
        return adapter.search_runs(
            [project_id], SEARCH["filter"], ViewType.ACTIVE_ONLY, SEARCH["max_results"], SEARCH["order_by"]
        )

    try:
        return {
            "experiment_page (the search SQL)": repeat_ms(page, repeat),
            "MLTrackMlflowStore.search_runs (no HTTP)": repeat_ms(runs, repeat),
        }
    finally:
        dispose_engines()


# --------------------------------------------------------------------------- load


def run_load(
    python: Path, pg: TempPostgres, side: Side, clients: int, seconds: float, name: str, log: Path
) -> dict[str, Any]:
    """``clients`` processes logging 10-metric batches into their own run on ``side`` for ``seconds``."""
    t0 = time.perf_counter()
    experiment = client(python, "experiment", {"url": side.url, "name": name}, side.token)["experiment_id"]
    args = json.dumps({"url": side.url, "experiment_id": experiment, "keys": MLFLOW_KEYS, "seconds": seconds})
    with log.open("a") as err:
        procs = [
            subprocess.Popen(
                [str(python), str(CLIENT), "load", args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=_client_env(side.token),
            )
            for _ in range(clients)
        ]
    try:
        for proc in procs:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                raise RuntimeError(f"a load client died before its run was created; see {log}")
        t_ready = time.perf_counter()
        cpu_before = cpu_seconds(side.process.pid), cpu_seconds(postmaster_pid(pg))
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        answers = []
        for proc in procs:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                raise RuntimeError(f"a load client died during the load; see {log}")
            answers.append(json.loads(line))
        cpu_after = cpu_seconds(side.process.pid), cpu_seconds(postmaster_pid(pg))
    finally:
        for proc in procs:
            if proc.poll() is None:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    run_ids = [a["run_id"] for a in answers]
    latencies = [x for a in answers for x in a["latencies_ms"]]
    window = max(a["seconds"] for a in answers)
    logged = sum(a["metrics"] for a in answers)
    stored = side.rows_of(pg, run_ids)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    server_cpu, pg_cpu = (
        None if before is None or after is None else after - before
        for before, after in zip(cpu_before, cpu_after, strict=True)
    )
    return {
        "experiment_id": experiment,
        "clients": clients,
        "seconds": window,
        "batches": len(latencies),
        "metrics_logged": logged,
        "metrics_stored": stored,
        "failures": sum(a["failures"] for a in answers),
        "first_failures": [f for a in answers for f in a["first_failures"]][:3],
        "metrics_per_second": stored / window,
        "batch_ms": {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(latencies)},
        "cpu_seconds": {
            "server": server_cpu,
            "postgresql": pg_cpu,
            "clients": sum(a["cpu_seconds"] for a in answers),
        },
        "run_ids": run_ids,
        "wall_seconds": {"clients ready": t_ready - t0, "whole round": time.perf_counter() - t0},
    }


def logged_keys(pg: TempPostgres, run_ids: list[str]) -> dict[str, str]:
    """Our (metric name -> split) of the rows the load clients logged through our endpoint."""
    rows = pg.psql(
        "SELECT DISTINCT name, evaluation_set FROM metrics WHERE experiment_id = ANY(%s)",
        OURS_DB,
        ([int(r) for r in run_ids],),
    )
    return {name: split for name, split in rows}


def bench_load(
    python: Path,
    pg: TempPostgres,
    sides: list[Side],
    clients: int,
    seconds: float,
    rounds: int,
    workdir: Path,
    console: Console,
) -> dict[str, Any]:
    """``rounds`` rounds of :func:`run_load` on every side, one side at a time, the first one alternating."""
    per_side: dict[str, list[dict[str, Any]]] = {s.label: [] for s in sides}
    for i in range(rounds):
        for side in sides if i % 2 == 0 else sides[::-1]:
            note_load(f"load {side.label} {i + 1}")
            result = run_load(python, pg, side, clients, seconds, f"load_{i + 1}", workdir / "clients.log")
            per_side[side.label].append(result)
            console.print(
                f"  round {i + 1} {side.label:28s} {result['metrics_per_second']:>9,.0f} metrics/s, "
                f"batch p50 {result['batch_ms']['p50']:.1f} ms, p95 {result['batch_ms']['p95']:.1f} ms, "
                f"{result['metrics_stored']:,}/{result['metrics_logged']:,} stored, {result['failures']} failures "
                f"({result['wall_seconds']['whole round']:.0f} s with the clients' start)"
            )
    note_load("loaded")
    out: dict[str, Any] = {}
    for label, results in per_side.items():
        out[label] = {
            "metrics_per_second": sum(r["metrics_stored"] for r in results)
            / sum(r["seconds"] for r in results),
            "metrics_per_second_rounds": [r["metrics_per_second"] for r in results],
            "batch_ms_p50": statistics.median(r["batch_ms"]["p50"] for r in results),
            "batch_ms_p95": statistics.median(r["batch_ms"]["p95"] for r in results),
            "metrics_logged": sum(r["metrics_logged"] for r in results),
            "metrics_stored": sum(r["metrics_stored"] for r in results),
            "failures": sum(r["failures"] for r in results),
            "cpu_ms_per_1000_metrics": {
                part: (
                    None
                    if any(r["cpu_seconds"][part] is None for r in results)
                    else 1e6
                    * sum(r["cpu_seconds"][part] for r in results)
                    / sum(r["metrics_stored"] for r in results)
                )
                for part in ("server", "postgresql", "clients")
            },
            "rounds": results,
        }
        out[label]["nothing_lost"] = (
            out[label]["metrics_stored"] == out[label]["metrics_logged"] and out[label]["failures"] == 0
        )
    return out


# --------------------------------------------------------------------------- report


def print_report(search: dict[str, Any], load: dict[str, Any], sides: list[Side], console: Console) -> None:
    theirs, ours = sides[0].label, sides[1].label
    t, o = search["timings"][theirs], search["timings"][ours]
    print_table(
        console,
        f"search_runs, {search['runs']:,} runs: filter {SEARCH['filter']!r}, order {SEARCH['order_by'][0]!r}, "
        f"top {SEARCH['max_results']} (ms, {len(t['runs_ms'])} interleaved calls)",
        ("server", "median ms", "min ms", "max ms"),
        [
            (label, f"{e['median_ms']:.1f}", f"{e['min_ms']:.1f}", f"{e['max_ms']:.1f}")
            for label, e in search["timings"].items()
        ]
        + [
            (
                "MLflow / ours",
                f"{t['median_ms'] / o['median_ms']:.1f}x",
                f"{t['min_ms'] / o['min_ms']:.1f}x",
                "",
            )
        ]
        + [
            (
                f"the HTTP answer alone: {label}",
                f"{e['median_ms']:.1f}",
                f"{e['min_ms']:.1f}",
                f"{e['max_ms']:.1f}",
            )
            for label, e in search["http_answer_ms"].items()
        ]
        + [
            (
                "the HTTP answer alone: MLflow / ours",
                f"{th['median_ms'] / oh['median_ms']:.1f}x",
                f"{th['min_ms'] / oh['min_ms']:.1f}x",
                "",
            )
            for th, oh in [(search["http_answer_ms"][theirs], search["http_answer_ms"][ours])]
        ]
        + [
            (f"ours in-process: {label}", f"{e['median_ms']:.1f}", f"{e['min_ms']:.1f}", f"{e['max_ms']:.1f}")
            for label, e in (search.get("ours_in_process_ms") or {}).items()
        ],
    )
    console.print(f"same {SEARCH['max_results']} results on both sides: {search['same_results']}")
    a, b = load[theirs], load[ours]
    print_table(
        console,
        f"log_batch of 10 metrics, {a['rounds'][0]['clients']} concurrent clients, "
        f"{len(a['rounds'])} round(s) of {a['rounds'][0]['seconds']:.0f} s",
        ("server", "metrics/s", "batch p50 ms", "batch p95 ms", "stored / logged", "failures", *CPU_COLUMNS),
        [
            (
                label,
                f"{e['metrics_per_second']:,.0f}",
                f"{e['batch_ms_p50']:.1f}",
                f"{e['batch_ms_p95']:.1f}",
                f"{e['metrics_stored']:,} / {e['metrics_logged']:,}",
                str(e["failures"]),
                *(_ms(e["cpu_ms_per_1000_metrics"][part]) for part in CPU_COLUMNS.values()),
            )
            for label, e in load.items()
        ]
        + [
            (
                "ours / MLflow",
                f"{b['metrics_per_second'] / a['metrics_per_second']:.2f}x",
                *[""] * (4 + len(CPU_COLUMNS)),
            )
        ],
    )


CPU_COLUMNS = {
    "server CPU ms/1k": "server",
    "PostgreSQL CPU ms/1k": "postgresql",
    "clients CPU ms/1k": "clients",
}


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def main() -> int:
    parser = arguments(__doc__, "mlflow_rest_bench")
    parser.add_argument("--runs", type=int, default=100_000, help="runs on each side for the search")
    parser.add_argument("--clients", type=int, default=20, help="concurrent client processes logging")
    parser.add_argument("--seconds", type=float, default=30, help="seconds of load per round and side")
    parser.add_argument("--rounds", type=int, default=2, help="load rounds per side (first side alternates)")
    parser.add_argument("--repeat", type=int, default=10, help="timed search_runs calls per side")
    parser.add_argument("--workers", type=int, default=4, help="server worker processes, both sides")
    parser.add_argument("--quick", action="store_true", help="10k runs, 10 s of load, 1 round, 5 searches")
    parser.add_argument(
        "--mlflow-both", action="store_true", help="A/A check of the harness: MLflow's server on both sides"
    )
    parser.add_argument("--venv", type=Path, default=VENV)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    if args.quick:
        args.runs, args.seconds, args.rounds, args.repeat = 10_000, 10, 1, 5
    for name in ("runs", "clients", "seconds", "rounds", "repeat", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    console = Console(width=None if sys.stdout.isatty() else 130)
    started = time.perf_counter()
    note_load("start")
    code = code_version()
    python = ensure_mlflow_venv(args.venv, console)
    workdir = Path(tempfile.mkdtemp(prefix="mlflow-rest-bench-"))
    worker = MlflowWorker(python, str(workdir))
    sides: list[Side] = []
    try:
        with temp_postgres() as pg:
            machine = machine_info(pg)
            data = prepare(pg, worker, args.runs, console)
            worker.close()
            project_id = str(
                pg.psql("SELECT project_id FROM projects WHERE name = %s", OURS_DB, (PROJECT,))[0][0]
            )
            note_load("in-process")
            in_process = ours_in_process(pg, project_id, args.repeat)
            note_load("servers")
            sides.append(start_mlflow(python, pg, MLFLOW_DB, args.workers, workdir))
            mlflow_experiment = str(
                pg.psql("SELECT experiment_id FROM experiments WHERE name = %s", MLFLOW_DB, (PROJECT,))[0][0]
            )
            sides[0].search_experiment_id = mlflow_experiment
            if args.mlflow_both:
                sides.append(start_mlflow(python, pg, MLFLOW_DB, args.workers, workdir))
                sides[1].label, sides[1].search_experiment_id = "MLflow server (A/A)", mlflow_experiment
            else:
                sides.append(start_ours(pg, args.workers, workdir))
                sides[1].search_experiment_id = project_id
            console.print(f"servers up: {', '.join(f'{s.label} {s.url}' for s in sides)}")
            search = {
                "runs": args.runs,
                **bench_search(python, sides, args.repeat, console),
                "ours_in_process_ms": in_process,
            }
            load = bench_load(python, pg, sides, args.clients, args.seconds, args.rounds, workdir, console)
            mapping = None
            if not args.mlflow_both:
                run_ids = [r for entry in load[sides[1].label]["rounds"] for r in entry["run_ids"]]
                found = logged_keys(pg, run_ids)
                expected = {key: split_of(key) for key in MLFLOW_KEYS}
                mapping = {"expected": expected, "stored": found, "same": found == expected}
                console.print(
                    f"our stored (name, split) of the logged keys as the rename assumes: {found == expected}"
                )
    finally:
        for side in sides:
            side.stop()
        worker.close()
        shutil.rmtree(workdir, ignore_errors=True)
    note_load("end")
    total = time.perf_counter() - started
    print_report(search, load, sides, console)
    console.print(
        f"total {total / 60:.1f} min; load average samples: "
        + ", ".join(f"{s['phase']} {s['loadavg'][0]}" for s in LOAD_SAMPLES)
    )
    theirs, ours = sides[0].label, sides[1].label
    write_results(
        args.json,
        {
            "machine": machine,
            "code": code,
            "versions": {
                "MLflow server (bench venv)": list(MLFLOW_REQUIREMENTS),
                "ours: apache-airflow": version("apache-airflow"),
                "ours: mlflow-skinny (protos, entities)": version("mlflow-skinny"),
            },
            "servers": {
                s.label: {
                    "argv": s.argv,
                    "env": MLFLOW_SERVER_ENV if s.argv[1] == "server" else {},
                    "url": s.url,
                    "workers": args.workers,
                    "started_in_seconds": s.started_in,
                }
                for s in sides
            },
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - total)),
            "total_seconds": total,
            "load_average": LOAD_SAMPLES,
            "data": data,
            "search": search,
            "load": load,
            "metric_name_mapping": mapping,
            "ratios": {
                "search: MLflow / ours (median)": search["timings"][theirs]["median_ms"]
                / search["timings"][ours]["median_ms"],
                "search, the HTTP answer alone: MLflow / ours (median)": search["http_answer_ms"][theirs][
                    "median_ms"
                ]
                / search["http_answer_ms"][ours]["median_ms"],
                "load: ours / MLflow metrics/s": load[ours]["metrics_per_second"]
                / load[theirs]["metrics_per_second"],
            },
        },
        console,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
