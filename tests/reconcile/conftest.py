"""Fixtures for the backfill tests: a real Airflow metadata DB (SQLite, migrated once per session) whose
DAG bundle holds ``tests/reconcile/dags`` and ``dags/metric_backfill.py``, and a PostgreSQL tracking store
reached through ``AIRFLOW_CONN_MLTRACK_DEFAULT``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLE_NAME = "mltrack-backfill-tests"
DAYS = 5  # source runs 2026-01-01 .. 2026-01-05; day 3 is malformed


@pytest.fixture(scope="session")
def _bundle_folder():
    """A folder with the backfill test DAGs and ``dags/metric_backfill.py``, and the session metadata DB
    migrated (``airflow db migrate`` in a subprocess, once)."""
    folder = Path(tempfile.mkdtemp(prefix="mltrack-bf-dags-"))
    for path in [
        *sorted((REPO / "tests" / "reconcile" / "dags").glob("*.py")),
        REPO / "dags" / "metric_backfill.py",
    ]:
        shutil.copy(path, folder / path.name)
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run(
        [str(airflow), "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, **_bundle_env(folder)},
    )
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _bundle_env(folder: Path) -> dict[str, str]:
    bundles = [
        {
            "name": BUNDLE_NAME,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(folder), "refresh_interval": 0},
        }
    ]
    return {
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
    }


@pytest.fixture(scope="module")
def airflow_db(_bundle_folder):
    """The session AIRFLOW_HOME's metadata DB, migrated, with a DAG bundle of the backfill test DAGs.

    Returns the bundle folder. The bundle is configured through ``dag_bundle_config_list`` (read by each
    DagBundlesManager, so it works even when ``airflow`` was imported before), set only while this
    module's tests run so other tests keep their own configuration.
    """
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _bundle_env(_bundle_folder).items():
            mp.setenv(key, value)
        yield _bundle_folder


@pytest.fixture(scope="module")
def source_runs(airflow_db):
    """``mltrack_bf_source`` run for DAYS days with ``dag.test``; returns {run_id: day}."""
    import datetime as dt

    from tests.reconcile.dags.mltrack_bf_source import START

    dag = load_dag(airflow_db, "mltrack_bf_source")
    runs = {}
    for day in range(DAYS):
        dr = dag.test(logical_date=START + dt.timedelta(days=day))
        assert dr.state == "success", dr.state
        runs[dr.run_id] = day
    return runs


@pytest.fixture
def pg_tracking_url(tracking_pg):
    """A fresh PostgreSQL tracking database at head, also connection ``mltrack_default``."""
    return tracking_pg


@pytest.fixture
def tracking(tracking_pg):
    """The TrackingStore that tasks reach through ``mltrack_default`` (AIRFLOW_CONN_MLTRACK_DEFAULT)."""
    from airflow_mltrack.store import TrackingStore

    return TrackingStore.from_url(tracking_pg)


def load_dag(folder: Path, dag_id: str):
    """The DAG ``dag_id`` parsed from the test bundle folder (so ``dag.test()`` finds it serialized)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not in {sorted(bag.dag_ids)}"
    return dag


def run_summary(dr, task_id: str = "reconcile"):
    """The XCom ``return_value`` of ``task_id`` in DAG run ``dr`` (the operator's summary)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dr.run_id, key="return_value", task_ids=task_id, dag_ids=dr.dag_id, limit=1
            )
        ).first()
        return XComModel.deserialize_value(row)
