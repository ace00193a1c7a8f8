"""A real HTTP server of the ML Tracking app for the MLflow REST tests: uvicorn on a free port, in a thread,
serving a parent app with Airflow's auth manager (SimpleAuthManager, the UI tests' users) and
``create_app(conn_id)`` mounted at ``/mltrack`` as Airflow mounts it. The stock MLflow client talks to it
with ``MLFLOW_TRACKING_URI=<server.uri>`` (``http://127.0.0.1:<port>/mltrack/mlflow``) and
``MLFLOW_TRACKING_TOKEN=<a JWT of the auth manager>``.

Not a conftest: the artifact tests (tests/mlflow/test_artifacts*.py) may import :func:`serve` too.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.reliability._support import enable_auth, token
from tests.support.pgserver import free_port

CONN_ID = "mltrack_rest_tests"


@dataclass
class RestServer:
    base: str  # http://127.0.0.1:<port>
    uri: str  # the MLflow tracking URI: <base>/mltrack/mlflow
    tracking_url: str

    @staticmethod
    def token(username: str = "admin", role: str = "admin") -> str:
        """A real JWT of the auth manager for a SimpleAuthManager user."""
        return token(username, role)


@contextmanager
def serve(tracking_url: str, tmp_path: Path) -> Iterator[RestServer]:
    """The app reading ``tracking_url`` (Airflow connection :data:`CONN_ID`), served until the block ends."""
    import uvicorn
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from fastapi import FastAPI

    from airflow_mltrack.plugins import auth
    from airflow_mltrack.plugins.app import create_app

    enable_auth(tmp_path)
    variable = f"AIRFLOW_CONN_{CONN_ID.upper()}"
    os.environ[variable] = json.dumps({"conn_type": "mltrack", "extra": {"url": tracking_url}})
    auth.clear_store_cache()
    purge_cached_app()
    parent = FastAPI()
    init_auth_manager(parent).init()
    parent.mount("/mltrack", create_app(CONN_ID))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(parent, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="mltrack-rest-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        yield RestServer(base=base, uri=f"{base}/mltrack/mlflow", tracking_url=tracking_url)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        auth.clear_store_cache()
        purge_cached_app()
        os.environ.pop(variable, None)


__all__ = ["CONN_ID", "RestServer", "serve"]
