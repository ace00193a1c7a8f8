"""Real Airflow for the operator and example-DAG tests.

One Airflow metadata database per session: a SQLite file in the session's AIRFLOW_HOME (set by
``tests/conftest.py``), created with ``airflow db migrate``. Two local DAG bundles: the repository's
example DAGs (``dags/``) and the test DAGs (``tests/operators/dags/``); ``dag.test()`` syncs the bundle of
the DAG it runs, so DAG files need nothing else. Each test gets a fresh PostgreSQL tracking store (copied
from the migrated template) as connection ``mltrack_default``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_db import add_dag_bundle, migrate_once

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "dags"
TEST_DAGS = Path(__file__).resolve().parent / "dags"

BUNDLES = {"mltrack_examples": EXAMPLE_DAGS, "mltrack_tests": TEST_DAGS}


def _register_bundles() -> None:
    """Our two local DAG bundles in ``[dag_processor] dag_bundle_config_list`` (merged with others')."""
    for name, path in BUNDLES.items():
        add_dag_bundle(name, str(path))


# Airflow reads these from the environment on every lookup; set before any DAG is parsed.
_register_bundles()
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(EXAMPLE_DAGS))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.airflow)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """The session's Airflow metadata database, migrated once (``airflow db migrate``)."""
    seconds = migrate_once()
    print(f"airflow db migrate: {seconds:.1f}s in {os.environ['AIRFLOW_HOME']}")
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture
def store(tracking_pg):
    """The TrackingStore the DAGs write to (overrides the two-backend ``store`` of tests/conftest.py)."""
    from airflow_mltrack.store import TrackingStore

    return TrackingStore.from_url(tracking_pg)


_DAGBAGS: dict[Path, Any] = {}


def load_dag(dag_id: str, folder: Path | None = None):
    """The DAG ``dag_id`` parsed from the test DAGs or the example DAGs."""
    from airflow.dag_processing.dagbag import DagBag

    folders = [folder] if folder else [TEST_DAGS, EXAMPLE_DAGS]
    for path in folders:
        bag = _DAGBAGS.get(path)
        if bag is None:
            bag = _DAGBAGS[path] = DagBag(dag_folder=str(path))
            assert not bag.import_errors, bag.import_errors
        if dag_id in bag.dags:
            return bag.dags[dag_id]
    raise KeyError(dag_id)


class DagResult:
    """A finished ``dag.test()`` run: its state and task instance states."""

    def __init__(self, dag_run: Any, seconds: float) -> None:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        self.dag_run = dag_run
        self.run_id = dag_run.run_id
        self.state = str(dag_run.state)
        self.seconds = seconds
        with create_session() as session:
            tis = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
                )
            ).all()
            self.tis = {(ti.task_id, ti.map_index): (str(ti.state), ti.try_number) for ti in tis}

    def state_of(self, task_id: str, map_index: int = -1) -> str:
        return self.tis[(task_id, map_index)][0]

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            row = session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == self.dag_run.dag_id,
                    XComModel.run_id == self.run_id,
                    XComModel.task_id == task_id,
                    XComModel.key == key,
                    XComModel.map_index == map_index,
                )
            ).first()
            return None if row is None else XComModel.deserialize_value(row)


@pytest.fixture
def run_dag(airflow_db, tracking_pg):
    """``run_dag(dag_id, **test_kwargs)`` -> DagResult, with the tracking store of this test."""

    def run(dag_id: str, **kwargs: Any) -> DagResult:
        _register_bundles()  # in case another folder's fixture replaced the bundle list
        dag = load_dag(dag_id)
        started = time.perf_counter()
        dag_run = dag.test(**kwargs)
        return DagResult(dag_run, time.perf_counter() - started)

    return run
