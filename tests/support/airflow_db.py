"""A session Airflow metadata database for tests that run real Airflow (SQLite in the session AIRFLOW_HOME).

``add_dag_bundle(name, path)`` adds a local DAG bundle to ``[dag_processor] dag_bundle_config_list``
(merging with bundles other conftests registered, so test folders can share one session), and
``migrate_once()`` runs ``airflow db migrate`` once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

_BUNDLES_ENV = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"
_lock = threading.Lock()
_migrated: dict[str, float] = {}


def add_dag_bundle(name: str, path: str) -> None:
    """Register a LocalDagBundle ``name`` at ``path`` (kept alongside any bundles already configured)."""
    try:
        bundles = json.loads(os.environ.get(_BUNDLES_ENV) or "[]")
    except ValueError:
        bundles = []
    bundles = [b for b in bundles if b.get("name") != name]
    bundles.append(
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(path), "refresh_interval": 0},
        }
    )
    os.environ[_BUNDLES_ENV] = json.dumps(bundles)


def migrate(timeout: float = 300) -> float:
    """Run ``airflow db migrate`` for the current environment (``AIRFLOW_HOME`` etc.); returns seconds."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def migrate_once() -> float:
    """``airflow db migrate`` on the session's metadata database (once per AIRFLOW_HOME); returns seconds."""
    home = os.environ["AIRFLOW_HOME"]
    with _lock:
        if home in _migrated:
            return 0.0
        _migrated[home] = migrate()
        return _migrated[home]
