"""A real Airflow for a test: api-server + scheduler + dag-processor (LocalExecutor) on a fresh AIRFLOW_HOME
(SQLite metadata DB), tasks in real worker processes, the tracking store given as ``mltrack_default``.

    with AirflowCluster(tmp_path, dags, tracking_url, secret="x") as cluster:
        cluster.wait("the API server", cluster.healthy, deadline)
        cluster.airflow("dags", "trigger", "my_dag")

Leaving the block stops the processes (terminate, then kill after 20 s); their output stays in
``<tmp_path>/<name>.log`` and :meth:`AirflowCluster.log_tails` quotes it for a failure message.

``metadata_url=`` puts Airflow's metadata on that database (e.g. PostgreSQL) instead of SQLite.
``executor="CeleryExecutor"`` (needs ``metadata_url`` and ``broker_url``, e.g. a ``tests/support/redis.py``
server) runs tasks in ``airflow celery worker`` processes instead (result backend: ``db+`` the metadata
URL; ``worker_concurrency`` pool processes each): one is started with the others, more with
:meth:`AirflowCluster.start_worker`, and :meth:`AirflowCluster.kill_worker` kills one with every process
under it (pool processes, task supervisors and task runners), as a machine dying would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import psutil
import pytest

from tests.support.pgserver import free_port

COMPONENTS = ("api-server", "scheduler", "dag-processor")
EXECUTORS = ("LocalExecutor", "CeleryExecutor")


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
    :param executor: ``LocalExecutor`` or ``CeleryExecutor``.
    :param metadata_url: SQLAlchemy URL of Airflow's metadata database (default: SQLite in the home).
    :param broker_url: the Celery broker (``redis://...``); required with ``CeleryExecutor``.
    :param worker_concurrency: ``[celery] worker_concurrency``.
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
        executor: str = "LocalExecutor",
        metadata_url: str | None = None,
        broker_url: str | None = None,
        worker_concurrency: int = 8,
    ) -> None:
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, not {executor!r}")
        if executor == "CeleryExecutor" and not (broker_url and metadata_url):
            raise ValueError(
                f"executor CeleryExecutor needs broker_url and metadata_url (got broker_url={broker_url!r}, "
                f"metadata_url={metadata_url!r})"
            )
        self.executor = executor
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
                "AIRFLOW__CORE__EXECUTOR": executor,
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
            }
        )
        if metadata_url:
            self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata_url
        if executor == "CeleryExecutor":
            assert metadata_url is not None and broker_url is not None
            self.env.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": broker_url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata_url}",
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
                }
            )
        self.env.update(extra_env or {})
        self._logs: dict[str, IO[str]] = {}
        self._procs: list[subprocess.Popen[Any]] = []
        self.workers: list[subprocess.Popen[Any]] = []  # Celery workers, in start order

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
        if self.executor == "CeleryExecutor":
            self.start_worker()
        return self

    def start_worker(self) -> subprocess.Popen[Any]:
        """Start an ``airflow celery worker`` (log ``celery-worker-<n>.log``)."""
        if self.executor != "CeleryExecutor":
            raise RuntimeError(f"start_worker needs executor CeleryExecutor, not {self.executor!r}")
        number = len(self.workers) + 1
        name = f"celery-worker-{number}"
        log = self._logs[name] = open(self.tmp_path / f"{name}.log", "w")  # noqa: SIM115
        argv = ["celery", "worker", "--skip-serve-logs", "--celery-hostname", f"worker{number}@%h"]
        argv += ["--pid", str(self.home / f"{name}.pid")]
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", *argv],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the test's process group (a Ctrl-C reaches it through __exit__)
        )
        self.workers.append(proc)
        return proc

    def kill_worker(self, index: int = -1, sig: int = signal.SIGKILL) -> list[int]:
        """Send ``sig`` to a Celery worker and every process under it (default: the last started, SIGKILL).

        Task runners sit in process groups of their own (the Task SDK's supervisor ``setpgid``s them), so
        the tree is frozen (SIGSTOP) first, until no new process appears, then signalled as a whole: what a
        machine dying does. Returns the pids signalled.
        """
        root = psutil.Process(self.workers[index].pid)
        frozen: dict[int, psutil.Process] = {}
        while True:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            new = [p for p in tree if p.pid not in frozen]
            if not new:
                break
            for proc in new:
                frozen[proc.pid] = proc
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(signal.SIGSTOP)
        for proc in frozen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(sig)
                if sig != signal.SIGKILL:
                    proc.send_signal(signal.SIGCONT)
        if sig == signal.SIGKILL:
            self.workers[index].wait(timeout=30)
            psutil.wait_procs(list(frozen.values()), timeout=30)
        return sorted(frozen)

    def __exit__(self, *exc: object) -> None:
        for index, proc in enumerate(self.workers):  # with the task runners under them
            if proc.poll() is None:
                with contextlib.suppress(psutil.NoSuchProcess, subprocess.TimeoutExpired):
                    self.kill_worker(index)
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
        names = [*COMPONENTS, *(f"celery-worker-{n}" for n in range(1, len(self.workers) + 1))]
        return "\n".join(
            f"--- {name}\n{(self.tmp_path / f'{name}.log').read_text(errors='replace')[-chars:]}"
            for name in names
        )

    def poll(self, predicate: Callable[[], bool], deadline: float, interval: float = 2) -> bool:
        """Call ``predicate`` every ``interval`` seconds until it is true (True) or ``deadline`` passes."""
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return False

    def wait(self, what: str, predicate: Callable[[], bool], deadline: float, interval: float = 2) -> None:
        """:meth:`poll`, failing the test with the component logs when ``deadline`` passes."""
        if not self.poll(predicate, deadline, interval):
            pytest.fail(f"timed out waiting for {what}\n{self.log_tails()}")
