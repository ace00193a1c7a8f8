"""Connections of real task processes: scheduler + dag-processor + api-server (LocalExecutor), mapped
``@task.mltrack`` tasks in real task-runner processes, straight to PostgreSQL (session mode).

``pg_stat_activity`` is sampled while the DAG runs; each of our sessions is traced to the process holding
its socket (psutil), and a task runner is known by its process title (``airflow worker -- <ti id>``). A task
runner holds at most one connection, and once every task has ended none is held by a task runner.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import psutil
from sqlalchemy.engine import make_url

from tests.scaling.dags.mltrack_scaling_dags import POINTS, TASKS
from tests.support.airflow_cluster import AirflowCluster

DAGS = Path(__file__).resolve().parent / "dags"
DAG_ID = "mltrack_scaling_mapped"


def _owners() -> dict[int, int]:
    """Local TCP port -> pid of the process holding that socket (this machine's connections)."""
    return {c.laddr.port: c.pid for c in psutil.net_connections(kind="tcp") if c.pid and c.laddr}


def _title(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


class OwnerSampler:
    """Every ``interval`` s: our sessions on ``dbname`` (application_name ``mltrack``), by holding process."""

    def __init__(self, pg_server, dbname: str, interval: float = 0.25) -> None:
        self.pg_server, self.dbname, self.interval = pg_server, dbname, interval
        self.samples: list[Counter[tuple[int, str]]] = []  # (pid, kind) -> sessions
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self, conn) -> Counter[tuple[int, str]]:
        ports = [
            row[0]
            for row in conn.execute(
                "SELECT client_port FROM pg_stat_activity WHERE datname = %s AND application_name = 'mltrack'",
                (self.dbname,),
            )
        ]
        owners = _owners()
        out: Counter[tuple[int, str]] = Counter()
        for port in ports:
            pid = owners.get(port, 0)
            kind = "task runner" if "airflow worker -- " in _title(pid) else "other"
            out[(pid, kind)] += 1
        return out

    def _run(self) -> None:
        with self.pg_server.connect(application_name="mltrack-sampler") as conn:
            while not self._stop.is_set():
                self.samples.append(self.sample(conn))
                self._stop.wait(self.interval)

    def __enter__(self) -> OwnerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_task_runners_hold_one_connection_and_none_after(pg_server, tracking_pg, tmp_path):
    from airflow_mltrack.store import TrackingStore

    store = TrackingStore.from_url(tracking_pg)
    name = make_url(tracking_pg).database
    cluster = AirflowCluster(tmp_path, DAGS, tracking_pg, secret="mltrack-scaling-test-secret")
    with cluster, OwnerSampler(pg_server, name) as sampler:
        deadline = time.monotonic() + 300
        cluster.poll(cluster.healthy, deadline, interval=1)
        cluster.wait(
            "the DAG to be triggered",
            lambda: cluster.airflow("dags", "trigger", DAG_ID).returncode == 0,
            deadline,
        )

        def finished() -> bool:
            rows = store.find_experiments(dag_id=DAG_ID)
            return len(rows) == TASKS and all(r["status"] == "Completed" for r in rows)

        cluster.wait("4 Completed experiments", finished, deadline)
        time.sleep(3)  # the task runners' last moments (listener hooks, exit)
        with pg_server.connect(application_name="mltrack-sampler") as conn:
            final = sampler.sample(conn)
    runners = [(pid, n) for s in sampler.samples for (pid, kind), n in s.items() if kind == "task runner"]
    assert runners, "no task runner connection seen: the sampler did not trace sessions to task runners"
    assert max(n for _pid, n in runners) == 1, runners
    assert len({pid for pid, _n in runners}) >= 2  # several task processes were seen, one connection each
    assert [key for key in final if key[1] == "task runner"] == []
    experiments = store.find_experiments(dag_id=DAG_ID)
    counts = pg_server.psql("SELECT experiment_id, count(*) FROM metrics GROUP BY 1 ORDER BY 1", dbname=name)
    assert sorted(c for _e, c in counts) == [POINTS] * TASKS
    assert {e["status"] for e in experiments} == {"Completed"}
