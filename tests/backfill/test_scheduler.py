"""BackfillMetricsOperator with its defaults on a real scheduler (LocalExecutor workers, no metadata-DB
access), under catchup: ``@daily`` (CronTriggerTimetable), CronDataIntervalTimetable, ``timedelta(days=1)``,
an asset schedule, and a manual run without a logical date.

The source DAG (``scheduler_dags/mltrack_sched_dags.py``) catches up 3 days (day 0 .. today); each reconcile
DAG imports from its own source task, so what it imported is visible in the tracking store alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.status.test_status_listener import _airflow, _free_port

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

DAGS = Path(__file__).resolve().parent / "scheduler_dags"
SOURCE = "mltrack_sched_source"
CATCHUP_DAYS = 2  # source runs at day 0, 1 and 2 (today 00:00 UTC)


def _runs(home: Path, dag_id: str) -> list[tuple[str, str, str | None]]:
    """(run_id, state, run_type) of ``dag_id``'s runs, read from the stack's SQLite metadata DB."""
    with sqlite3.connect(home / "airflow.db") as db:
        return db.execute(
            "SELECT run_id, state, run_type FROM dag_run WHERE dag_id = ?", (dag_id,)
        ).fetchall()


def _wait(what: str, predicate, deadline: float, logs: Path) -> None:
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))
    pytest.fail(f"timed out waiting for {what}\n{tails}")


def test_catchup_runs_of_every_schedule_import_every_source_run(tracking_pg, tracking, tmp_path):
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - dt.timedelta(days=CATCHUP_DAYS)
    port = _free_port()
    home = tmp_path / "airflow_home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API_AUTH__JWT_SECRET": "mltrack-backfill-test-secret",
            "AIRFLOW__API__SECRET_KEY": "mltrack-backfill-test-secret",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW_CONN_MLTRACK_DEFAULT": json.dumps(
                {"conn_type": "mltrack", "extra": {"url": tracking_pg}}
            ),
            "MLTRACK_SCHED_START": start.date().isoformat(),
        }
    )
    migrate = _airflow(env, "db", "migrate", timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    logs = {
        name: open(tmp_path / f"{name}.log", "w") for name in ("api-server", "scheduler", "dag-processor")
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "airflow", name], env=env, stdout=logs[name], stderr=subprocess.STDOUT
        )
        for name in logs
    ]
    kinds = ["cron_trigger", "cron_interval", "timedelta", "asset"]
    try:
        deadline = time.monotonic() + 480
        _wait("the API server", lambda: _healthy(port), deadline, tmp_path)

        def unpause(*dag_ids: str) -> bool:
            return all(_airflow(env, "dags", "unpause", d).returncode == 0 for d in dag_ids)

        # The asset-scheduled reconcile, then the source (an asset event emitted while the consumer is
        # still paused is not queued for it); the time-scheduled reconciles once the source's catchup is
        # done (as a user would order them, e.g. with a sensor).
        _wait("the DAGs to be parsed", lambda: unpause("mltrack_sched_asset", SOURCE), deadline, tmp_path)
        source_done = lambda: (  # noqa: E731
            len(runs := _runs(home, SOURCE)) == CATCHUP_DAYS + 1 and all(r[1] == "success" for r in runs)
        )
        _wait("the source catchup", source_done, deadline, tmp_path)
        assert unpause(*(f"mltrack_sched_{k}" for k in kinds[:3]))
        expected_runs = {
            "cron_trigger": CATCHUP_DAYS + 1,
            "cron_interval": CATCHUP_DAYS,
            "timedelta": CATCHUP_DAYS + 1,
        }

        def scheduled_done() -> bool:
            return all(
                len(runs := _runs(home, f"mltrack_sched_{k}")) == n
                and all(r[1] in ("success", "failed") for r in runs)
                for k, n in expected_runs.items()
            )

        _wait("the reconcile catchups", scheduled_done, deadline, tmp_path)
        # A manual run without a logical date (what `airflow dags trigger` creates) after the catchup.
        trigger = _airflow(env, "dags", "trigger", "mltrack_sched_cron_trigger")
        assert trigger.returncode == 0, trigger.stderr[-2000:]

        def all_done() -> bool:
            runs = {k: _runs(home, f"mltrack_sched_{k}") for k in kinds}
            finished = all(r[1] in ("success", "failed") for rows in runs.values() for r in rows)
            return finished and len(runs["cron_trigger"]) == CATCHUP_DAYS + 2 and bool(runs["asset"])

        _wait("the manual and asset-triggered runs", all_done, deadline, tmp_path)
        # The asset runs may be one or several: wait until they have imported every source run.
        _wait(
            "the asset-triggered imports",
            lambda: (
                len(_imported(tracking, "asset")) == CATCHUP_DAYS + 1
                and all(r[1] in ("success", "failed") for r in _runs(home, "mltrack_sched_asset"))
            ),
            deadline,
            tmp_path,
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for f in logs.values():
            f.close()

    states = {k: sorted({(r[1], r[2]) for r in _runs(home, f"mltrack_sched_{k}")}) for k in kinds}
    assert states == {
        "cron_trigger": [("success", "manual"), ("success", "scheduled")],
        "cron_interval": [("success", "scheduled")],
        "timedelta": [("success", "scheduled")],
        "asset": [("success", "asset_triggered")],
    }
    source_days = {run_id: _day(run_id, start) for run_id, _, _ in _runs(home, SOURCE)}
    # "@daily" and timedelta(days=1): the run at D imports D - 1 day; the manual run today's run so far.
    assert sorted(source_days[r] for r in _imported(tracking, "cron_trigger")) == [0, 1, 2]
    assert sorted(source_days[r] for r in _imported(tracking, "timedelta")) == [0, 1]
    # CronDataIntervalTimetable: the intervals that have ended (day 0 and day 1).
    assert sorted(source_days[r] for r in _imported(tracking, "cron_interval")) == [0, 1]
    # Asset-triggered: the runs behind the events, today's included.
    assert sorted(source_days[r] for r in _imported(tracking, "asset")) == [0, 1, 2]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2):
            return True
    except OSError:
        return False


def _imported(store, kind: str) -> list[str]:
    """Run ids of the source runs whose ``for_{kind}`` metrics are in the tracking store."""
    return [
        e["run_id"]
        for e in store.find_experiments(dag_id=SOURCE, task_id=f"for_{kind}")
        if store.metric_history(e["experiment_id"], "accuracy", "test")
    ]


def _day(run_id: str, start: dt.datetime) -> int:
    """Days from ``start`` to the logical date in a scheduled run id (``scheduled__2026-01-01T00:00:00+00:00``)."""
    return (dt.datetime.fromisoformat(run_id.split("__", 1)[1]) - start).days
