"""Fault injection: a connection killed mid-batch, the server restarted mid-DAG-run, the store down for a run.

1. ``pg_terminate_backend`` kills the writer of a metric batch at a chosen point (200k rows through COPY,
   300 rows through the multi-row INSERT): the writer gets an OperationalError, no row of the batch is ever
   visible, ``metric_latest`` is untouched, and the same call again writes exactly the batch.
2. A DAG run on a private server that is restarted between two writes of a ``@task.mltrack`` task, then
   while a ``LogMetricsOperator`` write is in flight, then stopped across two listener events: the work
   completes (at once or on the retry), the rows are exact, and the experiment ends Completed.
3. The tracking server is down for a whole ``@task.mltrack`` run, or goes down mid-run: training succeeds,
   the rows go to the XCom ``mltrack_unsaved``, and ``BackfillMetricsOperator`` restores every one.

The points where faults fire are deterministic: the writer is made to wait on a row lock held by a second
connection (or caught in its COPY), and the DAG tasks call ``tests/reliability/_fault_hooks.py``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from airflow_mltrack.decorators.tracker import is_store_unavailable
from airflow_mltrack.store import TrackingStore
from tests.reliability import _fault_hooks as faults
from tests.support.airflow_db import add_dag_bundle, migrate_once
from tests.support.pgserver import TempPostgres

FAULT_DAGS = Path(__file__).resolve().parent / "dags"
add_dag_bundle("mltrack_fault_tests", str(FAULT_DAGS))

WRITER = "mltrack-fault-writer"  # application_name of the writer under test (found in pg_stat_activity)
KILLED = re.compile(
    r"terminating connection due to administrator command|connection is lost|server closed the connection"
)


# -- helpers ---------------------------------------------------------------------------------------------
Key = tuple[str, int | None, str]


def _rows(conn: psycopg.Connection, experiment_id: int) -> dict[Key, float]:
    cur = conn.execute(
        "SELECT name, step, evaluation_set, value FROM metrics WHERE experiment_id = %s", (experiment_id,)
    )
    return {(n, s, e): v for n, s, e, v in cur}


def _count(conn: psycopg.Connection, experiment_id: int) -> int:
    return conn.execute("SELECT count(*) FROM metrics WHERE experiment_id = %s", (experiment_id,)).fetchone()[
        0
    ]


def _latest(conn: psycopg.Connection, experiment_id: int) -> dict[tuple[str, str], tuple]:
    cur = conn.execute(
        "SELECT name, evaluation_set, step, value, min_value, max_value, points FROM metric_latest "
        "WHERE experiment_id = %s",
        (experiment_id,),
    )
    return {(r[0], r[1]): tuple(r[2:]) for r in cur}


def _recomputed(rows: dict[Key, float]) -> dict[tuple[str, str], tuple]:
    """metric_latest by its definition: the step-less value, else the highest step; min, max, points."""
    by_key: dict[tuple[str, str], list[tuple[int | None, float]]] = {}
    for (name, step, split), value in rows.items():
        by_key.setdefault((name, split), []).append((step, value))
    out = {}
    for key, points in by_key.items():
        step, value = max(points, key=lambda p: (p[0] is None, p[0] or 0))
        values = [p[1] for p in points]
        out[key] = (step, value, min(values), max(values), len(points))
    return out


def _exact(rows: dict[Key, float]) -> dict[Key, str]:
    """Values as repr: NaN equals NaN, -0.0 differs from 0.0, every bit of a double counts."""
    return {key: repr(float(value)) for key, value in rows.items()}


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (a failed rollback hides the cause)."""
    found: list[BaseException] = []
    while exc is not None and exc not in found:
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def _db_of(url: str) -> str:
    return str(make_url(url).database)


def _wait_for_writer(obs: psycopg.Connection, db: str, condition: str, done: threading.Event) -> tuple:
    """Poll pg_stat_activity until the writer's backend matches ``condition``: (pid, wait_event_type, query)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not done.is_set():
        row = obs.execute(
            "SELECT pid, wait_event_type, query FROM pg_stat_activity "
            f"WHERE datname = %s AND application_name = %s AND state = 'active' AND ({condition})",
            (db, WRITER),
        ).fetchone()
        if row:
            return row
        time.sleep(0.001)
    raise AssertionError(f"the writer never matched {condition!r} (finished: {done.is_set()})")


def _lock_waiter(obs: psycopg.Connection, db: str, not_pid: int) -> str:
    """Wait until some backend of ``db`` (not ``not_pid``) waits on a lock; return its query."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = obs.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
            "AND pid NOT IN (%s, pg_backend_pid())",
            (db, not_pid),
        ).fetchone()
        if row:
            return row[0]
        time.sleep(0.005)
    raise AssertionError("no backend ever waited on the lock")


