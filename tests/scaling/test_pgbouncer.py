"""The store through a real PgBouncer in transaction pooling mode (``tests/support/pgbouncer.py``), and the
connections a task process keeps (issue 15): several writer processes at once, 0 errors, exact rows,
never more server connections than PgBouncer's pool, none left open by a finished task."""

from __future__ import annotations

import json
import multiprocessing
import signal

import psycopg
import pytest
from sqlalchemy import text

from airflow_mltrack.store import TrackingStore, migrations
from airflow_mltrack.store.engine import dispose_engines, get_engine
from tests.scaling.conftest import POOL_SIZE
from tests.support.pgbouncer import ConnectionSampler, PgBouncerServer
from tests.support.task_load import NAMES, REWRITE_COPY, REWRITE_UPSERT, point_value, run_tasks

TASKS = 8
POINTS = 2000


def test_psycopg_prepares_statements_that_transaction_pooling_breaks(pg_server):
    """The reason for ``prepare_threshold=None``: two clients sharing one server connection. psycopg's
    default prepares a query on its 5th run under a name the other client prepared too; our engine in
    transaction mode never prepares."""
    with PgBouncerServer(pg_server, default_pool_size=1) as bouncer:
        a, b = bouncer.connect(), bouncer.connect()
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement), a, b:
            for i in range(10):
                for conn in (a, b):
                    conn.execute("SELECT %s::int + 1", (i,)).fetchone()
        engine = get_engine(bouncer.url("postgres"))
        with engine.connect() as c1, engine.connect() as c2:
            for i in range(10):
                for conn in (c1, c2):
                    assert conn.execute(text("SELECT CAST(:i AS int) + 1"), {"i": i}).scalar() == i + 1
                    conn.commit()


def _upgrade(url: str) -> str | None:
    try:
        migrations.upgrade(url)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return f"{type(exc).__name__}: {exc}"
    return None


def test_migrations_at_once_through_pgbouncer(pg_server, bounced_db):
    """Three ``mltrack db upgrade`` at once through PgBouncer: the transaction-level advisory lock lets one
    migrate and the others find the head; no lock outlives its transaction."""
    name, url = bounced_db
    # The workers are forked from the test process, whose SIGTERM handler (Airflow's, once an earlier test
    # ran a task in it) would keep an idle worker alive through Pool.terminate() and hang the suite: they
    # get the default back; the map itself is bounded too.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3, initializer=signal.signal, initargs=(signal.SIGTERM, signal.SIG_DFL)) as pool:
        errors = pool.map_async(_upgrade, [url] * 3).get(timeout=300)
    assert errors == [None, None, None]
    assert migrations.current_revision(url) == migrations.head_revision()
    assert migrations.check_drift(url) == []
    assert pg_server.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]
    assert pg_server.psql("SELECT count(*) FROM mltrack_alembic_version", dbname=name) == [(1,)]


def test_many_tasks_write_through_pgbouncer(pg_server, bounced_db):
    """8 task processes at once through PgBouncer (pool of 4 server connections), each logging 2k points
    (COPY, then rewrites through the staging table and the upsert), tags and status moves: 0 errors,
    exact rows, at most 4 server connections, one connection per process at a time."""
    name, url = bounced_db
    migrations.upgrade(url)  # through PgBouncer too
    with ConnectionSampler(pg_server, name) as sampler:
        result = run_tasks("mltrack_pgb", TASKS, POINTS, project="pgb", rewrite=True)
    assert result.errors == []
    assert result.rows == TASKS * POINTS
    assert 1 <= sampler.max_total <= POOL_SIZE, sampler.samples
    assert sampler.max_ours >= 1  # PgBouncer passes our application_name on to its server connections
    assert {t.checkouts_max for t in result.tasks} == {1}
    assert {t.open_after for t in result.tasks} == {0}

    store = TrackingStore.from_url(url)
    rewritten = REWRITE_COPY + REWRITE_UPSERT
    for task in result.tasks:
        experiment = store.get_experiment(task.experiment_id)
        assert experiment["status"] == "Completed"
        assert store.tag_values("experiment", task.experiment_id) == {
            "pool": "load",
            "worker": str(task.index),
        }
        history = store.metric_history(task.experiment_id, "m3", "train")
        expected = [
            (i // NAMES, point_value(task.index, i, rewritten=i < rewritten)) for i in range(3, POINTS, NAMES)
        ]
        assert [(r["step"], r["value"]) for r in history] == expected
    counts = pg_server.psql(
        "SELECT experiment_id, count(*), count(DISTINCT (name, step)) FROM metrics GROUP BY 1", dbname=name
    )
    assert sorted(c[1:] for c in counts) == [(POINTS, POINTS)] * TASKS
    latest = pg_server.psql(
        "SELECT count(*), sum(points), min(step), max(step) FROM metric_latest", dbname=name
    )
    assert latest == [(TASKS * NAMES, TASKS * POINTS, POINTS // NAMES - 1, POINTS // NAMES - 1)]
    # one project: the placeholder model and dataset were registered once, by whichever task came first
    assert pg_server.psql("SELECT count(*) FROM models", dbname=name) == [(1,)]


def test_finished_task_process_leaves_no_connection(pg_server, pg_template, pg_database, monkeypatch):
    """Direct to PostgreSQL (session mode): each task process holds at most one connection while it
    writes, and once its task has ended (``release_task_engines``, the listener's ``before_stopping``)
    none, although the process is still alive."""
    from sqlalchemy.engine import make_url

    name = make_url(pg_database).database
    url = pg_server.url(name)
    migrations.upgrade(url)
    dispose_engines()  # this (test) process's own pooled connection: count only the task processes'
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLTRACK_DIRECT", json.dumps({"conn_type": "mltrack", "extra": {"url": url}})
    )
    after: dict[str, tuple[int, int]] = {}
    with ConnectionSampler(pg_server, name) as sampler:
        result = run_tasks(
            "mltrack_direct", 4, POINTS, project="direct", after=lambda _r: after.update(now=sampler.count())
        )
    assert result.errors == []
    assert result.rows == 4 * POINTS
    assert 1 <= sampler.max_ours <= 4, sampler.samples  # never more than one per task process
    assert after["now"] == (0, 0)  # the 4 processes are alive, their tasks finished: no connection left
    assert {t.checkouts_max for t in result.tasks} == {1}


def test_listener_before_stopping_closes_the_task_connection(pg_server, tracking_pg):
    """The status listener's ``before_stopping`` (called by the task runner after the task and its listener
    hooks) closes the connection the task's engine kept; for other components it leaves engines alone."""
    from airflow.sdk.execution_time.task_runner import TaskRunnerMarker
    from sqlalchemy.engine import make_url

    from airflow_mltrack.listeners import status

    name = make_url(tracking_pg).database
    dispose_engines()
    engine = get_engine(tracking_pg, task_process=True)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    sampler = ConnectionSampler(pg_server, name)
    assert sampler.count() == (1, 1)  # kept by the task's pool of one, idle
    status.before_stopping(component=object())  # not a task runner: nothing closed
    assert sampler.count() == (1, 1)
    status.before_stopping(component=TaskRunnerMarker())
    assert sampler.count() == (0, 0)
    assert get_engine(tracking_pg) is not engine
