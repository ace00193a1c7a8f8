"""A real Airflow for a test: api-server + scheduler + dag-processor (LocalExecutor) on a fresh AIRFLOW_HOME
(SQLite metadata DB), tasks in real worker processes, the tracking store given as ``mltrack_default``.

    with AirflowCluster(tmp_path, dags, tracking_url, secret="x") as cluster:
        cluster.wait("the API server", cluster.healthy, deadline)
        cluster.airflow("dags", "trigger", "my_dag")

Leaving the block stops the three processes (terminate, then kill after 20 s); their output stays in
``<tmp_path>/<name>.log`` and :meth:`AirflowCluster.log_tails` quotes it for a failure message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import pytest

from tests.support.pgserver import free_port

COMPONENTS = ("api-server", "scheduler", "dag-processor")


def airflow(env: Mapping[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``airflow <args>`` in a subprocess with ``env`` (output captured as text)."""
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class AirflowCluster:
    """The three Airflow processes of one test (see the module docstring).

    :param tmp_path: where ``airflow_home/`` and the component logs go.
    :param dags_folder: ``[core] dags_folder``.
    :param tracking_url: the tracking store's SQLAlchemy URL (connection ``mltrack_default``).
    :param secret: JWT and API secret key.
    :param paused_at_creation: ``[core] dags_are_paused_at_creation``.
    :param extra_env: more environment variables (a DAG's settings).
    """

    def __init__(
        self,
        tmp_path: Path,
        dags_folder: Path,
        tracking_url: str,
        *,
        secret: str,
        paused_at_creation: bool = False,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.home = tmp_path / "airflow_home"
        self.home.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(paused_at_creation),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secret,
                "AIRFLOW__API__SECRET_KEY": secret,
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW_CONN_MLTRACK_DEFAULT": json.dumps(
                    {"conn_type": "mltrack", "extra": {"url": tracking_url}}
                ),
                **(extra_env or {}),
            }
        )
        self._logs: dict[str, IO[str]] = {}
        self._procs: list[subprocess.Popen[Any]] = []

    def airflow(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``airflow <args>`` against this cluster's home."""
        return airflow(self.env, *args, timeout=timeout)

    def __enter__(self) -> AirflowCluster:
        migrate = self.airflow("db", "migrate", timeout=300)
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        self._logs = {name: open(self.tmp_path / f"{name}.log", "w") for name in COMPONENTS}  # noqa: SIM115
        self._procs = [
            subprocess.Popen(
                [sys.executable, "-m", "airflow", name], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
            for name, log in self._logs.items()
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in self._logs.values():
            log.close()

    def healthy(self) -> bool:
        """Does the API server answer its health check? Workers need it (the Execution API)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", timeout=2):
                return True
        except OSError:
            return False

    def log_tails(self, chars: int = 3000) -> str:
        """The last ``chars`` of each component's log, for a failure message."""
        return "\n".join(
            f"--- {name}\n{(self.tmp_path / f'{name}.log').read_text()[-chars:]}" for name in COMPONENTS
        )

    def poll(self, predicate: Callable[[], bool], deadline: float, interval: float = 2) -> bool:
        """Call ``predicate`` every ``interval`` seconds until it is true (True) or ``deadline`` passes."""
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return False

    def wait(self, what: str, predicate: Callable[[], bool], deadline: float) -> None:
        """:meth:`poll`, failing the test with the component logs when ``deadline`` passes."""
        if not self.poll(predicate, deadline):
            pytest.fail(f"timed out waiting for {what}\n{self.log_tails()}")