# -- 1. a connection killed in the middle of a metric batch -------------------------------------------------
NAMES = 20
SEED_STEPS = 5  # rows m00..m19 at steps 0..4, committed before the batch


def _batch(size: int, first_step: int) -> list[dict[str, Any]]:
    per_name = size // NAMES
    return [
        {"name": f"m{n:02d}", "value": n * 1e6 + step + 0.5, "step": step, "evaluation_set": "train"}
        for n in range(NAMES)
        for step in range(first_step, first_step + per_name)
    ]


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("size", "first_step", "phase"),
    [
        # 200k rows overlapping the stored steps, killed while the rows stream in through COPY
        pytest.param(200_000, 0, "copy", id="copy-200k-killed-while-streaming"),
        # 200k new rows; the last one waits on a key another transaction holds: all others are written
        pytest.param(200_000, SEED_STEPS, "rows", id="copy-200k-killed-on-its-last-row"),
        # 300 rows (multi-row INSERT), killed waiting for its last row
        pytest.param(300, SEED_STEPS, "rows", id="insert-300-killed-on-its-last-row"),
        # 300 rows all written; killed waiting for a metric_latest row another transaction holds
        pytest.param(300, 0, "latest", id="insert-300-killed-on-metric_latest"),
    ],
)
def test_connection_killed_mid_batch(tracking_pg: str, pg_server: TempPostgres, size, first_step, phase):
    db = _db_of(tracking_pg)
    store = TrackingStore.from_url(f"{tracking_pg}?application_name={WRITER}")
    store.ensure_project("faults")
    model = store.register_model("faults", "m", "sklearn")
    data = store.register_dataset("faults", "d", "Tabular")
    eid = store.create_experiment("faults", "killed", model, data)
    seed = {(f"m{n:02d}", s, "train"): -1.0 - s for n in range(NAMES) for s in range(SEED_STEPS)}
    store.log_metrics(
        eid, [{"name": k[0], "step": k[1], "evaluation_set": k[2], "value": v} for k, v in seed.items()]
    )
    payload = _batch(size, first_step)
    expected = dict(seed) | {(r["name"], r["step"], r["evaluation_set"]): r["value"] for r in payload}

    with pg_server.connect(db) as obs, pg_server.connect(db, autocommit=False) as blocker:
        latest_before = _latest(obs, eid)
        heap_before = obs.execute("SELECT pg_relation_size('metrics')").fetchone()[0]
        if phase == "rows":  # hold the batch's last key (an uncommitted insert of the same key)
            blocker.execute(
                "INSERT INTO metrics (experiment_id, name, value, step, evaluation_set, recorded_at) "
                "VALUES (%s, %s, 0, %s, 'train', now())",
                (eid, f"m{NAMES - 1:02d}", first_step + size // NAMES - 1),
            )
        elif phase == "latest":  # hold the metric_latest row of m00 (the batch refreshes it first)
            blocker.execute(
                "SELECT 1 FROM metric_latest WHERE experiment_id = %s AND name = 'm00' FOR UPDATE", (eid,)
            )

        outcome: dict[str, Any] = {}
        done = threading.Event()

        def write() -> None:
            try:
                store.log_metrics(eid, payload, evaluation_set="train")
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                outcome["error"], outcome["at"] = exc, time.perf_counter()
            finally:
                done.set()

        started = time.perf_counter()
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        condition = "query LIKE 'COPY %%'" if phase == "copy" else "wait_event_type = 'Lock'"
        pid, _wait, query = _wait_for_writer(obs, db, condition, done)
        caught_after = time.perf_counter() - started
        # While the batch is in flight, another session sees none of it.
        assert _rows(obs, eid) == seed
        grown = obs.execute("SELECT pg_relation_size('metrics')").fetchone()[0] - heap_before
        killed_at = time.perf_counter()
        assert obs.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0] is True
        writer.join(30)
        assert done.is_set(), "the writer did not return after its backend was terminated"
        blocker.rollback()

        error = outcome.get("error")
        assert isinstance(error, OperationalError), repr(error)
        assert KILLED.search(str(error)), [str(e) for e in _chain(error)]  # the cause, not a follow-up error
        assert is_store_unavailable(error)  # what @task.mltrack treats as "store down", not a bug
        if phase == "latest":
            assert "metric_latest" in query
        elif phase == "rows":
            assert "metric_latest" not in query and "metrics" in query
        if size >= 100_000 and phase == "rows":
            assert grown > 1_000_000, grown  # the batch's rows were physically written when it died
        # Nothing of the batch is visible; metric_latest is as it was.
        assert _rows(obs, eid) == seed and _count(obs, eid) == len(seed)
        assert _latest(obs, eid) == latest_before

        retry_started = time.perf_counter()
        assert store.log_metrics(eid, payload, evaluation_set="train") == len(payload)
        retry_seconds = time.perf_counter() - retry_started
        assert _count(obs, eid) == len(expected)  # no duplicate, nothing lost
        assert _rows(obs, eid) == expected
        assert _latest(obs, eid) == _recomputed(expected)
    print(
        f"\n{phase} {size} rows: caught after {caught_after:.3f}s in {query[:40]!r}, heap +{grown / 1e6:.1f} MB"
        f" uncommitted, error {(outcome['at'] - killed_at) * 1000:.0f} ms after the kill: "
        f"{type(error).__name__}: {str(error).splitlines()[0][:90]}; rows {len(seed)} -> {len(seed)} -> "
        f"{len(expected)}; retry {retry_seconds:.2f}s"
    )


