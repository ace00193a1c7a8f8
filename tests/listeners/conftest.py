"""Real Airflow for the decorator and status-listener tests.

Airflow metadata: the session's SQLite database (``tests/support/airflow_db.py``); the test DAGs in
``tests/listeners/dags`` are a local DAG bundle, so ``dag.test()`` finds them with no syncing. Tracking store:
a fresh PostgreSQL database per test (copied from the migrated template) as ``mltrack_default``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_db import add_dag_bundle, migrate_once

STATUS_DAGS = Path(__file__).resolve().parent / "dags"

add_dag_bundle("mltrack_status_tests", str(STATUS_DAGS))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(STATUS_DAGS))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.airflow)


@pytest.fixture(scope="session")
def status_airflow_db() -> str:
    seconds = migrate_once()
    print(f"airflow db migrate: {seconds:.1f}s")
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture
def status_store(tracking_pg):
    """The TrackingStore behind connection ``mltrack_default`` (a fresh PostgreSQL database)."""
    from airflow_mltrack.store import TrackingStore

    return TrackingStore.from_url(tracking_pg)


_DAGBAG: dict[str, Any] = {}


def load_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = _DAGBAG.get("bag")
    if bag is None:
        bag = _DAGBAG["bag"] = DagBag(dag_folder=str(STATUS_DAGS))
        assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


class DagResult:
    """A finished dag run: state, task instance states, XComs (read with the ORM, in the test process)."""

    def __init__(self, dag_id: str, run_id: str, seconds: float) -> None:
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        self.dag_id, self.run_id, self.seconds = dag_id, run_id, seconds
        with create_session() as session:
            dag_run = session.scalars(
                select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
            ).one()
            self.state = str(getattr(dag_run.state, "value", dag_run.state))
            tis = session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            ).all()
            self.tis = {
                (ti.task_id, ti.map_index): (str(getattr(ti.state, "value", ti.state)), ti.try_number)
                for ti in tis
            }

    def state_of(self, task_id: str, map_index: int = -1) -> str:
        return self.tis[(task_id, map_index)][0]

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            row = session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == self.dag_id,
                    XComModel.run_id == self.run_id,
                    XComModel.task_id == task_id,
                    XComModel.key == key,
                    XComModel.map_index == map_index,
                )
            ).first()
            return None if row is None else XComModel.deserialize_value(row)


@pytest.fixture
def run_dag(status_airflow_db):
    """``run_dag(dag_id)`` -> DagResult via ``dag.test()`` (tasks in-process, listeners in-process)."""

    def run(dag_id: str, **kwargs: Any) -> DagResult:
        dag = load_dag(dag_id)
        started = time.perf_counter()
        dag_run = dag.test(**kwargs)
        return DagResult(dag_id, dag_run.run_id, time.perf_counter() - started)

    return run
