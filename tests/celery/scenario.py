"""The Celery scenario of tests/celery and benchmarks/celery_bench.py, and its checks.

:func:`run_mapped` triggers the mapped DAG of ``tests/celery/dags`` on an :class:`AirflowCluster` with the
CeleryExecutor, reads the DAG run's experiments through the UI (API server, token from ``POST
/auth/token``) while they are Running, optionally SIGKILLs the Celery worker's process group while tasks
are half-written and starts a fresh worker, and waits until the DAG run succeeded. :func:`row_checks`
then recomputes everything from the tracking database: each experiment's rows against the values the
DAG logs, lost and duplicated keys, and ``metric_latest`` against an aggregate of ``metrics``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.celery.dags.mltrack_celery_dags import DAG_ID, NAMES
from tests.support.airflow_cluster import AirflowCluster

DAGS = Path(__file__).resolve().parent / "dags"
EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "dags"
EXAMPLES = ("train_evaluate_deploy", "failing_training")  # metric_backfill's catchup would run for days
SETTLE = 3.0  # seconds after the kill when the rows are counted again

#: Airflow settings of the scenario: a task whose worker died is failed (and retried) after 30 s without
#: a heartbeat; a task whose Celery message died with the worker before it started is queued again after
#: 60 s; the scheduler gives Redis 10 s (not 1) to take a message, as a loaded 2-core machine may need.
RECOVERY_ENV = {
    "AIRFLOW__CELERY__OPERATION_TIMEOUT": "10",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
}

# The experiments of one DAG run with their map index (the creating task instance) and status.
_EXPERIMENTS = (
    "SELECT e.experiment_id, t.map_index, e.status FROM experiments e "
    "JOIN experiment_tasks t ON t.experiment_id = e.experiment_id AND t.role = 'creator' "
    "WHERE e.dag_id = %(dag_id)s AND e.run_id = %(run_id)s ORDER BY t.map_index"
)
_COUNTS = (
    "SELECT t.map_index, count(m.metric_id) FROM experiment_tasks t "
    "LEFT JOIN metrics m ON m.experiment_id = t.experiment_id "
    "WHERE t.dag_id = %(dag_id)s AND t.run_id = %(run_id)s AND t.role = 'creator' GROUP BY t.map_index"
)
# Rows whose value is not the one the DAG logged for (task index, name, step); point i = step*NAMES + k.
_WRONG = (
    "SELECT count(*) FROM metrics m JOIN experiment_tasks t ON t.experiment_id = m.experiment_id "
    "AND t.role = 'creator' WHERE t.dag_id = %(dag_id)s AND t.run_id = %(run_id)s AND (m.evaluation_set <> "
    "'train' OR m.value <> t.map_index * 1000000.0 + m.step * %(names)s + substr(m.name, 2)::int)"
)
_KEYS = (
    "SELECT count(*), count(DISTINCT (m.experiment_id, m.name, m.evaluation_set, m.step)) FROM metrics m "
    "JOIN experiments e ON e.experiment_id = m.experiment_id "
    "WHERE e.dag_id = %(dag_id)s AND e.run_id = %(run_id)s"
)
# metric_latest recomputed from metrics (final value: the step-less row, else the highest step), compared
# both ways with EXCEPT: the number of rows that differ.
_RECOMPUTED = (
    "SELECT experiment_id, name, evaluation_set, "
    "(array_agg(step ORDER BY step DESC NULLS FIRST))[1], (array_agg(value ORDER BY step DESC NULLS FIRST))[1], "
    "min(value), max(value), count(*)::int FROM metrics GROUP BY experiment_id, name, evaluation_set"
)
_STORED = (
    "SELECT experiment_id, name, evaluation_set, step, value, min_value, max_value, points FROM metric_latest"
)
_LATEST_DIFF = (
    f"SELECT (SELECT count(*) FROM (({_RECOMPUTED}) EXCEPT ({_STORED})) a), "
    f"(SELECT count(*) FROM (({_STORED}) EXCEPT ({_RECOMPUTED})) b)"
)


@dataclass
class Outcome:
    """What :func:`run_mapped` saw."""

    run_id: str = ""
    seconds: float = 0.0  # trigger -> DAG run succeeded
    ui_running: list[int] = field(default_factory=list)  # experiment ids the API listed as Running
    ui_page_running: bool = False  # the DAG-run page (/mltrack/run) showed a Running experiment
    rows_at_kill: dict[int, int] = field(default_factory=dict)  # map index -> rows when the worker died
    rows_after_kill: dict[int, int] = field(default_factory=dict)  # the same, SETTLE seconds later
    killed_at: float | None = None  # seconds after the trigger
    tries: dict[int, int] = field(default_factory=dict)  # map index -> try_number of the final try
    dag_run_state: str = ""


def dags_folder(path: Path, examples: bool = True) -> Path:
    """``path`` (created) holding links to the mapped DAG and, with ``examples``, the example DAGs."""
    path.mkdir(parents=True, exist_ok=True)
    sources = [*DAGS.glob("*.py"), *(EXAMPLE_DAGS / f"{name}.py" for name in EXAMPLES if examples)]
    for source in sources:
        (path / source.name).symlink_to(source)
    return path


def trigger(cluster: AirflowCluster, dag_ids: tuple[str, ...], deadline: float) -> None:
    """``airflow dags trigger`` each DAG, retrying until the DAG processor has parsed it."""
    for dag_id in dag_ids:
        cluster.wait(
            f"the DAG {dag_id} to be triggered",
            lambda d=dag_id: cluster.airflow("dags", "trigger", d).returncode == 0,
            deadline,
        )


def dag_run_states(metadata: psycopg.Connection, dag_ids: tuple[str, ...]) -> dict[str, str]:
    """dag_id -> state of its latest run (DAGs without a run left out)."""
    rows = metadata.execute(
        "SELECT DISTINCT ON (dag_id) dag_id, state FROM dag_run WHERE dag_id = ANY(%s) ORDER BY dag_id, id DESC",
        (list(dag_ids),),
    ).fetchall()
    return dict(rows)


def examples_finished(metadata_url: str) -> bool:
    """Has a run of each example DAG finished (success or failed)?"""
    with connect(metadata_url) as conn:
        states = dag_run_states(conn, EXAMPLES)
    return len(states) == len(EXAMPLES) and set(states.values()) <= {"success", "failed"}


def api_token(cluster: AirflowCluster) -> str:
    """A JWT for ``admin`` from ``POST /auth/token`` (simple auth manager's generated password)."""
    passwords = json.loads((cluster.home / "simple_auth_manager_passwords.json.generated").read_text())
    answer = httpx.post(
        f"http://127.0.0.1:{cluster.port}/auth/token",
        json={"username": "admin", "password": passwords["admin"]},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def experiments(tracking: psycopg.Connection, run_id: str) -> list[tuple[int, int, str]]:
    """``(experiment_id, map_index, status)`` of the run's experiments."""
    return [tuple(r) for r in tracking.execute(_EXPERIMENTS, {"dag_id": DAG_ID, "run_id": run_id})]


def row_counts(tracking: psycopg.Connection, run_id: str) -> dict[int, int]:
    """map index -> metric rows of its experiment."""
    return dict(tracking.execute(_COUNTS, {"dag_id": DAG_ID, "run_id": run_id}).fetchall())


def row_checks(tracking: psycopg.Connection, run_id: str, tasks: int, points: int) -> dict[str, Any]:
    """Every check of the run's rows, recomputed from the database (all ints; see the module docstring)."""
    args = {"dag_id": DAG_ID, "run_id": run_id, "names": NAMES}
    found = experiments(tracking, run_id)
    rows, keys = tracking.execute(_KEYS, args).fetchone()
    wrong = tracking.execute(_WRONG, args).fetchone()[0]
    missing_latest, stale_latest = tracking.execute(_LATEST_DIFF).fetchone()
    counts = row_counts(tracking, run_id)
    return {
        "experiments": len(found),
        "completed": sum(1 for _e, _m, status in found if status == "Completed"),
        "map_indexes_ok": int(sorted(m for _e, m, _s in found) == list(range(tasks))),
        "rows": rows,
        "expected_rows": tasks * points,
        "lost": max(tasks * points - keys, 0),
        "duplicated": rows - keys,
        "wrong_values": wrong,
        "experiments_short": sum(1 for n in counts.values() if n != points),
        "metric_latest_missing_or_wrong": missing_latest,
        "metric_latest_extra_or_wrong": stale_latest,
    }


def _dag_run(metadata: psycopg.Connection) -> tuple[str, str] | None:
    row = metadata.execute(
        "SELECT run_id, state FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1", (DAG_ID,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def _ui_running(cluster: AirflowCluster, token: str, run_id: str) -> tuple[list[int], bool]:
    """Experiment ids the API lists as Running for the run, and whether the DAG-run page shows one."""
    base = f"http://127.0.0.1:{cluster.port}/mltrack"
    headers = {"Authorization": f"Bearer {token}"}
    params = {"dag_id": DAG_ID, "run_id": run_id}
    page = httpx.get(f"{base}/api/experiments", params={**params, "limit": 500}, headers=headers, timeout=30)
    page.raise_for_status()
    running = [e["experiment_id"] for e in page.json()["items"] if e["status"] == "Running"]
    html = httpx.get(f"{base}/run", params=params, headers=headers, timeout=30)
    html.raise_for_status()
    return running, ">Running<" in html.text


def run_mapped(
    cluster: AirflowCluster,
    tracking_url: str,
    metadata_url: str,
    *,
    tasks: int,
    points: int,
    kill: bool,
    deadline: float,
    after_kill: Callable[[], None] | None = None,
) -> Outcome:
    """Trigger the mapped DAG, watch it in the UI, kill the worker mid-run (``kill``), wait for success.

    ``after_kill`` runs once the fresh worker has started (or once the UI was read, without ``kill``).
    """
    out = Outcome()
    cluster.wait("the API server", cluster.healthy, deadline)
    token = api_token(cluster)
    trigger(cluster, (DAG_ID,), deadline)
    started = time.monotonic()
    with connect(tracking_url) as tracking, connect(metadata_url) as metadata:
        cluster.wait("the DAG run", lambda: _dag_run(metadata) is not None, deadline)
        out.run_id = _dag_run(metadata)[0]  # type: ignore[index]

        def not_over(what: str) -> None:
            state = _dag_run(metadata)
            if state and state[1] in ("success", "failed"):
                raise RuntimeError(
                    f"the DAG run ended ({state[1]}) before {what}: give the tasks more points"
                )

        def seen_running() -> bool:
            running_now = [e for e, _m, s in experiments(tracking, out.run_id) if s == "Running"]
            if running_now:
                out.ui_running, out.ui_page_running = _ui_running(cluster, token, out.run_id)
            if not (out.ui_running and out.ui_page_running):
                not_over("the UI listed a Running experiment")
                return False
            return True

        cluster.wait("the UI to list Running experiments", seen_running, deadline, interval=0.2)
        if kill:

            def half_written() -> bool:
                if any(0 < n < points for n in row_counts(tracking, out.run_id).values()):
                    return True
                not_over("a task was seen half-written")
                return False

            cluster.wait("a task half-written", half_written, deadline, interval=0.1)
            cluster.kill_worker()
            out.killed_at = time.monotonic() - started
            out.rows_at_kill = row_counts(tracking, out.run_id)
            time.sleep(SETTLE)  # nothing of the dead worker writes any more
            out.rows_after_kill = row_counts(tracking, out.run_id)
            cluster.start_worker()
        if after_kill is not None:
            after_kill()

        def finished() -> bool:
            state = _dag_run(metadata)
            out.dag_run_state = state[1] if state else ""
            return out.dag_run_state in ("success", "failed")

        cluster.wait(f"the DAG run of {DAG_ID} to finish", finished, deadline)
        out.seconds = time.monotonic() - started
        out.tries = dict(
            metadata.execute(
                "SELECT map_index, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s",
                (DAG_ID, out.run_id),
            ).fetchall()
        )
    return out


def connect(url: str) -> psycopg.Connection:
    """An autocommit psycopg connection from a SQLAlchemy URL (``postgresql+psycopg://...``)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
        autocommit=True,
        application_name="mltrack-celery-check",
    )