# -- shared by the DAG tests: a private server that may be stopped and restarted ----------------------------
@pytest.fixture(scope="module")
def fault_pg() -> Iterator[TempPostgres]:
    """A private PostgreSQL server (never the session's: these tests stop and restart it)."""
    server = TempPostgres(external_url="")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fault_db(fault_pg: TempPostgres, request: pytest.FixtureRequest, monkeypatch) -> Iterator[str]:
    """A migrated tracking database on ``fault_pg``, as connection ``mltrack_default``; fault points reset."""
    from airflow_mltrack.store.engine import dispose_engines
    from airflow_mltrack.store.migrations import upgrade
    from tests.conftest import _db_name

    name = _db_name(request, prefix="f")
    url = fault_pg.create_database(name)
    upgrade(url)
    dispose_engines()
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLTRACK_DEFAULT", json.dumps({"conn_type": "mltrack", "extra": {"url": url}})
    )
    faults.reset()
    yield url
    faults.reset()
    fault_pg.resume()  # a failed test may leave it stopped
    dispose_engines()
    fault_pg.drop_database(name)


_DAGBAG: dict[str, Any] = {}


def _run(dag_id: str, **kwargs: Any) -> dict[str, Any]:
    """``dag.test()`` a DAG of tests/reliability/dags; returns its state, task (state, try) and seconds."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    migrate_once()
    if "bag" not in _DAGBAG:
        _DAGBAG["bag"] = DagBag(dag_folder=str(FAULT_DAGS))
        assert not _DAGBAG["bag"].import_errors, _DAGBAG["bag"].import_errors
    started = time.perf_counter()
    dag_run = _DAGBAG["bag"].dags[dag_id].test(**kwargs)
    seconds = time.perf_counter() - started
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == dag_run.run_id)
        ).all()
        states = {ti.task_id: (str(getattr(ti.state, "value", ti.state)), ti.try_number) for ti in tis}
    state = str(getattr(dag_run.state, "value", dag_run.state))
    return {"state": state, "tis": states, "run_id": dag_run.run_id, "seconds": seconds, "dag_id": dag_id}


def _xcom(run: dict[str, Any], task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == run["dag_id"],
                XComModel.run_id == run["run_id"],
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


# -- 2. the server restarted during a DAG run ---------------------------------------------------------------
@pytest.mark.airflow
@pytest.mark.postgres
def test_server_restarted_during_a_dag_run(fault_pg: TempPostgres, fault_db: str, monkeypatch):
    from airflow_mltrack.listeners import status

    db = _db_of(fault_db)
    seen: dict[str, Any] = {}
    listener_warnings: list[str] = []
    warn = status._warn

    def record_warning(what: str, exc: BaseException) -> None:
        listener_warnings.append(what)
        warn(what, exc)

    # The listener's "store down" warnings (caplog misses them: the task runner routes logs to structlog).
    monkeypatch.setattr(status, "_warn", record_warning)

    @contextlib.contextmanager
    def restart_in_flight(try_number: int, experiment_id: int) -> Iterator[None]:
        """Try 1: hold the batch's last key, and restart the server once the write waits for it."""
        if try_number > 1:
            yield
            return
        name, step = "lr", faults.DIRECT_ROWS // 2 - 1  # the last key of the sorted batch
        blocker = fault_pg.connect(db, autocommit=False)
        blocker.execute(
            "INSERT INTO metrics (experiment_id, name, value, step, evaluation_set, recorded_at) "
            "VALUES (%s, %s, 0, %s, 'train', now())",
            (experiment_id, name, step),
        )

        def restart_when_blocked() -> None:
            try:
                with fault_pg.connect(db) as obs:
                    seen["blocked_query"] = _lock_waiter(obs, db, blocker.info.backend_pid)
                seen["in_flight_restart_s"] = fault_pg.restart()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                seen["restart_error"] = exc

        thread = threading.Thread(target=restart_when_blocked, daemon=True)
        thread.start()
        try:
            yield
        finally:
            thread.join(90)  # the retry must find the server up again
            with contextlib.suppress(psycopg.Error):
                blocker.close()

    faults.ACTIONS.update(
        between_writes=fault_pg.restart,
        log_metrics=restart_in_flight,
        outage=fault_pg.halt,
        recover=fault_pg.resume,
    )
    run = _run("mltrack_fault_restart")
    assert "restart_error" not in seen, seen.get("restart_error")
    assert run["state"] == "success", run["tis"]
    # train: the restart between its writes is invisible (pool_pre_ping reconnects), no retry, nothing unsaved
    assert run["tis"]["train"] == ("success", 1)
    assert _xcom(run, "train")["available_after_restart"] is True
    assert _xcom(run, "train", "mltrack_unsaved") is None
    # log_metrics: try 1 dies with the in-flight restart, try 2 writes the batch
    assert run["tis"]["log_metrics"] == ("success", 2)
    assert "metrics" in seen["blocked_query"] and "metric_latest" not in seen["blocked_query"]
    assert _xcom(run, "log_metrics") == faults.DIRECT_ROWS
    assert [f["name"] for f in faults.FIRED] == [
        "between_writes",
        "log_metrics",
        "log_metrics",
        "outage",
        "recover",
    ]
    # The listener: two events failed while the server was down (outage's success, report's start) ...
    assert listener_warnings == ["task success not tracked", "task start not tracked"]
    assert _xcom(run, "report") == "Running"  # (a failed try did not mark it Failed)
    # ... and the next event (report's success) completed the experiment.
    store = TrackingStore.from_url(fault_db)
    (exp,) = store.find_experiments(dag_id="mltrack_fault_restart", run_id=run["run_id"])
    exp = store.get_experiment(exp["experiment_id"])
    assert (exp["status"], exp["error"]) == ("Completed", None)
    expected = faults.restart_expected()
    with fault_pg.connect(db) as conn:
        assert _count(conn, exp["experiment_id"]) == len(expected)
        assert _exact(_rows(conn, exp["experiment_id"])) == _exact(expected)
        assert _latest(conn, exp["experiment_id"]) == _recomputed(expected)
    fired = {f["name"]: f["seconds"] for f in reversed(faults.FIRED)}  # the first of each name wins
    retried = faults.FIRED[2]["seconds"]
    print(
        f"\nrestart DAG: {run['seconds']:.1f}s; restart between writes {fired['between_writes']:.2f}s, "
        f"in flight {seen['in_flight_restart_s']:.2f}s (try 1 {fired['log_metrics']:.2f}s, "
        f"try 2 {retried:.2f}s), outage {fired['outage']:.2f}s + {fired['recover']:.2f}s; rows {len(expected)}"
    )


