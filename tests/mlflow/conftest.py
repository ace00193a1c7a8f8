"""The real ``mlflow`` client against ``mltrack://`` on both backends (connection ``mltrack_default``
pointed at the test's tracking database through ``AIRFLOW_CONN_MLTRACK_DEFAULT``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.fixture
def mlflow_uri(tracking_url: str, monkeypatch):
    """``mltrack://`` (the default connection) on a fresh tracking database; MLflow's store cache and
    active runs are reset around the test."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLTRACK_DEFAULT", json.dumps({"conn_type": "mltrack", "extra": {"url": tracking_url}})
    )
    _tracking_store_registry._get_store_with_resolved_uri.cache_clear()
    mlflow.tracking.fluent._active_experiment_id = None
    mlflow.set_tracking_uri("mltrack://")
    yield "mltrack://"
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.tracking.fluent._active_experiment_id = None  # set_experiment() is process-wide
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    _tracking_store_registry._get_store_with_resolved_uri.cache_clear()
    mlflow.set_tracking_uri(None)


DAGS = Path(__file__).resolve().parent / "dags"


@pytest.fixture
def run_mlflow_dag(tracking_pg):
    """``run_mlflow_dag(dag_id)`` -> the DAG run of ``dag.test()`` on a DAG of ``tests/mlflow/dags``, writing
    to the PostgreSQL tracking store ``tracking_pg`` (connection ``mltrack_default``)."""
    from airflow.dag_processing.dagbag import DagBag
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    from tests.support.airflow_db import add_dag_bundle, migrate_once

    migrate_once()
    add_dag_bundle("mltrack_mlflow_tests", str(DAGS))
    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    _tracking_store_registry._get_store_with_resolved_uri.cache_clear()
    yield lambda dag_id: bag.dags[dag_id].test()
    _tracking_store_registry._get_store_with_resolved_uri.cache_clear()


@pytest.fixture
def rest(tracking_url, tmp_path, monkeypatch):
    """A real uvicorn server of the app (tests/mlflow/rest_server.py) with an artifact root of its own
    (``<tmp_path>/artifact-root``), the MLflow client pointed at it as admin (no retries: a failure shows
    at once); MLflow's caches, active runs and experiment reset around the test."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    from tests.mlflow.rest_server import serve

    monkeypatch.setenv("AIRFLOW__MLTRACK__ARTIFACT_ROOT", f"file://{tmp_path}/artifact-root")
    with serve(tracking_url, tmp_path) as server:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token())
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        utils._tracking_store_registry._get_store_with_resolved_uri.cache_clear()
        utils._artifact_repos_cache.clear()
        mlflow.tracking.fluent._active_experiment_id = None
        mlflow.set_tracking_uri(server.uri)
        yield server
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.tracking.fluent._active_experiment_id = None
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # set_experiment() is process-wide
        utils._tracking_store_registry._get_store_with_resolved_uri.cache_clear()
        utils._artifact_repos_cache.clear()
        mlflow.set_tracking_uri(None)
