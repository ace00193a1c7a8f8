"""BackfillMetricsOperator with its defaults on a real scheduler (LocalExecutor workers, no metadata-DB
access), under catchup: ``@daily`` (CronTriggerTimetable), CronDataIntervalTimetable, ``timedelta(days=1)``,
an asset schedule, and a manual run without a logical date.

The source DAG (``scheduler_dags/mltrack_sched_dags.py``) catches up 3 days (day 0 .. today); each reconcile
DAG imports from its own source task, so what it imported is visible in the tracking store alone.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path

import pytest

from tests.support.airflow_cluster import AirflowCluster

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


def test_catchup_runs_of_every_schedule_import_every_source_run(tracking_pg, tracking, tmp_path):
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - dt.timedelta(days=CATCHUP_DAYS)
    cluster = AirflowCluster(
        tmp_path,
        DAGS,
        tracking_pg,
        secret="mltrack-backfill-test-secret",
        paused_at_creation=True,
        extra_env={"MLTRACK_SCHED_START": start.date().isoformat()},
    )
    home = cluster.home
    kinds = ["cron_trigger", "cron_interval", "timedelta", "asset"]
    with cluster:
        deadline = time.monotonic() + 480
        cluster.wait("the API server", cluster.healthy, deadline)

        def unpause(*dag_ids: str) -> bool:
            return all(cluster.airflow("dags", "unpause", d).returncode == 0 for d in dag_ids)

        # The asset-scheduled reconcile, then the source (an asset event emitted while the consumer is
        # still paused is not queued for it); the time-scheduled reconciles once the source's catchup is
        # done (as a user would order them, e.g. with a sensor).
        cluster.wait("the DAGs to be parsed", lambda: unpause("mltrack_sched_asset", SOURCE), deadline)
        source_done = lambda: (  # noqa: E731
            len(runs := _runs(home, SOURCE)) == CATCHUP_DAYS + 1 and all(r[1] == "success" for r in runs)
        )
        cluster.wait("the source catchup", source_done, deadline)
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

        cluster.wait("the reconcile catchups", scheduled_done, deadline)
        # A manual run without a logical date (what `airflow dags trigger` creates) after the catchup.
        trigger = cluster.airflow("dags", "trigger", "mltrack_sched_cron_trigger")
        assert trigger.returncode == 0, trigger.stderr[-2000:]

        def all_done() -> bool:
            runs = {k: _runs(home, f"mltrack_sched_{k}") for k in kinds}
            finished = all(r[1] in ("success", "failed") for rows in runs.values() for r in rows)
            return finished and len(runs["cron_trigger"]) == CATCHUP_DAYS + 2 and bool(runs["asset"])

        cluster.wait("the manual and asset-triggered runs", all_done, deadline)
        # The asset runs may be one or several: wait until they have imported every source run.
        cluster.wait(
            "the asset-triggered imports",
            lambda: (
                len(_imported(tracking, "asset")) == CATCHUP_DAYS + 1
                and all(r[1] in ("success", "failed") for r in _runs(home, "mltrack_sched_asset"))
            ),
            deadline,
        )

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