# -- 3. the tracking server down for a run, then the backfill ---------------------------------------------
def test_unsaved_rows_survive_strict_json():
    """The Task SDK sends XComs as strict JSON: NaN and +/-inf must not break the ``mltrack_unsaved`` push
    (before the fix every unsaved row was lost), and the backfill must get the very same doubles back."""
    from airflow_mltrack import MLTrackError
    from airflow_mltrack.decorators.tracker import Tracker
    from airflow_mltrack.reconcile import parse_unsaved

    values = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.5]
    tracker = Tracker(None, None)  # the store was unreachable at the start
    tracker.log_metrics({"loss": values}, evaluation_set="train")
    with pytest.raises(MLTrackError, match="finite"):
        tracker.log_params(
            {"lr": math.nan}
        )  # refused at once, as the store would, not kept to break the push
    tracker.log_params({"lr": 0.1})
    envelope = {
        "experiment_id": None,
        "project": faults.PROJECT,
        "experiment": "train",
        "evaluation_set": "validation",
        "hyperparameters": tracker.unsaved_params(),
        "metrics": tracker.unsaved_rows(),
    }
    found = parse_unsaved(json.loads(json.dumps(envelope, allow_nan=False)))
    assert [(r.name, r.step, r.evaluation_set) for r in found.rows] == [
        ("loss", i, "train") for i in range(6)
    ]
    assert [repr(r.value) for r in found.rows] == [repr(v) for v in values]
    assert (found.hyperparameters, found.experiment_id, found.experiment) == ({"lr": 0.1}, None, "train")


