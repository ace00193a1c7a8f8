"""Helpers shared by test_bad_input.py and test_security.py: row counts, DAG runs, the UI app with real auth.

Not a conftest (other helpers own this folder's fixtures): the test modules import what they use.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, column, func, inspect, select, table

from tests.support.airflow_db import add_dag_bundle, migrate_once

DAGS = Path(__file__).resolve().parent / "input_dags"
BUNDLE = "mltrack_reliability_input_tests"
API_CONN_ID = "mltrack_reliability_api"

add_dag_bundle(BUNDLE, str(DAGS))


# -- rows ---------------------------------------------------------------------------------------------
def row_counts(engine: Engine) -> dict[str, int]:
    """Rows in every table of the database (tracking tables, alembic_version, whatever else is there)."""
    names = sorted(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table(name))).scalar_one() for name in names
        }


def assert_nothing_written(before: dict[str, int], after: dict[str, int]) -> None:
    changed = {name: (before.get(name), after.get(name)) for name in before.keys() | after.keys()}
    changed = {name: counts for name, counts in changed.items() if counts[0] != counts[1]}
    assert not changed, f"rows written (table: before, after): {changed}"


def all_text(engine: Engine) -> str:
    """Every value of every row of every table, as one string (to search for secrets)."""
    inspector = inspect(engine)
    chunks: list[str] = []
    with engine.connect() as conn:
        for name in sorted(inspector.get_table_names()):
            columns = [column(c["name"]) for c in inspector.get_columns(name)]
            for row in conn.execute(select(table(name, *columns))):
                chunks.append(json.dumps(list(row), default=str, ensure_ascii=False))
    return "\n".join(chunks)


# -- DAG runs -----------------------------------------------------------------------------------------
_DAGBAG: dict[str, Any] = {}


def load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = _DAGBAG.get("bag")
    if bag is None:
        bag = _DAGBAG["bag"] = DagBag(dag_folder=str(DAGS))
        assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def run_dag(dag_id: str, **conf: Any) -> dict[str, Any]:
    """``dag.test()`` of ``dag_id`` with ``conf``; returns the run's state, task states and seconds."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    migrate_once()
    add_dag_bundle(BUNDLE, str(DAGS))  # in case another conftest replaced the bundle list
    started = time.perf_counter()
    dag_run = load_dag(dag_id).test(run_conf=conf or None)
    seconds = time.perf_counter() - started
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == dag_run.run_id)
        ).all()
        states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in tis}
    return {
        "state": str(getattr(dag_run.state, "value", dag_run.state)),
        "run_id": dag_run.run_id,
        "tis": states,
        "seconds": seconds,
    }


# -- the UI app with SimpleAuthManager ----------------------------------------------------------------
def enable_auth(tmp_dir: Path) -> None:
    """SimpleAuthManager with the UI tests' users and JWT secret, and a migrated metadata database."""
    from tests.plugins.conftest import auth_env

    os.environ.update(auth_env(tmp_dir))
    migrate_once()


@contextmanager
def mltrack_client(url: str) -> Iterator[Any]:
    """A TestClient of a parent app with Airflow's auth manager and the ML Tracking app at /mltrack,
    reading the tracking store at ``url`` (through Airflow connection ``API_CONN_ID``)."""
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_mltrack.plugins import auth
    from airflow_mltrack.plugins.app import create_app

    variable = f"AIRFLOW_CONN_{API_CONN_ID.upper()}"
    os.environ[variable] = json.dumps({"conn_type": "mltrack", "extra": {"url": url}})
    auth.clear_store_cache()
    purge_cached_app()
    parent = FastAPI()
    init_auth_manager(parent).init()
    parent.mount("/mltrack", create_app(API_CONN_ID))
    try:
        with TestClient(parent) as client:
            yield client
    finally:
        auth.clear_store_cache()
        purge_cached_app()
        os.environ.pop(variable, None)


def token(username: str = "admin", role: str = "admin", seconds: int | None = None) -> str:
    """A real JWT of the auth manager (``seconds`` < 0: already expired)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    user = SimpleAuthManagerUser(username=username, role=role)
    if seconds is None:
        return get_auth_manager().generate_jwt(user)
    return get_auth_manager().generate_jwt(user, expiration_time_in_seconds=seconds)


def mounted_app(client: Any) -> Any:
    """The ML Tracking FastAPI app inside the parent app of ``mltrack_client``."""
    return next(r.app for r in client.app.routes if getattr(r, "path", None) == "/mltrack")
