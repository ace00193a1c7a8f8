"""Real Airflow for the OpenLineage tests: the session metadata database (``airflow db migrate`` once) and
the repository's example DAGs as a local DAG bundle, as in tests/operators/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.airflow_db import add_dag_bundle, migrate_once

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "dags"

add_dag_bundle("mltrack_examples", str(EXAMPLE_DAGS))


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents and "airflow_db" in item.fixturenames:
            item.add_marker(pytest.mark.airflow)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """The session's Airflow metadata database, migrated once."""
    migrate_once()
    return os.environ["AIRFLOW_HOME"]