def _envelope_rows(unsaved: dict[str, Any]) -> dict[Key, float]:
    return {(r["name"], r["step"], r["evaluation_set"]): r["value"] for r in unsaved["metrics"]}


@pytest.mark.airflow
@pytest.mark.postgres
@pytest.mark.parametrize("outage", ["whole-run", "mid-run"])
def test_store_down_then_backfill_restores_every_row(fault_pg: TempPostgres, fault_db: str, outage: str):
    db = _db_of(fault_db)
    store = TrackingStore.from_url(fault_db)
    day = dt.datetime(2025, 2, 1 if outage == "whole-run" else 2, tzinfo=dt.UTC)
    expected = faults.offline_expected()
    half = faults.OFFLINE_EPOCHS // 2
    if outage == "whole-run":
        fault_pg.halt()
    else:
        faults.ACTIONS.update(store_down=fault_pg.halt, store_up=fault_pg.resume)

    run = _run("mltrack_fault_offline", logical_date=day)
    assert run["state"] == "success" and run["tis"]["train"] == ("success", 1), run["tis"]
    assert _xcom(run, "train") == faults.OFFLINE_RETURN  # the return value is untouched
    unsaved = _xcom(run, "train", "mltrack_unsaved")
    fault_pg.resume()

    exps = store.find_experiments(dag_id="mltrack_fault_offline", run_id=run["run_id"])
    if outage == "whole-run":
        assert exps == [] and unsaved["experiment_id"] is None
        written = {}
        unsaved_expected = expected
    else:
        (exp,) = exps
        assert unsaved["experiment_id"] == exp["experiment_id"]
        with fault_pg.connect(db) as conn:
            written = _rows(conn, exp["experiment_id"])
        assert _exact(written) == _exact(faults.offline_expected(range(half), returned=False))
        unsaved_expected = {k: v for k, v in expected.items() if k not in written}
        assert store.get_experiment(exp["experiment_id"])["status"] == "Completed"  # the server was back
    # Together, what was written and what was pushed is everything the task logged, bit for bit.
    assert _exact(_envelope_rows(unsaved)) == _exact(unsaved_expected)
    assert unsaved["hyperparameters"]["batch_size"] == faults.OFFLINE_PARAMS["batch_size"]

    summaries = []
    for n in range(2):  # the second backfill finds everything present
        start = day.isoformat()
        end = (day + dt.timedelta(seconds=1)).isoformat()
        backfill = _run(
            "mltrack_fault_backfill",
            logical_date=dt.datetime(2025, 6, 1, tzinfo=dt.UTC) + dt.timedelta(days=n, hours=day.day),
            run_conf={"start": start, "end": end},
        )
        assert backfill["state"] == "success", backfill["tis"]
        summaries.append(_xcom(backfill, "reconcile"))
    first, again = summaries
    assert (first["imported"], first["already_present"], first["skipped"]) == (1, 0, 0), first
    assert first["rows"] == len(unsaved_expected)
    assert (again["imported"], again["already_present"], again["skipped"]) == (0, 1, 0), again

    (exp,) = store.find_experiments(dag_id="mltrack_fault_offline", run_id=run["run_id"])
    exp = store.get_experiment(exp["experiment_id"])
    assert exp["experiment_id"] in first["experiment_ids"]
    assert (exp["name"], exp["status"], exp["task_id"]) == ("offline", "Completed", "train")
    assert exp["hyperparameters"] == faults.OFFLINE_PARAMS
    with fault_pg.connect(db) as conn:
        assert _count(conn, exp["experiment_id"]) == len(expected)
        assert _exact(_rows(conn, exp["experiment_id"])) == _exact(expected)
    print(
        f"\n{outage}: DAG {run['seconds']:.1f}s, rows written {len(written)}, unsaved {len(unsaved['metrics'])}, "
        f"backfill imported {first['rows']} -> {len(expected)} rows"
    )
